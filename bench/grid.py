"""Grid benchmark: locating points, matching addresses, memory of the loaded grid.

    python bench/grid.py                                   # 5,000 units, 100,000 points, 20,000 texts
    python bench/grid.py --units 500 --points 2000 --texts 500   # a quick run

On one core (the process is pinned to the first CPU it may use):

- builds a synthetic grid of about ``--units`` units (``grid.synthetic.bench_units``: 8 districts,
  streets, communities and grids, Voronoi polygons densified to tens of vertices), loads it
  through the import path (validation included) and prints the load time and the memory the
  loaded index holds (resident-set growth: Python objects, GEOS geometries, the STRtree);
- locates ``--points`` uniform random points over the grid's extent (about 4 % outside it) with
  ``GridIndex.locate_many`` (one vectorised call), with ``GridIndex.locate`` one point at a time
  (what a report costs), and from GCJ-02 (datum conversion included); the same-run baseline is
  a naive loop over every polygon on ``--baseline-points`` of the points, whose answers must
  agree with the index's;
- matches ``--texts`` address texts (the labelled samples of tests/fixtures/grid, repeated) on
  the bundled Longhua grid; the same-run baseline is a naive scan for the longest gazetteer name
  that occurs in the text;
- prints top-1 unit accuracy on the two labelled samples, per kind of text, and the baseline's.

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import shapely  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from _machine import print_machine  # noqa: E402 - bench/ is sys.path[0] when run as a script

from grid.datum import Datum, wgs84_to_gcj02  # noqa: E402
from grid.gazetteer import normalize  # noqa: E402
from grid.index import GridIndex  # noqa: E402
from grid.synthetic import bench_units, write  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "grid"
SAMPLES = {"generated": FIXTURES / "longhua_addresses.jsonl", "public": FIXTURES / "longhua_addresses_public.jsonl"}
GOAL_POINTS_PER_S = 20_000
GOAL_TEXTS_PER_S = 2_000


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _pin_one_core() -> str:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity)"


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def bench_points(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    units = bench_units(args.units)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.geojson"
        write(units, path)
        size = path.stat().st_size
        generate_s = time.perf_counter() - t0
        del units
        rss0 = _rss_bytes()
        t0 = time.perf_counter()
        index = GridIndex.load(path)
        load_s = time.perf_counter() - t0
        memory = _rss_bytes() - rss0
    vertices = int(sum(shapely.get_num_coordinates(u.geometry) for u in index.units if u.geometry is not None))
    print(
        f"grid: {len(index)} units, {vertices:,} vertices, file {size / 1e6:.1f} MB; generated in {generate_s:.1f} s, "
        f"loaded (validated, indexed) in {load_s:.2f} s; memory of the loaded grid {memory / 2**20:.1f} MiB "
        "(RSS growth)"
    )
    minx, miny, maxx, maxy = shapely.total_bounds(np.array([u.geometry for u in index.units if u.geometry is not None]))
    rng = np.random.default_rng(args.seed)
    pad_x, pad_y = (maxx - minx) * 0.01, (maxy - miny) * 0.01
    lng = rng.uniform(minx - pad_x, maxx + pad_x, args.points)
    lat = rng.uniform(miny - pad_y, maxy + pad_y, args.points)

    index.locate_many(lat[:1000], lng[:1000])  # warm-up (first calls page code and data in)
    t0 = time.perf_counter()
    batch = index.locate_many(lat, lng)
    batch_s = time.perf_counter() - t0
    lat_l, lng_l = lat.tolist(), lng.tolist()
    t0 = time.perf_counter()
    single = [index.locate(a, b) for a, b in zip(lat_l, lng_l, strict=True)]
    single_s = time.perf_counter() - t0
    assert batch == [m.code if m else None for m in single], "locate and locate_many disagree"
    glat, glng = np.array([wgs84_to_gcj02(a, b) for a, b in zip(lat_l, lng_l, strict=True)]).T
    t0 = time.perf_counter()
    gcj = index.locate_many(glat, glng, datum=Datum.GCJ02)
    gcj_s = time.perf_counter() - t0
    assert gcj == batch, "the GCJ-02 reading of the same points lands elsewhere"
    outside = sum(c is None for c in batch) / len(batch)

    base_n = min(args.baseline_points, args.points)
    t0 = time.perf_counter()
    naive = [_naive_locate(index, a, b) for a, b in zip(lat_l[:base_n], lng_l[:base_n], strict=True)]
    naive_s = time.perf_counter() - t0
    agree = sum(x == y for x, y in zip(naive, batch[:base_n], strict=True))

    figures = {
        "units": len(index),
        "vertices": vertices,
        "load_s": round(load_s, 3),
        "memory_mib": round(memory / 2**20, 1),
        "points": args.points,
        "outside_share": round(outside, 4),
        "locate_many_per_s": round(_rate(args.points, batch_s)),
        "locate_per_s": round(_rate(args.points, single_s)),
        "locate_many_gcj02_per_s": round(_rate(args.points, gcj_s)),
        "baseline_naive_per_s": round(_rate(base_n, naive_s), 1),
    }
    print(f"points: {args.points:,} uniform over the extent, {outside:.1%} outside every unit")
    print(f"  locate_many (one call)      {figures['locate_many_per_s']:>12,} points/s")
    print(f"  locate (one call per point) {figures['locate_per_s']:>12,} points/s")
    print(
        f"  locate_many from GCJ-02     {figures['locate_many_gcj02_per_s']:>12,} points/s (datum conversion included)"
    )
    print(
        f"  baseline: naive loop over all {sum(u.geometry is not None for u in index.units):,} polygons "
        f"{figures['baseline_naive_per_s']:>8,} points/s on {base_n} points; agrees with the index on {agree}/{base_n}"
    )
    return figures


def _naive_locate(index: GridIndex, lat: float, lng: float) -> str | None:
    best = None
    for unit in index.units:
        if unit.geometry is not None and unit.geometry.covers(shapely.Point(lng, lat)):
            if best is None or (unit.level, best.code) > (best.level, unit.code):
                best = unit
    return best.code if best else None


def _rows(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def bench_addresses(args: argparse.Namespace) -> dict[str, Any]:
    index = GridIndex.sample()
    t0 = time.perf_counter()
    gazetteer = index.gazetteer
    gazetteer.tokens("龙华")  # builds the tokenizer (jieba's dictionary is cached on disk after a first run)
    build_s = time.perf_counter() - t0
    samples = {name: _rows(path) for name, path in SAMPLES.items()}
    pool = [r["text"] for rows in samples.values() for r in rows]
    texts = (pool * (args.texts // len(pool) + 1))[: args.texts]
    t0 = time.perf_counter()
    for text in texts:
        index.locate_address(text)
    match_s = time.perf_counter() - t0
    names = sorted(gazetteer.entries, key=len, reverse=True)
    base_n = min(len(texts), 2000)
    t0 = time.perf_counter()
    for text in texts[:base_n]:
        _naive_address(gazetteer.entries, names, text)
    naive_s = time.perf_counter() - t0

    figures: dict[str, Any] = {
        "gazetteer_names": len(names),
        "gazetteer_build_s": round(build_s, 2),
        "texts": len(texts),
        "address_per_s": round(_rate(len(texts), match_s)),
        "baseline_address_per_s": round(_rate(base_n, naive_s)),
    }
    print(f"addresses: gazetteer of {len(names)} names (built with jieba in {build_s:.2f} s), {len(texts):,} texts")
    print(f"  locate_address              {figures['address_per_s']:>12,} texts/s")
    print(f"  baseline: longest name found by substring scan {figures['baseline_address_per_s']:>8,} texts/s")
    for name, rows in samples.items():
        right, total, base_right = Counter[str](), Counter[str](), 0
        for row in rows:
            match = index.locate_address(row["text"])
            total[row["kind"]] += 1
            right[row["kind"]] += match is not None and match.code == row["code"]
            base_right += _naive_address(gazetteer.entries, names, row["text"]) == row["code"]
        acc = sum(right.values()) / len(rows)
        figures[f"accuracy_{name}"] = round(acc, 4)
        figures[f"baseline_accuracy_{name}"] = round(base_right / len(rows), 4)
        kinds = ", ".join(f"{k} {right[k]}/{total[k]}" for k in sorted(total))
        print(
            f"  top-1 unit accuracy, {name} sample ({len(rows)} texts): {acc:.1%} ({kinds}); "
            f"baseline {base_right / len(rows):.1%}"
        )
    return figures


def _naive_address(entries: dict[str, Any], names: list[str], text: str) -> str | None:
    """The first unit of the longest gazetteer name that occurs in the text, ignoring context."""
    text = normalize(text)
    for name in names:
        if name in text:
            return str(entries[name].codes[0])
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=5000)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--baseline-points", type=int, default=200)
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    pinned = _pin_one_core()
    print("# grid benchmark")
    print_machine()
    print(f"  {'pinning':<13} {pinned}; shapely {shapely.__version__}, GEOS {shapely.geos_version_string}")
    figures = bench_points(args) | bench_addresses(args)
    goals = {
        f"locate >= {GOAL_POINTS_PER_S:,}/s one core": figures["locate_per_s"] >= GOAL_POINTS_PER_S,
        f"locate_many >= {GOAL_POINTS_PER_S:,}/s one core": figures["locate_many_per_s"] >= GOAL_POINTS_PER_S,
        f"addresses >= {GOAL_TEXTS_PER_S:,}/s": figures["address_per_s"] >= GOAL_TEXTS_PER_S,
    }
    print("goals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in goals.items()))
    print(json.dumps(figures, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
