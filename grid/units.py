"""Grid units (网格单元) as data, and their GeoJSON import format.

A grid is a tree of units on five levels, 市 — 区 — 街道 — 社区 — 网格 (city, district, street,
community, grid). The import format is a GeoJSON FeatureCollection, one Feature per unit::

    {"type": "FeatureCollection",
     "datum": "wgs84",                      # or "gcj02"; optional, default wgs84
     "features": [
       {"type": "Feature",
        "properties": {"code": "440309006", "name": "民治街道", "level": "街道",
                       "parent": "440309",  # null only for the root(s)
                       "aliases": ["民治办事处"],   # optional: other names residents use
                       "places": ["民治大道", "白石龙地铁站"]},  # optional: roads, buildings, estates
        "geometry": {"type": "Polygon", "coordinates": [...]}}]}  # null allowed above 社区

``parse_feature_collection`` checks everything a grid needs to be usable (codes unique, parents
present and one level up or more, geometries valid polygons in range, children inside their
parent, siblings not overlapping) and raises one ``GridImportError`` listing every problem with
the feature it concerns, so a city's GIS team can fix a file in one pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from grid.datum import Datum, gcj02_to_wgs84_many

# A child may stick out of its parent by this share of its own area (digitising slivers), and
# two siblings may overlap by this share of the smaller one, before the import refuses them.
OUTSIDE_PARENT_TOLERANCE = 0.01
SIBLING_OVERLAP_TOLERANCE = 0.01


class Level(IntEnum):
    """A unit's level; a larger value is a smaller unit."""

    CITY = 1
    DISTRICT = 2
    STREET = 3
    COMMUNITY = 4
    GRID = 5

    @property
    def label(self) -> str:
        return _LEVEL_LABELS[self]

    @classmethod
    def parse(cls, value: object) -> Level:
        """A level from its Chinese name (市, 区, 街道, 社区, 网格), English name or number."""
        if isinstance(value, int) and not isinstance(value, bool) and value in cls._value2member_map_:
            return cls(value)
        if isinstance(value, str):
            key = value.strip().lower()
            for level, names in _LEVEL_NAMES.items():
                if key in names:
                    return level
        raise ValueError(f"unknown level {value!r}: use one of 市, 区, 街道, 社区, 网格")


_LEVEL_LABELS = {
    Level.CITY: "市",
    Level.DISTRICT: "区",
    Level.STREET: "街道",
    Level.COMMUNITY: "社区",
    Level.GRID: "网格",
}
_LEVEL_NAMES = {
    Level.CITY: {"市", "city", "1"},
    Level.DISTRICT: {"区", "县", "district", "2"},
    Level.STREET: {"街道", "镇", "street", "subdistrict", "3"},
    Level.COMMUNITY: {"社区", "村", "community", "4"},
    Level.GRID: {"网格", "grid", "5"},
}


@dataclass(frozen=True, slots=True)
class GridUnit:
    """One unit of the grid. ``geometry`` is in WGS-84 (lng, lat) or None for a pure tree node."""

    code: str
    name: str
    level: Level
    parent: str | None
    geometry: BaseGeometry | None = field(default=None, compare=False, repr=False)
    aliases: tuple[str, ...] = ()
    places: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportProblem:
    """One problem in an import file: which feature (index and code when known) and what."""

    feature: int | None
    code: str | None
    message: str

    def __str__(self) -> str:
        where = "file" if self.feature is None else f"feature {self.feature}"
        if self.code:
            where += f" (code {self.code})"
        return f"{where}: {self.message}"


class GridImportError(ValueError):
    """The grid file cannot be used; ``problems`` lists every reason found, in file order."""

    def __init__(self, problems: Sequence[ImportProblem]) -> None:
        self.problems = tuple(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:50])
        more = f"\n  … and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(f"{len(self.problems)} problem(s) in the grid file:\n{shown}{more}")


