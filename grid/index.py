"""The loaded grid: a spatial index over the units and the ways a report is placed in it.

    index = GridIndex.load("var/grid/grid.geojson")           # or GridIndex.sample()
    match = index.locate(22.6571, 114.0323, datum=Datum.GCJ02)  # a WeChat location message
    match = index.locate_address("民治街道上芬社区梅龙路口的路灯坏了")

Both return a ``GridMatch`` (the path from the root to the deepest unit found, how it was found
and a confidence) or None when the report is outside every unit / names no known place.

Point lookup: an STRtree over the bounding boxes of every unit with a geometry, then exact
point-in-polygon tests on the (prepared) candidates; the deepest unit that covers the point
wins. A point on the shared edge of two units belongs to both; the one with the smaller code is
taken and the method says ``boundary``. With ``snap_m`` a point just outside every unit (GPS
error at the district's edge) is given to the nearest unit within that distance (``nearest``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
import shapely.ops
from shapely.geometry.base import BaseGeometry

from grid.datum import Datum, gcj02_to_wgs84_many, to_wgs84
from grid.gazetteer import Gazetteer
from grid.match import GridMatch, Method, PathStep
from grid.units import GridUnit, Level, ancestors, feature_collection, parse_feature_collection

SAMPLE_PATH = Path(__file__).resolve().parent / "data" / "longhua" / "grid.geojson"
_M_PER_DEG_LAT = 111_320.0  # metres per degree of latitude (and of longitude at the equator)


class GridIndex:
    """An immutable, loaded grid. Build it once per process; it is safe to share between threads."""

    def __init__(self, units: Sequence[GridUnit], source: str = "<memory>") -> None:
        self.source = source
        self.units: tuple[GridUnit, ...] = tuple(units)
        self.by_code: dict[str, GridUnit] = {u.code: u for u in self.units}
        self._paths: dict[str, tuple[PathStep, ...]] = {
            u.code: tuple(PathStep(a.level, a.code, a.name) for a in ancestors(u, self.by_code)) for u in self.units
        }
        located = [u for u in self.units if u.geometry is not None]
        self._codes = np.array([u.code for u in located], dtype=object)
        self._geoms = np.array([u.geometry for u in located], dtype=object)
        # Rank: deeper level first, then the smaller code (the boundary tie-break).
        order = sorted(range(len(located)), key=lambda i: (-located[i].level, located[i].code))
        self._rank = np.empty(len(located), dtype=np.int64)
        self._rank[np.array(order, dtype=np.int64)] = np.arange(len(located), dtype=np.int64)
        self._levels = np.array([u.level for u in located], dtype=np.int64)
        shapely.prepare(self._geoms)  # point-in-polygon tests on prepared polygons
        self._tree = shapely.STRtree(self._geoms)
        self._gazetteer: Gazetteer | None = None

    @classmethod
    def load(cls, path: str | Path) -> GridIndex:
        """The grid stored at ``path`` (the import format; see ``grid.units``)."""
        with Path(path).open(encoding="utf-8") as fh:
            doc = json.load(fh)
        return cls(parse_feature_collection(doc), source=str(path))

    @classmethod
    def sample(cls) -> GridIndex:
        """The bundled (synthetic) Longhua grid; see grid/data/longhua/README.md."""
        return cls.load(SAMPLE_PATH)

    def __len__(self) -> int:
        return len(self.units)

    def path(self, code: str) -> tuple[PathStep, ...]:
        """The path from the root to the unit ``code`` (KeyError if unknown)."""
        return self._paths[code]

    def children(self, code: str | None) -> list[GridUnit]:
        return [u for u in self.units if u.parent == code]

    def locate(self, lat: float, lng: float, datum: Datum = Datum.WGS84, snap_m: float = 0.0) -> GridMatch | None:
        """The deepest unit covering (lat, lng) given in ``datum``; None if outside every unit."""
        if not (math.isfinite(lat) and math.isfinite(lng)):
            return None
        lat, lng = to_wgs84(lat, lng, datum)
        point = shapely.Point(lng, lat)
        candidates = self._tree.query(point)  # bounding boxes only
        if len(candidates):
            hits = candidates[shapely.intersects_xy(self._geoms[candidates], lng, lat)]
            if len(hits):
                best = hits[np.argmin(self._rank[hits])]
                ties = int(np.count_nonzero(self._levels[hits] == self._levels[best]))
                if ties > 1:  # siblings do not overlap, so the point is on their shared edge
                    return GridMatch(self._paths[self._codes[best]], Method.BOUNDARY, 1.0 / ties)
                return GridMatch(self._paths[self._codes[best]], Method.POINT, 1.0)
        return self._nearest(point, lat, snap_m) if snap_m > 0 else None

    def _nearest(self, point: shapely.Point, lat: float, snap_m: float) -> GridMatch | None:
        # max_distance in degrees of longitude, the shorter ones: generous; refined in metres below.
        max_deg = snap_m / (_M_PER_DEG_LAT * max(math.cos(math.radians(lat)), 0.01))
        near = self._tree.query_nearest(point, max_distance=max_deg, all_matches=True)
        best: tuple[float, int, int] | None = None
        for i in near.tolist():
            distance = _metres(point, self._geoms[i], lat)
            key = (distance, int(self._rank[i]), i)
            best = key if best is None or key < best else best
        if best is None or best[0] > snap_m:
            return None
        distance, _, i = best
        return GridMatch(self._paths[self._codes[i]], Method.NEAREST, max(0.0, 1.0 - distance / snap_m), distance)

    def locate_many(self, lats: npt.ArrayLike, lngs: npt.ArrayLike, datum: Datum = Datum.WGS84) -> list[str | None]:
        """The deepest unit code covering each point (None outside), in one vectorised pass."""
        lat = np.asarray(lats, dtype=np.float64)
        lng = np.asarray(lngs, dtype=np.float64)
        if datum is Datum.GCJ02:
            lat, lng = gcj02_to_wgs84_many(lat, lng)
        points = shapely.points(lng, lat)
        src, hit = self._tree.query(points, predicate="intersects")
        best = np.full(len(points), -1, dtype=np.int64)
        if len(src):
            order = np.lexsort((self._rank[hit], src))  # by point, then best unit first
            src, hit = src[order], hit[order]
            first = np.ones(len(src), dtype=bool)
            first[1:] = src[1:] != src[:-1]
            best[src[first]] = hit[first]
        return [None if i < 0 else str(self._codes[i]) for i in best.tolist()]

    def locate_address(self, text: str) -> GridMatch | None:
        """The unit an address text names (gazetteer of the grid's names); None if none."""
        return self.gazetteer.match(text)

    @property
    def gazetteer(self) -> Gazetteer:
        """The address gazetteer built from this grid's names (on first use)."""
        if self._gazetteer is None:
            self._gazetteer = Gazetteer(self)
        return self._gazetteer

    def geojson(self, levels: Iterable[Level] | None = None) -> dict[str, Any]:
        """The grid (or some levels of it) as GeoJSON, e.g. for a map page."""
        wanted = set(levels) if levels is not None else None
        return feature_collection(u for u in self.units if wanted is None or u.level in wanted)


def _metres(point: shapely.Point, geom: BaseGeometry, lat: float) -> float:
    """Distance from the point to the geometry in metres (local equirectangular approximation)."""
    a, b = shapely.ops.nearest_points(point, geom)
    dx = (b.x - a.x) * _M_PER_DEG_LAT * math.cos(math.radians(lat))
    dy = (b.y - a.y) * _M_PER_DEG_LAT
    return math.hypot(dx, dy)
