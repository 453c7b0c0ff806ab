"""Address text → unit through the sample grid's gazetteer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grid.gazetteer import Evidence, short_name
from grid.index import GridIndex
from grid.match import Method
from grid.units import Level

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "grid"


@pytest.mark.parametrize(
    "text,name,level",
    [
        ("民治街道上芬社区梅龙路口的路灯坏了", "上芬社区", Level.COMMUNITY),
        ("观澜牛湖地铁站旁边垃圾没人清理", "牛湖社区", Level.COMMUNITY),
        ("清湖科技园门口井盖松了", "清湖社区", Level.COMMUNITY),
        ("深圳市龙华办事处清湖社区华清路325号", "清湖社区", Level.COMMUNITY),  # an old alias of the street
        ("深圳北站　西广场的出租车乱停", "北站社区", Level.COMMUNITY),  # a full-width space
        ("民治大道上有个大坑", "民治街道", Level.STREET),  # a long road: the street, not a community
        ("民治这边", "民治街道", Level.STREET),  # 民治: the street's short name before the community's
        ("观澜街道润城社区", "润城社区", Level.COMMUNITY),  # 润城 moved to 观湖 in 2016
    ],
)
def test_matches(sample: GridIndex, text: str, name: str, level: Level) -> None:
    match = sample.locate_address(text)
    assert match is not None
    assert (match.name, match.level, match.method) == (name, level, Method.ADDRESS)


def test_confidence_orders_the_evidence(sample: GridIndex) -> None:
    def confidence(text: str) -> float:
        match = sample.locate_address(text)
        assert match is not None
        return match.confidence

    confirmed = confidence("民治街道上芬社区")
    full = confidence("上芬社区")
    place = confidence("红山地铁站")
    short = confidence("上芬")
    contradicted = confidence("大浪街道上芬社区")
    assert confirmed > full > place > short
    assert contradicted < full
    assert 0 < contradicted and confirmed < 1


def test_no_match(sample: GridIndex) -> None:
    assert sample.locate_address("小区门口的路灯坏了") is None
    assert sample.locate_address("") is None
    assert sample.locate_address("深圳市龙华区") is None  # the district alone places nothing


def test_segmenter_keeps_names_whole_and_does_not_match_inside_words(sample: GridIndex) -> None:
    tokens = sample.gazetteer.tokens("深圳北站西广场旁边的居民乐园")
    assert "北站西广场" in tokens and "民乐" not in tokens
    assert sample.locate_address("居民乐园门口有人摆摊") is None  # 民乐 is a community's short name


def test_matched_names_are_reported(sample: GridIndex) -> None:
    match = sample.locate_address("深圳市龙华区民治街道上芬社区红山地铁站")
    assert match is not None
    assert match.matched == ("深圳市", "龙华区", "民治街道", "上芬社区", "红山地铁站")
    assert match.as_dict()["matched"] == list(match.matched)


def test_entries_and_jieba_dictionary(sample: GridIndex) -> None:
    entries = sample.gazetteer.entries
    assert entries["民治街道"].evidence is Evidence.FULL
    assert entries["民治"].codes == ("440309004",)  # not also 民治社区, the street's descendant
    assert entries["红山地铁站"].evidence is Evidence.PLACE
    assert "上芬社区第1网格" in entries and "上芬社区第1" not in entries
    lines = sample.gazetteer.jieba_dictionary()
    assert "红山地铁站 1000000 ns" in lines
    assert all(len(line.split()) == 3 for line in lines)


@pytest.mark.parametrize(
    "name,short", [("民治街道", "民治"), ("清湖社区", "清湖"), ("龙华区", "龙华"), ("龙华新区", "龙华"), ("北站", None)]
)
def test_short_name(name: str, short: str | None) -> None:
    assert short_name(name) == short


@pytest.mark.parametrize(
    "sample_file,minimum", [("longhua_addresses.jsonl", 0.97), ("longhua_addresses_public.jsonl", 0.9)]
)
def test_accuracy_on_the_labelled_samples(sample: GridIndex, sample_file: str, minimum: float) -> None:
    rows = [json.loads(line) for line in (FIXTURES / sample_file).read_text(encoding="utf-8").splitlines()]
    right = 0
    for row in rows:
        match = sample.locate_address(row["text"])
        right += match is not None and match.code == row["code"]
    assert right / len(rows) >= minimum
