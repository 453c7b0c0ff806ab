"""The console's map: the grid drawn as SVG, open cases as points, counts per unit.

No script and no base map: the server projects the grid's polygons (Web Mercator, the projection
of every tile server) into SVG paths, once per grid version and level, and draws each open case
as a point linked to its case page. ``GATEWAY_MAP_TILE_URL`` (``…/{z}/{x}/{y}.png``) adds the
city's own tiles under the grid as SVG images; unset (the default) nothing is fetched. Tiles
must be WGS-84 based (OSM-style); a GCJ-02 tile server (AMap, Tencent) would need every shape
shifted with ``grid.wgs84_to_gcj02`` first, which is not done here.

Coordinates: a report's coordinates are in its channel's datum (WeChat GCJ-02) and are
converted to WGS-84 for drawing; a report placed by its address has no point of its own and
is drawn hollow at its unit's representative point.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy import select

from gateway.core.lifecycle import Status
from gateway.core.placing import Grid, Placer
from gateway.db import Database, Report
from grid import GridUnit, Level
from grid.datum import to_wgs84

OPEN = (
    Status.RECEIVED,
    Status.CLASSIFIED,
    Status.NEEDS_REVIEW,
    Status.READY,
    Status.DISPATCHED,
    Status.ACCEPTED,
    Status.IN_PROGRESS,
)
LEVELS = {"街道": Level.STREET, "社区": Level.COMMUNITY, "网格": Level.GRID}
MAX_POINTS = 5000
WIDTH = 960  # the drawing's nominal width in pixels (the SVG scales to its box)
TILE = 256
PRIORITY_COLOURS = {"P1": "#c62828", "P2": "#ef6c00", "P3": "#1565c0", "P4": "#607d8b"}
CATEGORY_COLOURS = (
    "#1b9e77",
    "#d95f02",
    "#7570b3",
    "#e7298a",
    "#66a61e",
    "#e6ab02",
    "#a6761d",
    "#1f78b4",
    "#b2df8a",
    "#fb9a99",
    "#6a3d9a",
    "#b15928",
)
UNCATEGORISED = "#9e9e9e"


@dataclass(frozen=True, slots=True)
class Frame:
    """A Web Mercator window: the zoom whose pixels the drawing uses and its top-left corner."""

    zoom: int
    x0: float
    y0: float
    width: float
    height: float

    @classmethod
    def around(cls, bounds: tuple[float, float, float, float], width: int = WIDTH, pad: float = 0.04) -> Frame:
        """The largest integer zoom at which ``bounds`` (lng/lat) fits ``width`` pixels."""
        min_lng, min_lat, max_lng, max_lat = bounds
        zoom = 18
        while zoom > 1:
            x1, y1 = _pixel(min_lng, max_lat, zoom)
            x2, y2 = _pixel(max_lng, min_lat, zoom)
            if x2 - x1 <= width * (1 - 2 * pad):
                break
            zoom -= 1
        x1, y1 = _pixel(min_lng, max_lat, zoom)
        x2, y2 = _pixel(max_lng, min_lat, zoom)
        margin = max(x2 - x1, y2 - y1, 8.0) * pad
        return cls(zoom, x1 - margin, y1 - margin, x2 - x1 + 2 * margin, y2 - y1 + 2 * margin)

    def xy(self, lng: float, lat: float) -> tuple[float, float]:
        x, y = _pixel(lng, lat, self.zoom)
        return round(x - self.x0, 1), round(y - self.y0, 1)

    @property
    def view_box(self) -> str:
        return f"0 0 {self.width:.0f} {self.height:.0f}"

    def tiles(self, url: str) -> list[dict[str, Any]]:
        """The tiles under the frame as ``<image>`` positions (empty without a tile URL)."""
        if not url:
            return []
        first_x, first_y = int(self.x0 // TILE), int(self.y0 // TILE)
        last_x, last_y = int((self.x0 + self.width) // TILE), int((self.y0 + self.height) // TILE)
        return [
            {
                "href": url.format(z=self.zoom, x=tx, y=ty),
                "x": round(tx * TILE - self.x0, 1),
                "y": round(ty * TILE - self.y0, 1),
            }
            for tx in range(first_x, last_x + 1)
            for ty in range(first_y, last_y + 1)
        ]


def _pixel(lng: float, lat: float, zoom: int) -> tuple[float, float]:
    scale = TILE * 2**zoom
    lat = max(min(lat, 85.0511), -85.0511)
    x = (lng + 180.0) / 360.0 * scale
    y = (1 - math.log(math.tan(math.radians(lat)) + 1 / math.cos(math.radians(lat))) / math.pi) / 2 * scale
    return x, y


def svg_path(geometry: BaseGeometry, frame: Frame) -> str:
    """A (Multi)Polygon as the ``d`` of an SVG path in the frame's pixels."""
    polygons = getattr(geometry, "geoms", [geometry])
    parts = []
    for polygon in polygons:
        for ring in (polygon.exterior, *polygon.interiors):
            points = [frame.xy(x, y) for x, y in ring.coords]
            parts.append("M" + " L".join(f"{x},{y}" for x, y in points) + " Z")
    return " ".join(parts)