def parse_feature_collection(doc: Any) -> list[GridUnit]:
    """Units from a parsed GeoJSON FeatureCollection, converted to WGS-84; raises GridImportError."""
    problems: list[ImportProblem] = []
    if not isinstance(doc, Mapping) or doc.get("type") != "FeatureCollection":
        raise GridImportError([ImportProblem(None, None, 'not a GeoJSON FeatureCollection ("type" must be it)')])
    try:
        datum = Datum.parse(str(doc.get("datum") or "wgs84"))
    except ValueError as exc:
        raise GridImportError([ImportProblem(None, None, str(exc))]) from None
    features = doc.get("features")
    if not isinstance(features, list) or not features:
        raise GridImportError([ImportProblem(None, None, '"features" must be a non-empty list')])
    units = [u for i, f in enumerate(features) if (u := _parse_feature(i, f, datum, problems)) is not None]
    if not problems:
        _check_tree(units, problems)
    if not problems:
        _check_geometry(units, problems)
    if problems:
        raise GridImportError(problems)
    return units


def _parse_feature(index: int, feature: Any, datum: Datum, problems: list[ImportProblem]) -> GridUnit | None:
    if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
        problems.append(ImportProblem(index, None, 'not a GeoJSON Feature ("type": "Feature")'))
        return None
    props = feature.get("properties")
    if not isinstance(props, Mapping):
        problems.append(ImportProblem(index, None, '"properties" must be an object'))
        return None
    before = len(problems)
    code = _text(props, "code", index, None, problems)
    name = _text(props, "name", index, code, problems)
    level: Level | None = None
    try:
        level = Level.parse(props.get("level"))
    except ValueError as exc:
        problems.append(ImportProblem(index, code, str(exc)))
    parent = props.get("parent")
    if parent is not None and (not isinstance(parent, str | int) or not str(parent).strip()):
        problems.append(ImportProblem(index, code, '"parent" must be a unit code or null'))
    aliases = _names(props, "aliases", index, code, problems)
    places = _names(props, "places", index, code, problems)
    geometry = _geometry(feature.get("geometry"), datum, index, code, problems)
    if geometry is None and level is not None and level >= Level.COMMUNITY and len(problems) == before:
        problems.append(ImportProblem(index, code, f"a {level.label} unit needs a geometry"))
    if len(problems) > before or code is None or name is None or level is None:
        return None
    return GridUnit(code, name, level, None if parent is None else str(parent).strip(), geometry, aliases, places)


def _text(
    props: Mapping[str, Any], key: str, index: int, code: str | None, problems: list[ImportProblem]
) -> str | None:
    value = props.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        problems.append(ImportProblem(index, code, f'"{key}" is required (a non-empty string)'))
        return None
    return value.strip()


def _names(
    props: Mapping[str, Any], key: str, index: int, code: str | None, problems: list[ImportProblem]
) -> tuple[str, ...]:
    value = props.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.append(ImportProblem(index, code, f'"{key}" must be a list of non-empty strings'))
        return ()
    return tuple(dict.fromkeys(v.strip() for v in value))


def _geometry(
    value: Any, datum: Datum, index: int, code: str | None, problems: list[ImportProblem]
) -> BaseGeometry | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or value.get("type") not in ("Polygon", "MultiPolygon"):
        problems.append(ImportProblem(index, code, "geometry must be a Polygon, a MultiPolygon or null"))
        return None
    try:
        geom = shapely.geometry.shape(value)
    except (ValueError, TypeError, AttributeError, IndexError, shapely.errors.ShapelyError) as exc:
        problems.append(ImportProblem(index, code, f"geometry cannot be read: {exc}"))
        return None
    if geom.is_empty:
        problems.append(ImportProblem(index, code, "geometry is empty"))
        return None
    coords = shapely.get_coordinates(geom)
    if not (
        ((-180 <= coords[:, 0]) & (coords[:, 0] <= 180)).all() and ((-90 <= coords[:, 1]) & (coords[:, 1] <= 90)).all()
    ):
        problems.append(ImportProblem(index, code, "coordinates out of range: GeoJSON is [longitude, latitude]"))
        return None
    if not geom.is_valid:
        problems.append(ImportProblem(index, code, f"invalid geometry: {shapely.is_valid_reason(geom)}"))
        return None
    if datum is Datum.GCJ02:
        geom = shapely.transform(geom, _gcj_to_wgs_xy)
    return geom


