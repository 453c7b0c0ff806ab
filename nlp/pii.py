"""Masking of personal data in report texts (what dispatch and moderators see).

Masked: mainland mobile numbers (``138****5678``), landline numbers (``0755-****5678``),
resident ID card numbers (``4403**********123X``: region prefix and last four kept, checksum
verified so that order numbers are not masked as IDs unless they are valid), bank card numbers
(Luhn-checked, 16-19 digits: ``************1234``) and e-mail addresses (``z***@example.com``).
The text keeps its length and layout apart from the masked digits, so moderators can still read
it. Works on full-width digits too.
"""

from __future__ import annotations

import re
import unicodedata

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

_EMAIL_RE = re.compile(r"([A-Za-z0-9._%+-])([A-Za-z0-9._%+-]*)(@[A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{17}[0-9Xx]|\d{15})(?![0-9A-Za-z])")
_CARD_RE = re.compile(r"(?<![0-9])(\d{4}(?:[ -]?\d{4}){2}[ -]?\d{4,7})(?![0-9])")
_MOBILE_RE = re.compile(r"(?<![0-9])((?:\+?86[- ]?)?)(1[3-9]\d)([- ]?)(\d{4})([- ]?)(\d{4})(?![0-9])")
_LANDLINE_RE = re.compile(r"(?<![0-9])(\(?0\d{2,3}\)?[- ]?)(\d{3,4})(\d{4})(?![0-9])")
_LANDLINE_LOCAL_RE = re.compile(r"(?<=电话|座机|号码|联系)([:：]?\s*)([2-8]\d{3})(\d{4})(?![0-9])")


_ID_SHAPE_RE = re.compile(r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx]")


def _id_valid(number: str) -> bool:
    """A checksum-valid ID, or one with a plausible birth date (a mistyped ID is still personal)."""
    if len(number) == 15:
        return number.isdigit() and number[0] != "0"
    body, check = number[:17], number[17].upper()
    total = sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == check or bool(_ID_SHAPE_RE.fullmatch(number))


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _mask_id(m: re.Match[str]) -> str:
    number = m.group(1)
    if not _id_valid(number):
        return number
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def _mask_card(m: re.Match[str]) -> str:
    raw = m.group(1)
    digits = re.sub(r"[ -]", "", raw)
    if not (16 <= len(digits) <= 19) or not _luhn_ok(digits):
        return raw
    keep = 4
    seen = 0
    out = []
    for ch in reversed(raw):
        if ch.isdigit():
            seen += 1
            out.append(ch if seen <= keep else "*")
        else:
            out.append(ch)
    return "".join(reversed(out))


def _mask_mobile(m: re.Match[str]) -> str:
    prefix, head, sep1, _mid, sep2, tail = m.groups()
    return f"{prefix}{head}{sep1}****{sep2}{tail}"


def _mask_email(m: re.Match[str]) -> str:
    first, rest, domain = m.groups()
    return f"{first}{'*' * max(len(rest), 3)}{domain}"


def _fold_digits(text: str) -> str:
    """Full-width digits and letters to ASCII (NFKC on those characters only)."""
    return "".join(
        unicodedata.normalize("NFKC", ch) if "\uff10" <= ch <= "\uff5a" and ch.isalnum() else ch for ch in text
    )


def mask_pii(text: str) -> str:
    """Mask phone, ID card, bank card numbers and e-mail addresses in ``text``."""
    if not text:
        return text
    text = _fold_digits(text)
    text = _EMAIL_RE.sub(_mask_email, text)
    text = _ID_RE.sub(_mask_id, text)
    text = _CARD_RE.sub(_mask_card, text)
    text = _MOBILE_RE.sub(_mask_mobile, text)
    text = _LANDLINE_RE.sub(lambda m: f"{m.group(1)}{'*' * len(m.group(2))}{m.group(3)}", text)
    text = _LANDLINE_LOCAL_RE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    return text
