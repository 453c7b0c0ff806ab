import pytest

from nlp import mask_pii


@pytest.mark.parametrize(
    "text, masked, leaked",
    [
        ("我的电话13812345678请回电", "138****5678", "13812345678"),
        ("+86 138-1234-5678", "138-****-5678", "1234"),
        ("座机0755-83345678", "0755-****5678", "8334"),
        ("身份证11010519491231002X", "1101**********002X", "0519491231"),
        ("卡号4111 1111 1111 1111", "**** **** **** 1111", "4111 1111 1111 1111"),
        ("卡号6222020000000000000", None, None),
        ("邮箱zhang.san@example.com", "z********@example.com", "zhang.san"),
        ("手机１３８１２３４５６７８", "138****5678", "12345678"),
    ],
)
def test_masks(text, masked, leaked):
    out = mask_pii(text)
    if masked is not None:
        assert masked in out
    if leaked is not None:
        assert leaked not in out


def test_leaves_ordinary_numbers_alone():
    text = "3栋201室，订单号20231127000123，温度35度，2019年12月"
    assert mask_pii(text) == text


def test_empty():
    assert mask_pii("") == ""
