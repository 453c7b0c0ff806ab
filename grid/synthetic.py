"""Synthetic grids: the bundled Longhua sample and the large grids the benchmark uses.

Polygons are Voronoi cells of seed points, clipped to the parent and relaxed (Lloyd) so that
cells have similar sizes; children tile their parent exactly, as a real grid's do. Every unit
is named, so the gazetteer works on them, but the shapes are invented: never use them to
decide where a real report belongs.

    python -m grid.synthetic longhua OUT.geojson          # rebuild the bundled sample
    python -m grid.synthetic bench OUT.geojson --units 5000
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import shapely
import yaml
from shapely.geometry import MultiPoint, Point, Polygon
from shapely.geometry.base import BaseGeometry

from grid.units import GridUnit, Level, feature_collection

NAMES_PATH = Path(__file__).resolve().parent / "data" / "longhua" / "names.yaml"
GRIDS_PER_COMMUNITY = 4
_LLOYD_ROUNDS = 4


def partition(
    parent: BaseGeometry, n: int, rng: random.Random, seeds: Sequence[tuple[float, float]] = ()
) -> list[BaseGeometry]:
    """``n`` cells tiling ``parent``; ``seeds`` (lng, lat) fix the first cells' centres."""
    points = [Point(s) for s in seeds]
    minx, miny, maxx, maxy = parent.bounds
    while len(points) < n:
        p = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if parent.contains(p):
            points.append(p)
    cells = _cells(parent, points)
    for _ in range(0 if seeds else _LLOYD_ROUNDS):
        cells = _cells(parent, [c.centroid for c in cells])
    return cells


def _cells(parent: BaseGeometry, points: Sequence[Point]) -> list[BaseGeometry]:
    if len(points) == 1:
        return [parent]
    # ordered=True (GEOS >= 3.12) returns the cells in the order of the points.
    diagram = shapely.voronoi_polygons(MultiPoint(list(points)), extend_to=parent, ordered=True)
    return [_polygonal(cell.intersection(parent)) for cell in diagram.geoms]


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Drop the points and lines an intersection can leave; round to 1e-7 degrees (about 1 cm)."""
    parts = [g for g in getattr(geom, "geoms", [geom]) if isinstance(g, Polygon) and not g.is_empty]
    merged = parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)
    return shapely.set_precision(merged, 1e-7)


def longhua_units(names: Mapping[str, Any] | None = None, seed: int = 440309) -> list[GridUnit]:
    """The Longhua sample: real street and community names, synthetic polygons, 4 grids each."""
    data = names if names is not None else yaml.safe_load(NAMES_PATH.read_text(encoding="utf-8"))
    rng = random.Random(seed)
    city, district = data["city"], data["district"]
    outline = shapely.set_precision(Polygon(data["outline"]), 1e-7)
    units = [
        GridUnit(city["code"], city["name"], Level.CITY, None, None, tuple(city.get("aliases", []))),
        GridUnit(district["code"], district["name"], Level.DISTRICT, city["code"], outline, tuple(district["aliases"])),
    ]
    streets = data["streets"]
    street_cells = partition(outline, len(streets), rng, seeds=[tuple(s["seed"]) for s in streets])
    for s_no, (street, s_geom) in enumerate(zip(streets, street_cells, strict=True), start=1):
        s_code = f"{district['code']}{s_no:03d}"
        alias = street["name"].removesuffix("街道") + "办事处"
        places = tuple(street.get("places", ()))
        units.append(GridUnit(s_code, street["name"], Level.STREET, district["code"], s_geom, (alias,), places))
        communities = list(street["communities"].items())
        for c_no, ((c_name, places), c_geom) in enumerate(
            zip(communities, partition(s_geom, len(communities), rng), strict=True), start=1
        ):
            c_code = f"{s_code}{c_no:03d}"
            units.append(GridUnit(c_code, c_name, Level.COMMUNITY, s_code, c_geom, (), tuple(places)))
            for g_no, g_geom in enumerate(partition(c_geom, GRIDS_PER_COMMUNITY, rng), start=1):
                units.append(GridUnit(f"{c_code}{g_no:02d}", f"{c_name}第{g_no}网格", Level.GRID, c_code, g_geom))
    return units


def bench_units(total: int = 5000, seed: int = 5000) -> list[GridUnit]:
    """About ``total`` units (1 city, 8 districts, streets, communities, grids) over a 60 km square."""
    rng = random.Random(seed)
    fan = _fan_out(total)
    square = shapely.box(113.75, 22.45, 114.35, 23.0)
    city = GridUnit("C1", "样例市", Level.CITY, None, square)
    units, frontier = [city], [city]
    for level, per_parent in zip((Level.DISTRICT, Level.STREET, Level.COMMUNITY, Level.GRID), fan, strict=True):
        next_frontier = []
        for parent in frontier:
            assert parent.geometry is not None
            for i, geom in enumerate(partition(parent.geometry, per_parent, rng), start=1):
                # Densify edges: real boundaries have tens to hundreds of vertices, not six.
                geom = shapely.segmentize(geom, max_segment_length=0.002 * (Level.GRID - level + 1))
                unit = GridUnit(f"{parent.code}-{i}", f"{parent.name}{i}{level.label}", level, parent.code, geom)
                next_frontier.append(unit)
        units += next_frontier
        frontier = next_frontier
    return units


def _fan_out(total: int) -> tuple[int, int, int, int]:
    """Children per parent at each level below the city so that the grid has about ``total`` units."""
    districts, streets, communities = 8, 6, 8
    upper = 1 + districts + districts * streets + districts * streets * communities
    grids = max(1, round((total - upper) / (districts * streets * communities)))
    return districts, streets, communities, grids


def write(units: Sequence[GridUnit], path: Path) -> None:
    text = json.dumps(feature_collection(units), ensure_ascii=False, separators=(",", ":"))
    path.write_text(text + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grid.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["longhua", "bench"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--units", type=int, default=5000, help="bench: about this many units")
    args = parser.parse_args(argv)
    units = longhua_units() if args.kind == "longhua" else bench_units(args.units)
    write(units, args.out)
    print(f"{len(units)} units → {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
