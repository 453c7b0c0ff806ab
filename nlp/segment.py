"""Text normalization and Chinese word segmentation.

``normalize`` is what every text goes through before features, rules and de-duplication:
full-width to half-width (NFKC), traditional to simplified Chinese, URLs, e-mail addresses,
phone, ID and bank-card numbers and long digit runs replaced by ASCII placeholders, emoji and
control characters dropped, and whitespace between Chinese characters removed (so a text that
was already segmented with spaces, like the 泰迪杯 dataset's ``text`` column, normalizes to the
same string as the unsegmented original minus its stop words).

``Segmenter`` wraps a private ``jieba.Tokenizer`` with a domain dictionary built from the
taxonomy keywords. It is created lazily, once per process and taxonomy (``get_segmenter``);
importing this module loads nothing.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

# Placeholders are upper-case ASCII words: jieba keeps them as single tokens.
URL = "URL"
EMAIL = "EMAIL"
PHONE = "PHONE"
IDNO = "IDNO"
BANKNO = "BANKNO"
NUM = "NUM"

_URL_RE = re.compile(r"(?:https?://|www\.)[^\s\u3000-\u303f\u4e00-\u9fff，。！？；：、）》]+", re.I)
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_IDNO_RE = re.compile(
    r"(?<![0-9])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?![0-9])"
)
_MOBILE_RE = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?![0-9])")
_LANDLINE_RE = re.compile(r"(?<![0-9])(?:\(?0\d{2,3}\)?[- ]?)\d{7,8}(?![0-9])")
_BANK_RE = re.compile(r"(?<![0-9])(?:\d{4}[ -]?){3}\d{4}(?:\d{0,3})(?![0-9])")
_LONGNUM_RE = re.compile(r"\d{5,}")
# Every number pattern above holds 5 digits in a row, or 3 then a separator then 4 (138 0013 8000).
_NUMBER_HINT_RE = re.compile(r"\d{5}|\d{3}[- ]\d{4}")
# Emoji, pictographs, dingbats, variation selectors, zero-width characters.
_EMOJI_RE = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f1e6-\U0001f1ff\ufe00-\ufe0f\u200b-\u200f\u2060\ufeff]+"
)


@lru_cache(maxsize=1)
def _traditional_chars() -> frozenset[str]:
    """Characters that zhconv would change; a text without any of them needs no conversion."""
    from zhconv import zhconv as _zc  # lazy: the conversion table is large

    # Load the table from its path: zhconv's default loader leaves the file open (ResourceWarning).
    _zc.loaddict(str(Path(_zc.__file__).with_name("zhcdict.json")))
    mapping: dict[str, str] = _zc.getdict("zh-cn")
    return frozenset(k for k, v in mapping.items() if len(k) == 1 and k != v)


def to_simplified(text: str) -> str:
    if _traditional_chars().isdisjoint(text):  # C-level scan: most texts need no conversion
        return text
    from zhconv import convert

    return str(convert(text, "zh-cn"))


def _is_cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff"


def _join_words(text: str) -> str:
    """Whitespace runs next to a Chinese character (U+3400-U+9FFF) removed, the others made one
    space, the ends stripped."""
    words = text.split()
    if len(words) <= 1:
        return words[0] if words else ""
    out = [words[0]]
    for prev, word in zip(words, words[1:], strict=False):
        if not (_is_cjk(prev[-1]) or _is_cjk(word[0])):
            out.append(" ")
        out.append(word)
    return "".join(out)


def normalize(text: str) -> str:
    """Normalize a resident's text for features, rules and comparisons (see module doc)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _EMOJI_RE.sub(" ", text)
    # The checks before each substitution skip scans that cannot match (same result, faster).
    if "www." in text or "://" in text:
        text = _URL_RE.sub(f" {URL} ", text)
    if "@" in text:
        text = _EMAIL_RE.sub(f" {EMAIL} ", text)
    if _NUMBER_HINT_RE.search(text):
        text = _IDNO_RE.sub(f" {IDNO} ", text)
        text = _BANK_RE.sub(f" {BANKNO} ", text)
        text = _MOBILE_RE.sub(f" {PHONE} ", text)
        text = _LANDLINE_RE.sub(f" {PHONE} ", text)
        text = _LONGNUM_RE.sub(f" {NUM} ", text)
    if not text.isprintable():  # rare: control/format characters (or tabs, newlines) present
        text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return _join_words(to_simplified(text))


# Function words and particles that carry no topic. Kept short on purpose: TF-IDF already
# down-weights frequent words, and negations (不, 没) matter for rules.
STOPWORDS = frozenset(
    "的 了 着 过 吗 呢 吧 啊 呀 哦 嘛 么 和 与 及 或 而 也 都 就 还 又 在 是 有 这 那 这个 那个 我 我们 你 你们 "
    "他 她 它 他们 请 您 一下 一个 已经 非常 十分 特别 真的 现在 今天 昨天 因为 所以 但是 可是 如果 还是 "
    "对 把 被 给 让 从 到 为 于 以 之 其 该 此 等 啦 哈 嗯".split()
)
_PUNCT_RE = re.compile(r"^[\W_]+$")


class Segmenter:
    """jieba with the taxonomy's domain words, one private dictionary per instance."""

    def __init__(self, domain_words: Iterable[str] = ()) -> None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        self._tok = jieba.Tokenizer()
        self._tok.initialize()
        for word in sorted(set(domain_words)):
            word = normalize(word)
            if 2 <= len(word) <= 6 and " " not in word:
                self._tok.add_word(word)

    def cut(self, text: str) -> list[str]:
        """Segment normalized text into content tokens (punctuation and stop words dropped)."""
        out = []
        for tok in self._tok.cut(text, HMM=False):
            tok = tok.strip()
            if not tok or tok in STOPWORDS or _PUNCT_RE.match(tok):
                continue
            out.append(tok)
        return out


_lock = threading.Lock()
_segmenters: dict[tuple[str, ...], Segmenter] = {}


def get_segmenter(domain_words: Iterable[str] = ()) -> Segmenter:
    """The process-wide segmenter for this domain dictionary (built on first use)."""
    key = tuple(sorted(set(domain_words)))
    seg = _segmenters.get(key)
    if seg is None:
        with _lock:
            seg = _segmenters.get(key)
            if seg is None:
                seg = Segmenter(key)
                _segmenters[key] = seg
    return seg


def segment(text: str, domain_words: Iterable[str] = ()) -> list[str]:
    """Normalize and segment one text (convenience for callers outside the classifier)."""
    return get_segmenter(domain_words).cut(normalize(text))
