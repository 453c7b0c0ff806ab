"""Fixtures of the grid tests: the bundled sample grid (loaded once) and small hand-made grids."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from grid.index import GridIndex


@pytest.fixture(scope="session")
def sample() -> GridIndex:
    return GridIndex.sample()


def square(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    """A GeoJSON Polygon of the box (lng x0..x1, lat y0..y1)."""
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def feature(
    code: str, name: str, level: str, parent: str | None, geometry: dict[str, Any] | None, **props: Any
) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {"code": code, "name": name, "level": level, "parent": parent, **props},
        "geometry": geometry,
    }


def tiny_grid() -> dict[str, Any]:
    """A district of two streets, each with one community; the west community has two grids
    covering only its southern half (its northern half is in no grid)."""
    return copy.deepcopy(
        {
            "type": "FeatureCollection",
            "features": [
                feature("D", "测试区", "区", None, square(0, 0, 2, 1)),
                feature("S1", "西街道", "街道", "D", square(0, 0, 1, 1)),
                feature("S2", "东街道", "街道", "D", square(1, 0, 2, 1), places=["东环路"]),
                feature("C1", "西社区", "社区", "S1", square(0, 0, 1, 1), places=["西村"]),
                feature("C2", "东社区", "社区", "S2", square(1, 0, 2, 1)),
                feature("G1", "西社区第1网格", "网格", "C1", square(0, 0, 0.5, 0.5)),
                feature("G2", "西社区第2网格", "网格", "C1", square(0.5, 0, 1, 0.5)),
            ],
        }
    )
