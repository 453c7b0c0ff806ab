import nlp.segment as seg
from nlp.segment import get_segmenter, normalize, segment


def test_normalize_width_traditional_placeholders_emoji():
    out = normalize("小區門口的路燈壞了😡 電話１３８１２３４５６７８ 詳見 https://x.cn/a?b=1 ")
    assert "小区门口的路灯坏了" in out
    assert "PHONE" in out and "URL" in out
    assert "😡" not in out and "１" not in out


def test_normalize_ids_emails_and_long_numbers():
    out = normalize("身份证11010519491231002X 邮箱 a.b@qq.com 订单 20231127000123")
    assert "IDNO" in out and "EMAIL" in out and "NUM" in out
    assert "1101" not in out


def test_presegmented_text_normalizes_like_raw_text():
    assert normalize("小区 门口 路灯 坏") == "小区门口路灯坏"


def test_spaces_removed_next_to_chinese_and_collapsed_elsewhere():
    assert normalize("  路灯 \t坏了 light  is\u2028broken 3 号楼 ") == "路灯坏了light is broken 3号楼"
    assert normalize(" \n ") == ""


def test_numbers_written_in_groups_are_still_replaced():
    # the patterns are only tried where 5 digits, or 3 + separator + 4, occur; a grouped number qualifies
    assert normalize("电话 138 0013 8000 找我") == "电话PHONE找我"
    assert normalize("卡号6222-0212-3456-7890") == "卡号BANKNO"
    assert normalize("2017 年 3 号楼 1234") == "2017年3号楼1234"


def test_segment_uses_domain_words_and_drops_stopwords():
    toks = segment("楼道里有很浓的煤气味，请尽快处理！", ["煤气味"])
    assert "煤气味" in toks
    assert "的" not in toks and "，" not in toks


def test_segmenter_is_built_once_per_dictionary():
    a = get_segmenter(["井盖缺失"])
    b = get_segmenter(["井盖缺失"])
    assert a is b
    assert "井盖缺失" in a.cut("路上井盖缺失")


def test_import_does_not_load_jieba_dictionary():
    """Importing and normalizing load no jieba; the first get_segmenter does (in a fresh process)."""
    import subprocess
    import sys

    code = (
        "import sys; import nlp.segment as s; s.normalize('路灯坏了'); "
        "before = ('jieba' in sys.modules, len(s._segmenters)); s.get_segmenter(['井盖']); "
        "print(before, ('jieba' in sys.modules, len(s._segmenters)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(False, 0) (True, 1)"
    assert seg.get_segmenter(["井盖"]) is seg._segmenters[("井盖",)]
