"""Address text → grid unit, through a gazetteer of the grid's own names.

The gazetteer holds, for every unit from the district down: its official name (民治街道), the
short form residents write (民治), the unit's ``aliases`` (民治办事处) and the ``places`` shipped
with it (roads, estates, villages, stations, buildings: 梅龙路, 上芬村, 红山地铁站). They go into
a private jieba tokenizer as user words, so the segmenter keeps 民治大道 or 清湖科技园 whole and
does not find 民乐 inside 居民乐园; ``jieba_dictionary()`` writes the same words for the NLP
segmenter (``nlp.segment``) to load.

Matching: segment the text, look every token up, and score each unit that some token names by
the evidence on its chain (the unit itself, its ancestors): an official name weighs most, then
a place, then a short name or alias; mentions of the district or city barely count. The
best-supported unit wins, the deeper one on a tie of support; a tie between unrelated units is
ambiguous and lowers the confidence, as does a mention that contradicts the chain (another
street). A short name shared by a unit and its own descendant (民治: the street and its
community) is read as the larger unit; the community needs its full name (民治社区) or a place.
"""

from __future__ import annotations

import logging
import threading
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from grid.match import GridMatch, Method, PathStep
from grid.units import GridUnit, Level

_SUFFIXES = ("街道办事处", "街道办", "办事处", "街道", "社区工作站", "社区居委会", "居委会", "社区", "新区", "区", "市")
_WORD_FREQ = 1_000_000  # far above jieba's own words, so a place name is never split
_JIEBA_LOCK = threading.Lock()


class Evidence(IntEnum):
    """Kinds of name, strongest last; the value orders them."""

    SHORT = 1  # a short form or an alias: 民治, 民治办事处
    PLACE = 2  # a road, estate, station … shipped with the unit
    FULL = 3  # the official name: 民治街道


_WEIGHT = {Evidence.SHORT: 0.7, Evidence.PLACE: 0.9, Evidence.FULL: 1.0}
_BASE_CONFIDENCE = {Evidence.SHORT: 0.6, Evidence.PLACE: 0.75, Evidence.FULL: 0.85}
_UPPER_LEVEL_WEIGHT = 0.3  # 龙华区 / 深圳市 confirm a chain but do not pick one


@dataclass(frozen=True, slots=True)
class Entry:
    """A gazetteer name and the units it may mean."""

    name: str
    codes: tuple[str, ...]
    evidence: Evidence


def normalize(text: str) -> str:
    """Full-width to half-width (NFKC) and no spaces: how residents' texts differ from the names."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def short_name(name: str) -> str | None:
    """民治街道 → 民治, 清湖社区 → 清湖; None when nothing of at least two characters is left."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return None


class GridLookup(Protocol):
    """What the gazetteer reads of a loaded grid (``grid.index.GridLookup`` provides it)."""

    @property
    def units(self) -> Sequence[GridUnit]: ...

    @property
    def by_code(self) -> Mapping[str, GridUnit]: ...

    def path(self, code: str) -> tuple[PathStep, ...]: ...


