"""Hypothesis strategies for hostile input, shared by the parser and route properties.

Every property runs derandomized (a fixed sequence of examples, no example database), so a CI
run is reproducible and takes a few seconds.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

# Settings for properties: fixed examples, quick, no files written.
FAST = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=list(HealthCheck),
)

NAMED = [
    "\x00",
    "路灯\x00坏了",
    "\ud800",
    "a\udfffb",
    "' OR 1=1; DROP TABLE reports; --",
    "'); DELETE FROM messages; --",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(document.cookie)>',
    "{{7*7}}",
    "=cmd|' /C calc'!A0",
    "９" * 400,
    "²",
    "x" * 6000,
    "\u202e\ufeff",
]
INJECTIONS = [s for s in NAMED if "<" in s or "'" in s or "{" in s]

# Text as residents and attackers write it: Chinese, any code point (lone surrogates included),
# and the named hostile cases.
text = st.one_of(
    st.sampled_from(NAMED),
    st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), max_size=30),
    st.text(alphabet=st.characters(blacklist_categories=()), max_size=60),
    st.text(max_size=20),
)
raw_bytes = st.one_of(
    st.binary(max_size=300),
    text.map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), max_size=30).map(
        lambda s: s.encode("gb18030")
    ),
    st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\x00" * 8]),
)
scalars = st.one_of(
    text,
    st.integers(min_value=-(10**80), max_value=10**80),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4)
)


def examples(strategy: st.SearchStrategy[Any], count: int = 60) -> list[Any]:
    """``count`` derandomized examples of ``strategy``, to send through an async test client."""
    found: list[Any] = []

    @settings(FAST, max_examples=count, phases=[Phase.generate])
    @given(strategy)
    def collect(value: Any) -> None:
        found.append(value)

    collect()
    return found