@dataclass
class Point:
    case_number: str
    x: float
    y: float
    colour: str
    label: str
    approximate: bool  # placed by address: drawn at its unit, hollow


@dataclass
class MapFilter:
    category: str = ""
    status: str = ""
    priority: str = ""
    level: str = "社区"
    colour_by: str = "category"

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> MapFilter:
        level = query.get("level", "社区")
        return cls(
            category=query.get("category", "").strip()[:16],
            status=query.get("status", "") if query.get("status", "") in OPEN else "",
            priority=query.get("priority", "") if query.get("priority", "") in PRIORITY_COLOURS else "",
            level=level if level in LEVELS else "社区",
            colour_by="priority" if query.get("colour_by") == "priority" else "category",
        )


@dataclass
class MapView:
    frame: Frame
    units: list[dict[str, Any]]
    streets: list[tuple[str, str, float, float]]
    points: list[Point]
    counts: list[dict[str, Any]]
    legend: list[tuple[str, str]]
    tiles: list[dict[str, Any]]
    unplaced: int = 0
    filter: MapFilter = field(default_factory=MapFilter)


@dataclass(frozen=True, slots=True)
class _Drawing:
    frame: Frame
    units: tuple[tuple[str, str, str], ...]  # (code, name, path) at the chosen level
    streets: tuple[tuple[str, str, float, float], ...]  # (path, name, label x, label y)


@lru_cache(maxsize=8)
def _drawing(grid: Grid, level: Level) -> _Drawing:
    """The frame and the SVG paths of a grid's units at ``level`` and of its streets (cached per grid)."""
    drawn = [(u, u.geometry) for u in grid.index.units if u.geometry is not None]
    frame = Frame.around(_bounds(g for _, g in drawn))
    units = tuple((u.code, u.name, svg_path(g, frame)) for u, g in drawn if u.level is level)
    streets = tuple(
        (svg_path(g, frame), u.name, *frame.xy(g.representative_point().x, g.representative_point().y))
        for u, g in drawn
        if u.level is Level.STREET
    )
    return _Drawing(frame, units, streets)


def _bounds(geometries: Iterable[BaseGeometry]) -> tuple[float, float, float, float]:
    boxes = [g.bounds for g in geometries]
    if not boxes:
        return (113.9, 22.5, 114.2, 22.8)
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


async def build_map(db: Database, placer: Placer, flt: MapFilter, tile_url: str = "") -> MapView:
    """The map page's drawing: the grid at the filter's level, open cases, counts per unit."""
    grid = await asyncio.to_thread(lambda: placer.grid)  # loaded once per process; maybe not yet
    drawing = await asyncio.to_thread(_drawing, grid, LEVELS[flt.level])
    frame, units = drawing.frame, drawing.units
    rows = await _open_cases(db, flt)
    colours = _colours(rows, flt.colour_by)
    points, per_unit, unplaced = [], Counter[str](), 0
    for r in rows:
        unit = _unit_at(r.grid_path, flt.level)
        if unit is not None:
            per_unit[unit] += 1
        else:
            unplaced += 1
        point = _point(r, frame, grid, placer, colours)
        if point is not None:
            points.append(point)
    names = {code: name for code, name, _ in units}
    top = max(per_unit.values(), default=0)
    drawn_units: list[dict[str, Any]] = [
        {"code": c, "name": n, "d": d, "count": per_unit[c], "shade": _shade(per_unit[c], top)} for c, n, d in units
    ]
    counts = [{"code": c, "name": names.get(c, c), "count": n} for c, n in per_unit.most_common()]
    legend = list(colours.items()) if flt.colour_by == "category" else list(PRIORITY_COLOURS.items())
    tiles = frame.tiles(tile_url)
    return MapView(frame, drawn_units, list(drawing.streets), points, counts, legend, tiles, unplaced, flt)


