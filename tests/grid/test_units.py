"""Import validation: every problem of a grid file is reported, with the feature it concerns."""

from __future__ import annotations

from typing import Any

import pytest

from grid.datum import wgs84_to_gcj02
from grid.index import GridIndex
from grid.units import GridImportError, Level, parse_feature_collection
from tests.grid.conftest import feature, square, tiny_grid


def problems(doc: Any) -> list[str]:
    with pytest.raises(GridImportError) as info:
        parse_feature_collection(doc)
    return [str(p) for p in info.value.problems]


def test_tiny_grid_imports() -> None:
    units = parse_feature_collection(tiny_grid())
    assert [u.code for u in units] == ["D", "S1", "S2", "C1", "C2", "G1", "G2"]
    assert units[2].places == ("东环路",)
    assert units[0].level is Level.DISTRICT and units[0].parent is None


def test_not_a_feature_collection() -> None:
    assert problems({"type": "Feature"}) == ['file: not a GeoJSON FeatureCollection ("type" must be it)']
    assert problems({"type": "FeatureCollection", "features": []}) == ['file: "features" must be a non-empty list']


def test_unknown_datum() -> None:
    doc = tiny_grid() | {"datum": "bd09"}
    assert problems(doc) == ["file: unknown datum 'bd09': use wgs84 or gcj02"]


def test_missing_fields_and_bad_level_are_all_listed() -> None:
    doc = tiny_grid()
    del doc["features"][1]["properties"]["code"]
    doc["features"][2]["properties"]["name"] = " "
    doc["features"][3]["properties"]["level"] = "小区"
    doc["features"][4]["properties"]["places"] = "东村"
    assert problems(doc) == [
        'feature 1: "code" is required (a non-empty string)',
        'feature 2 (code S2): "name" is required (a non-empty string)',
        "feature 3 (code C1): unknown level '小区': use one of 市, 区, 街道, 社区, 网格",
        'feature 4 (code C2): "places" must be a list of non-empty strings',
    ]


def test_duplicate_code() -> None:
    doc = tiny_grid()
    doc["features"][4]["properties"]["code"] = "C1"
    assert problems(doc) == ["feature 4 (code C1): duplicate code"]


def test_parent_missing_or_not_above() -> None:
    doc = tiny_grid()
    doc["features"][3]["properties"]["parent"] = "S9"
    doc["features"][4]["properties"]["parent"] = "G1"
    assert problems(doc) == [
        "feature 3 (code C1): parent S9 is not in the file",
        "feature 4 (code C2): parent G1 is a 网格, not above a 社区",
    ]


def test_geometry_problems() -> None:
    doc = tiny_grid()
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    doc["features"][5]["geometry"] = bowtie
    doc["features"][6]["geometry"] = {"type": "Point", "coordinates": [0.7, 0.2]}
    doc["features"][4]["geometry"] = None
    swapped = {"type": "Polygon", "coordinates": [[[22.6, 114.0], [22.7, 114.0], [22.7, 114.1], [22.6, 114.0]]]}
    doc["features"][2]["geometry"] = swapped
    found = problems(doc)
    assert found[0] == "feature 2 (code S2): coordinates out of range: GeoJSON is [longitude, latitude]"
    assert found[1] == "feature 4 (code C2): a 社区 unit needs a geometry"
    assert found[2].startswith("feature 5 (code G1): invalid geometry: Self-intersection")
    assert found[3] == "feature 6 (code G2): geometry must be a Polygon, a MultiPolygon or null"


def test_child_outside_parent() -> None:
    doc = tiny_grid()
    doc["features"][6]["geometry"] = square(0.5, 0, 1.5, 0.5)  # half of it in the east community
    assert problems(doc) == ["feature 6 (code G2): 50% of it lies outside its parent C1"]


def test_overlapping_siblings() -> None:
    doc = tiny_grid()
    doc["features"][6]["geometry"] = square(0.25, 0, 1, 0.5)
    assert problems(doc) == ["feature 6 (code G2): overlaps its sibling G1 (西社区第1网格)"]


def test_slivers_within_tolerance_are_accepted() -> None:
    doc = tiny_grid()
    doc["features"][6]["geometry"] = square(0.499, 0, 1.001, 0.5)  # digitising noise
    assert len(parse_feature_collection(doc)) == 7


def test_gcj02_file_is_stored_in_wgs84() -> None:
    # A community drawn on a Chinese web map (GCJ-02) around a WGS-84 point in Longhua.
    lat, lng = 22.6571, 114.0323
    ring = [
        wgs84_to_gcj02(lat + dy, lng + dx) for dx, dy in [(-1e-3, -1e-3), (1e-3, -1e-3), (1e-3, 1e-3), (-1e-3, 1e-3)]
    ]
    coords = [[g_lng, g_lat] for g_lat, g_lng in [*ring, ring[0]]]
    doc = {
        "type": "FeatureCollection",
        "datum": "GCJ-02",
        "features": [feature("C", "样例社区", "社区", None, {"type": "Polygon", "coordinates": [coords]})],
    }
    index = GridIndex(parse_feature_collection(doc))
    match = index.locate(lat, lng)
    assert match is not None and match.code == "C"
    assert index.locate(*wgs84_to_gcj02(lat, lng)) is None  # the unconverted reading would be 500 m off


@pytest.mark.parametrize(
    "value,level", [("街道", Level.STREET), ("community", Level.COMMUNITY), (5, Level.GRID), ("镇", Level.STREET)]
)
def test_level_parse(value: object, level: Level) -> None:
    assert Level.parse(value) is level


def test_level_parse_refuses_bool() -> None:
    with pytest.raises(ValueError):
        Level.parse(True)
