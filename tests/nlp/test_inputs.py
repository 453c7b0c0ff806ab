import pytest

from nlp.inputs import NO_TEXT, NOT_CHINESE, input_problem
from nlp.segment import normalize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("小区门口的路灯坏了好几天了", None),  # the fast path: Chinese throughout
        ("灯坏了 the street light is broken", NOT_CHINESE),  # 3 Chinese, 22 Latin letters
        ("路灯坏了很多天 light broken", None),  # 7 Chinese, 11 Latin letters: still mostly Chinese
        ("楼上漏水 water", None),  # fewer than 6 foreign letters
        ("街灯が壊れています", NOT_CHINESE),  # kana
        ("[图片] 如图", NO_TEXT),
        ("", NO_TEXT),
    ],
)
def test_input_problem(text, expected):
    assert input_problem(normalize(text)) == expected