def _shade(count: int, top: int) -> float:
    """Fill opacity of a unit: none without cases, then up to 0.58 for the busiest unit."""
    return round(0.08 + 0.5 * count / top, 2) if top and count else 0.0


async def _open_cases(db: Database, flt: MapFilter) -> Sequence[Report]:
    query = select(Report).where(Report.status.in_([flt.status] if flt.status else OPEN))
    if flt.category:
        query = query.where(Report.category_code.startswith(flt.category))
    if flt.priority:
        query = query.where(Report.priority == flt.priority)
    async with db.session() as s:
        return (await s.scalars(query.order_by(Report.id.desc()).limit(MAX_POINTS))).all()


def _colours(rows: Sequence[Report], colour_by: str) -> dict[str, str]:
    if colour_by == "priority":
        return dict(PRIORITY_COLOURS)
    tops = sorted({_top(r) for r in rows} - {""})
    found = {code: CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)] for i, code in enumerate(tops)}
    return {**found, "未分类": UNCATEGORISED} if any(not _top(r) for r in rows) else found


def _top(r: Report) -> str:
    return r.category_parent or (r.category_code or "")[:2]


def _unit_at(path: list[dict[str, str]] | None, level: str) -> str | None:
    return next((s["code"] for s in path or () if s.get("level") == level), None)


def _point(r: Report, frame: Frame, grid: Grid, placer: Placer, colours: Mapping[str, str]) -> Point | None:
    key = r.priority if r.priority in colours and r.priority in PRIORITY_COLOURS else (_top(r) or "未分类")
    colour = colours.get(key, UNCATEGORISED)
    label = f"{r.case_number} {r.category_name or '未分类'} {r.priority}"
    if r.location_lat is not None and r.location_lng is not None:
        lat, lng = to_wgs84(r.location_lat, r.location_lng, placer.datum(r.channel))
        x, y = frame.xy(lng, lat)
        inside = 0 <= x <= frame.width and 0 <= y <= frame.height
        return Point(r.case_number, x, y, colour, label, approximate=False) if inside else None
    unit = grid.index.by_code.get(r.grid_code or "")
    if unit is None or unit.geometry is None:
        return None
    spot = unit.geometry.representative_point()
    x, y = frame.xy(spot.x, spot.y)
    return Point(r.case_number, x, y, colour, label + "（按地址定位）", approximate=True)


@dataclass
class UnitMap:
    """A small map of one report's unit (and its point), for the case page."""

    view_box: str
    unit: str
    parent: str
    point: tuple[float, float] | None
    path_names: str


def unit_map(report: Report, placer: Placer) -> UnitMap | None:
    """The report's unit drawn with its parent's outline; None when the report is not placed."""
    grid = placer.grid
    unit: GridUnit | None = grid.index.by_code.get(report.grid_code or "")
    if unit is None or unit.geometry is None:
        return None
    parent = grid.index.by_code.get(unit.parent or "")
    frame = Frame.around(unit.geometry.bounds, width=320, pad=0.15)
    outline = svg_path(parent.geometry, frame) if parent is not None and parent.geometry is not None else ""
    point = None
    if report.location_lat is not None and report.location_lng is not None:
        lat, lng = to_wgs84(report.location_lat, report.location_lng, placer.datum(report.channel))
        point = frame.xy(lng, lat)
    names = " / ".join(step["name"] for step in report.grid_path or ())
    return UnitMap(frame.view_box, svg_path(unit.geometry, frame), outline, point, names)