def _gcj_to_wgs_xy(xy: Any) -> Any:
    """shapely.transform's callback: an (N, 2) array of (lng, lat) in GCJ-02 → WGS-84."""
    lat, lng = gcj02_to_wgs84_many(xy[:, 1], xy[:, 0])
    return np.column_stack([lng, lat])


def _check_tree(units: Sequence[GridUnit], problems: list[ImportProblem]) -> None:
    by_code: dict[str, GridUnit] = {}
    for i, unit in enumerate(units):
        if unit.code in by_code:
            problems.append(ImportProblem(i, unit.code, "duplicate code"))
        by_code.setdefault(unit.code, unit)
    if problems:
        return
    for i, unit in enumerate(units):
        if unit.parent is None:
            continue
        parent = by_code.get(unit.parent)
        if parent is None:
            problems.append(ImportProblem(i, unit.code, f"parent {unit.parent} is not in the file"))
        elif parent.level >= unit.level:
            problems.append(
                ImportProblem(
                    i, unit.code, f"parent {parent.code} is a {parent.level.label}, not above a {unit.level.label}"
                )
            )


def _check_geometry(units: Sequence[GridUnit], problems: list[ImportProblem]) -> None:
    by_code = {u.code: u for u in units}
    position = {u.code: i for i, u in enumerate(units)}
    children: dict[str, list[GridUnit]] = {}
    for unit in units:
        if unit.parent is not None:
            children.setdefault(unit.parent, []).append(unit)
    for unit in units:
        parent = by_code.get(unit.parent) if unit.parent else None
        if unit.geometry is None or parent is None or parent.geometry is None:
            continue
        outside = unit.geometry.difference(parent.geometry).area
        if outside > OUTSIDE_PARENT_TOLERANCE * unit.geometry.area:
            share = outside / unit.geometry.area
            problems.append(
                ImportProblem(
                    position[unit.code], unit.code, f"{share:.0%} of it lies outside its parent {parent.code}"
                )
            )
    for siblings in children.values():
        _check_siblings([s for s in siblings if s.geometry is not None], position, problems)


def _check_siblings(siblings: Sequence[GridUnit], position: Mapping[str, int], problems: list[ImportProblem]) -> None:
    if len(siblings) < 2:
        return
    geoms = [s.geometry for s in siblings]
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        if a >= b:
            continue
        ga, gb = geoms[a], geoms[b]
        assert ga is not None and gb is not None
        overlap = ga.intersection(gb).area
        if overlap > SIBLING_OVERLAP_TOLERANCE * min(ga.area, gb.area):
            ua, ub = siblings[a], siblings[b]
            problems.append(ImportProblem(position[ub.code], ub.code, f"overlaps its sibling {ua.code} ({ua.name})"))


def ancestors(unit: GridUnit, by_code: Mapping[str, GridUnit]) -> list[GridUnit]:
    """The unit's chain from the root down to the unit itself."""
    chain = [unit]
    while chain[-1].parent is not None and chain[-1].parent in by_code and len(chain) <= len(Level):
        chain.append(by_code[chain[-1].parent])
    return chain[::-1]


def feature_collection(units: Iterable[GridUnit]) -> dict[str, Any]:
    """The import format for ``units`` (WGS-84), rounded to 7 decimals (about 1 cm)."""
    features = []
    for unit in units:
        geometry = None
        if unit.geometry is not None:
            geometry = shapely.geometry.mapping(shapely.set_precision(unit.geometry, 1e-7))
        props: dict[str, Any] = {"code": unit.code, "name": unit.name, "level": unit.level.label, "parent": unit.parent}
        if unit.aliases:
            props["aliases"] = list(unit.aliases)
        if unit.places:
            props["places"] = list(unit.places)
        features.append({"type": "Feature", "properties": props, "geometry": _plain(geometry)})
    return {"type": "FeatureCollection", "datum": Datum.WGS84.value, "features": features}


def _plain(value: Any) -> Any:
    """shapely's mapping() gives nested tuples; JSON wants lists (and finite numbers)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("non-finite coordinate")
    return value
