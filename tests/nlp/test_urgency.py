import pytest

from nlp.segment import normalize
from nlp.urgency import detect_urgency


@pytest.mark.parametrize(
    "text, rule",
    [
        ("楼道里有很浓的煤气味", "gas"),
        ("闻到天然气的味道", "gas"),
        ("对面楼着火了", "fire"),
        ("路面塌陷了一个大坑", "collapse"),
        ("电梯困人了，按警铃没人应", "trapped"),
        ("有人被砸伤了在流血", "injury"),
        ("昨晚小区着火了，没有人受伤", "fire"),  # the negation belongs to the other clause
        ("楼道里煤气味很浓，不知道是不是漏气", "gas"),
    ],
)
def test_emergencies_fire(text, rule):
    assert rule in {h.rule for h in detect_urgency(normalize(text))}


@pytest.mark.parametrize(
    "text",
    [
        "没有煤气味了，谢谢",
        "楼道堆物存在火灾隐患",
        "路灯坏了好几天",
        "小区组织了消防演练",
        "万一着火消防车进不来",
        "如果楼道着火了怎么办",
        "楼道堆放杂物，一旦起火后果不堪设想",
        "担心发生火灾",
        "不是漏水，是楼上在装修",
        "不是着火，是有人在烧烤",
        "没有人受伤",
        "家里没有煤气味了",
        "要是塌陷了谁负责",
    ],
)
def test_non_emergencies_do_not_fire(text):
    assert detect_urgency(normalize(text)) == []