class Gazetteer:
    """The names of one grid, their units, and the matcher. Build once per grid (``index.gazetteer``)."""

    def __init__(self, index: GridLookup) -> None:
        self._index = index
        self.entries: dict[str, Entry] = _build_entries(index)
        self._tokenizer: object | None = None

    def jieba_dictionary(self) -> list[str]:
        """Lines of a jieba user dictionary (``word freq ns``) with every gazetteer name."""
        return [f"{name} {_WORD_FREQ} ns" for name in sorted(self.entries)]

    def tokens(self, text: str) -> list[str]:
        """The text segmented with the gazetteer's words (jieba, exact mode, no HMM)."""
        tokenizer = self._tokenizer or self._build_tokenizer()
        return list(tokenizer.cut(normalize(text), HMM=False))  # type: ignore[attr-defined]

    def _build_tokenizer(self) -> object:
        with _JIEBA_LOCK:
            if self._tokenizer is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                tokenizer = jieba.Tokenizer()
                tokenizer.initialize()
                for name in self.entries:
                    tokenizer.add_word(name, freq=_WORD_FREQ, tag="ns")
                self._tokenizer = tokenizer
        return self._tokenizer

    def mentions(self, text: str) -> list[Entry]:
        """The gazetteer entries the text names, in text order (each name once)."""
        seen: dict[str, Entry] = {}
        for token in self.tokens(text):
            entry = self.entries.get(token)
            if entry is not None:
                seen.setdefault(token, entry)
        return list(seen.values())

    def match(self, text: str) -> GridMatch | None:
        """The unit the address text names, with a confidence; None when it names none."""
        mentions = self.mentions(text)
        if not mentions:
            return None
        return self._resolve(mentions)

    def _resolve(self, mentions: Sequence[Entry]) -> GridMatch | None:
        chains = {code: self._index.path(code) for m in mentions for code in m.codes}
        scored: list[tuple[float, int, str]] = []
        for code, path in chains.items():
            on_chain = {s.code for s in path}
            support = sum(_weight(m, self._index) for m in mentions if on_chain.intersection(m.codes))
            scored.append((support, path[-1].level, code))
        scored.sort(key=lambda s: (-s[0], -s[1], s[2]))
        support, level, code = scored[0]
        if self._index.by_code[code].level < Level.STREET:
            return None  # only the district or the city: not enough to place a report
        ties = [s for s in scored if s[0] == support and s[1] == level]
        path = chains[code]
        on_chain = {s.code for s in path}
        own = max(m.evidence for m in mentions if code in m.codes)
        confidence = _BASE_CONFIDENCE[own]
        if any(on_chain.intersection(m.codes) and code not in m.codes for m in mentions):
            confidence += 0.1  # an ancestor confirms it
        if any(_contradicts(m, on_chain, self._index) for m in mentions):
            confidence -= 0.25
        confidence = min(0.98, max(0.05, confidence / len(ties)))
        matched = tuple(m.name for m in mentions if on_chain.intersection(m.codes))
        return GridMatch(path, Method.ADDRESS, confidence, matched=matched)


def _weight(entry: Entry, index: GridLookup) -> float:
    if all(index.by_code[c].level <= Level.DISTRICT for c in entry.codes):
        return _UPPER_LEVEL_WEIGHT
    return _WEIGHT[entry.evidence]


def _contradicts(entry: Entry, on_chain: set[str], index: GridLookup) -> bool:
    """A street or smaller that the text names and that is not on the chosen chain."""
    return not on_chain.intersection(entry.codes) and all(index.by_code[c].level >= Level.STREET for c in entry.codes)


def _build_entries(index: GridLookup) -> dict[str, Entry]:
    names: dict[str, dict[str, Evidence]] = {}

    def add(name: str, unit: GridUnit, evidence: Evidence) -> None:
        name = normalize(name)
        if len(name) < 2:
            return
        codes = names.setdefault(name, {})
        codes[unit.code] = max(evidence, codes.get(unit.code, evidence))

    for unit in index.units:
        add(unit.name, unit, Evidence.FULL)
        for alias in (*unit.aliases, *_short_forms(unit)):
            add(alias, unit, Evidence.SHORT)
        for place in unit.places:
            add(place, unit, Evidence.PLACE)
    entries = {}
    for name, codes in names.items():
        kept = _drop_descendants(codes, index) if max(codes.values()) is Evidence.SHORT else list(codes)
        entries[name] = Entry(name, tuple(sorted(kept)), max(codes[c] for c in kept))
    return entries


def _short_forms(unit: GridUnit) -> Iterable[str]:
    if unit.level is Level.GRID:
        return ()  # residents do not name grids
    short = short_name(unit.name)
    return (short,) if short else ()


def _drop_descendants(codes: dict[str, Evidence], index: GridLookup) -> list[str]:
    """Keep the codes none of whose ancestors is also in ``codes`` (民治 → the street, not the community)."""
    kept = []
    for code in codes:
        ancestors = {s.code for s in index.path(code)[:-1]}
        if not ancestors.intersection(codes):
            kept.append(code)
    return kept
