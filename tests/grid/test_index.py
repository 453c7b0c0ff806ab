"""Locating points on the sample grid and on a tiny hand-made one: inside, edges, outside, datums."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from grid.datum import Datum, wgs84_to_gcj02
from grid.index import GridIndex
from grid.match import Method
from grid.units import Level, parse_feature_collection
from tests.grid.conftest import tiny_grid


@pytest.fixture(scope="module")
def tiny() -> GridIndex:
    return GridIndex(parse_feature_collection(tiny_grid()))


def test_inside_a_grid_unit_gives_the_full_path(tiny: GridIndex) -> None:
    match = tiny.locate(0.25, 0.25)
    assert match is not None
    assert [s.code for s in match.path] == ["D", "S1", "C1", "G1"]
    assert [s.name for s in match.path] == ["测试区", "西街道", "西社区", "西社区第1网格"]
    assert (match.method, match.confidence, match.level) == (Method.POINT, 1.0, Level.GRID)


def test_a_community_not_covered_by_grids_is_the_deepest_unit(tiny: GridIndex) -> None:
    match = tiny.locate(0.75, 0.5001)
    assert match is not None and match.code == "C1" and match.level is Level.COMMUNITY


def test_point_on_the_edge_between_two_grids(tiny: GridIndex) -> None:
    match = tiny.locate(0.25, 0.5)  # lat 0.25, lng 0.5: the edge between G1 and G2
    assert match is not None
    assert (match.code, match.method, match.confidence) == ("G1", Method.BOUNDARY, 0.5)
    street_edge = tiny.locate(0.75, 1.0)  # lat 0.75, lng 1.0: between the two streets' communities
    assert street_edge is not None and street_edge.code == "C1" and street_edge.method is Method.BOUNDARY


def test_outside_every_unit(tiny: GridIndex) -> None:
    assert tiny.locate(5.0, 5.0) is None
    assert tiny.locate(math.nan, 0.5) is None


def test_snap_to_the_nearest_unit_within_a_distance(tiny: GridIndex) -> None:
    lat, lng = 0.25, -0.0009  # about 100 m west of the district's west edge
    assert tiny.locate(lat, lng) is None
    near = tiny.locate(lat, lng, snap_m=500)
    assert near is not None and near.code == "G1" and near.method is Method.NEAREST
    assert near.distance_m == pytest.approx(100.2, abs=1.0)
    assert 0.7 < near.confidence < 0.9
    assert tiny.locate(lat, lng, snap_m=50) is None


def test_sample_every_community_finds_itself(sample: GridIndex) -> None:
    for unit in sample.units:
        if unit.level is not Level.COMMUNITY or unit.geometry is None:
            continue
        point = unit.geometry.representative_point()
        match = sample.locate(point.y, point.x)
        assert match is not None
        community = match.step(Level.COMMUNITY)
        assert community is not None and community.code == unit.code
        assert match.level is Level.GRID
        assert [s.level for s in match.path] == [Level.CITY, Level.DISTRICT, Level.STREET, Level.COMMUNITY, Level.GRID]


def test_sample_wechat_point_needs_its_datum(sample: GridIndex) -> None:
    """A WeChat location message is GCJ-02: read as WGS-84 it lands ~500 m away, in another unit."""
    moved = 0
    for unit in sample.units:
        if unit.level is not Level.GRID or unit.geometry is None:
            continue
        point = unit.geometry.representative_point()
        glat, glng = wgs84_to_gcj02(point.y, point.x)
        right = sample.locate(glat, glng, datum=Datum.GCJ02)
        assert right is not None and right.code == unit.code
        wrong = sample.locate(glat, glng)
        moved += wrong is None or wrong.code != unit.code
    assert moved > 100  # of 204 grid units (147 on the committed sample)


def test_sample_outside_the_district(sample: GridIndex) -> None:
    assert sample.locate(22.54, 114.06) is None  # Futian, south of Longhua
    assert sample.locate(39.9, 116.4) is None


def test_as_dict(sample: GridIndex) -> None:
    match = sample.locate(22.625, 114.045)
    assert match is not None
    out = match.as_dict()
    assert out["level"] == "网格" and out["method"] == "point_in_polygon" and out["confidence"] == 1.0
    assert [p["level"] for p in out["path"]] == ["市", "区", "街道", "社区", "网格"]
    assert out["path"][2] == {"level": "街道", "code": "440309004", "name": "民治街道"}


def test_locate_many_agrees_with_locate(sample: GridIndex) -> None:
    rng = np.random.default_rng(3)
    lat, lng = rng.uniform(22.58, 22.81, 600), rng.uniform(113.96, 114.14, 600)
    batch = sample.locate_many(lat, lng)
    single = [sample.locate(a, b) for a, b in zip(lat.tolist(), lng.tolist(), strict=True)]
    assert batch == [m.code if m else None for m in single]
    assert any(c is None for c in batch) and any(c is not None for c in batch)
    glat, glng = np.array([wgs84_to_gcj02(a, b) for a, b in zip(lat, lng, strict=True)]).T
    assert sample.locate_many(glat, glng, datum=Datum.GCJ02) == batch


def test_children_tile_their_parent(sample: GridIndex) -> None:
    for unit in sample.units:
        kids = [k.geometry for k in sample.children(unit.code) if k.geometry is not None]
        if unit.geometry is None or not kids:
            continue
        union = shapely.union_all(kids)
        assert union.symmetric_difference(unit.geometry).area < 1e-5 * unit.geometry.area, unit.code  # 1e-7° rounding


def test_geojson_export_round_trips(sample: GridIndex) -> None:
    streets = sample.geojson(levels=[Level.STREET])
    assert len(streets["features"]) == 6
    again = GridIndex(parse_feature_collection(sample.geojson()))
    assert len(again) == len(sample)
