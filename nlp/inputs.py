"""Texts the classifier must not guess on: no words at all, or not (mostly) Chinese.

A photo sent without a caption, a WeChat "[图片]" placeholder or a lone "如图" carries no words a
text model can read, and a model trained on Chinese scores an English or Korean report on
accidental letter n-grams ("(e, d, l)" once sent an English report to 户外广告). Both go to
moderators with the reason, and without a category.
"""

from __future__ import annotations

import re

NO_TEXT = "no_text"
NOT_CHINESE = "not_chinese"

# What channels and residents put in place of words: media placeholders, "see the photo".
_MEDIA_RE = re.compile(
    r"\[(?:图片|照片|语音|视频|表情|动画表情|位置|链接|文件)\]|发了一张图片|分享了?(?:图片|照片|视频)|"
    r"(?:如|见|看|详见|请看|附)(?:图|照片|图片|视频)(?:所示)?|图片|照片|视频|语音|随手拍"
)
_PLACEHOLDER_RE = re.compile(r"\b(?:URL|EMAIL|PHONE|IDNO|BANKNO|NUM)\b")  # from segment.normalize
_HAN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_NON_HAN_RUN_RE = re.compile(r"[^\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_KANA_RE = re.compile(r"[\u3040-\u30ff]")
MIN_HAN_SHARE = 0.3  # below this share of Chinese in the letters of a text, it is "not Chinese"
MIN_FOREIGN_LETTERS = 6  # ...provided it has this many letters of another script ("ok" is not a language)


def input_problem(normalized: str) -> str | None:
    """``NO_TEXT``, ``NOT_CHINESE`` or None for a ``segment.normalize``-d text."""
    text = _PLACEHOLDER_RE.sub(" ", normalized)
    stripped = _MEDIA_RE.sub(" ", text)
    han = len(stripped) - _non_han(stripped)
    if han >= 2 and 2 * _non_han(text) < han:
        # Fast path, same answer: the letters of another script (kana included) are among the
        # non-Chinese characters, fewer than half the Chinese ones, so neither test below can fire.
        return None
    letters = [ch for ch in text if ch.isalpha() and not _HAN_RE.match(ch)]
    kana = sum(1 for ch in letters if _KANA_RE.match(ch))
    if han < 2 and len(letters) < 3:
        return NO_TEXT
    if kana >= 2 and 2 * kana >= han:  # Japanese: kana alongside (or instead of) kanji
        return NOT_CHINESE
    # A Chinese character is about a word; count other scripts' letters at about two a word.
    if len(letters) >= MIN_FOREIGN_LETTERS and han / (han + len(letters) / 2) < MIN_HAN_SHARE:
        return NOT_CHINESE
    return None


def _non_han(text: str) -> int:
    """The number of characters of ``text`` that are not Chinese (runs: cheap on Chinese text)."""
    return sum(len(run) for run in _NON_HAN_RUN_RE.findall(text))
