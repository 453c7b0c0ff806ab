"""The two-level event taxonomy: loading, validation and look-ups.

A taxonomy file is YAML with ``categories`` (top level, 2-digit codes), each holding
``subcategories`` (4-digit codes whose first two digits are the parent's code), each with
``name_zh``, ``keywords`` and ``priority`` (P1-P4). See ``nlp/data/city_events.yaml``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

DEFAULT_TAXONOMY_PATH = Path(__file__).parent / "data" / "city_events.yaml"
PRIORITIES = ("P1", "P2", "P3", "P4")


class TaxonomyError(ValueError):
    """The taxonomy file does not have the expected shape."""


@dataclass(frozen=True)
class Subcategory:
    code: str
    name: str
    name_en: str
    parent_code: str
    priority: str
    keywords: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    name_en: str
    subcategories: tuple[Subcategory, ...]

    @property
    def priority(self) -> str:
        """The most urgent priority of its subcategories (used when no subcategory is known)."""
        return min((s.priority for s in self.subcategories), default="P3")


@dataclass(frozen=True)
class Taxonomy:
    name: str
    categories: tuple[Category, ...]
    sha256: str
    path: str = ""
    _index: dict[str, Category | Subcategory] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for cat in self.categories:
            self._index[cat.code] = cat
            for sub in cat.subcategories:
                self._index[sub.code] = sub

    def __contains__(self, code: object) -> bool:
        return code in self._index

    def get(self, code: str) -> Category | Subcategory | None:
        return self._index.get(code)

    def category(self, code: str) -> Category:
        item = self._index.get(code)
        if not isinstance(item, Category):
            raise KeyError(code)
        return item

    def subcategory(self, code: str) -> Subcategory:
        item = self._index.get(code)
        if not isinstance(item, Subcategory):
            raise KeyError(code)
        return item

    def subcategories(self) -> Iterator[Subcategory]:
        for cat in self.categories:
            yield from cat.subcategories

    def top_level_of(self, code: str) -> str | None:
        """The top-level code of a top-level or subcategory code; None if unknown."""
        item = self._index.get(code)
        if isinstance(item, Category):
            return item.code
        if isinstance(item, Subcategory):
            return item.parent_code
        return None

    def name_of(self, code: str) -> str:
        item = self._index.get(code)
        return item.name if item is not None else code

    def priority_of(self, code: str) -> str:
        item = self._index.get(code)
        return item.priority if item is not None else "P3"

    def keywords(self) -> set[str]:
        return {kw for sub in self.subcategories() for kw in sub.keywords}


def _str(value: object, where: str, key: str) -> str:
    if not isinstance(value, str | int) or str(value).strip() == "":
        raise TaxonomyError(f"{where}: `{key}` must be a non-empty string")
    return str(value).strip()


def parse_taxonomy(data: object, *, sha256: str = "", path: str = "") -> Taxonomy:
    """Validate a parsed taxonomy document and build a :class:`Taxonomy`."""
    if not isinstance(data, dict) or not isinstance(data.get("categories"), list):
        raise TaxonomyError("taxonomy must be a mapping with a `categories` list")
    seen: set[str] = set()
    categories: list[Category] = []
    for i, raw in enumerate(data["categories"]):
        where = f"categories[{i}]"
        if not isinstance(raw, dict):
            raise TaxonomyError(f"{where}: must be a mapping")
        code = _str(raw.get("code"), where, "code")
        if not (len(code) == 2 and code.isdigit()):
            raise TaxonomyError(f"{where}: top-level code {code!r} must be 2 digits")
        if code in seen:
            raise TaxonomyError(f"{where}: duplicate code {code}")
        seen.add(code)
        subs_raw = raw.get("subcategories") or []
        if not isinstance(subs_raw, list) or not subs_raw:
            raise TaxonomyError(f"{where} ({code}): needs a non-empty `subcategories` list")
        subs: list[Subcategory] = []
        for j, sraw in enumerate(subs_raw):
            swhere = f"{where}.subcategories[{j}]"
            if not isinstance(sraw, dict):
                raise TaxonomyError(f"{swhere}: must be a mapping")
            scode = _str(sraw.get("code"), swhere, "code")
            if not (len(scode) == 4 and scode.isdigit() and scode.startswith(code)):
                raise TaxonomyError(f"{swhere}: code {scode!r} must be 4 digits starting with {code}")
            if scode in seen:
                raise TaxonomyError(f"{swhere}: duplicate code {scode}")
            seen.add(scode)
            priority = str(sraw.get("priority", "P3"))
            if priority not in PRIORITIES:
                raise TaxonomyError(f"{swhere} ({scode}): priority {priority!r} not in {PRIORITIES}")
            keywords = sraw.get("keywords") or []
            if not isinstance(keywords, list):
                raise TaxonomyError(f"{swhere} ({scode}): `keywords` must be a list")
            subs.append(
                Subcategory(
                    code=scode,
                    name=_str(sraw.get("name_zh"), swhere, "name_zh"),
                    name_en=str(sraw.get("name_en", "")),
                    parent_code=code,
                    priority=priority,
                    keywords=tuple(str(k) for k in keywords if str(k).strip()),
                    note=str(sraw.get("note", "")),
                )
            )
        categories.append(
            Category(
                code=code,
                name=_str(raw.get("name_zh"), where, "name_zh"),
                name_en=str(raw.get("name_en", "")),
                subcategories=tuple(subs),
            )
        )
    return Taxonomy(name=str(data.get("name", "")), categories=tuple(categories), sha256=sha256, path=path)


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load and validate a taxonomy file (default: the bundled city taxonomy). Cached per path."""
    resolved = Path(path).resolve() if path is not None else DEFAULT_TAXONOMY_PATH.resolve()
    return _load_cached(str(resolved), resolved.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _load_cached(path: str, _mtime_ns: int) -> Taxonomy:
    raw = Path(path).read_bytes()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{path}: not valid YAML: {exc}") from exc
    return parse_taxonomy(data, sha256=hashlib.sha256(raw).hexdigest(), path=path)
