"""``grid`` commands, ready to mount under ``gateway`` and runnable as ``python -m grid``.

    gateway grid import FILE [--dry-run]          # validate and store a city's grid (GeoJSON)
    gateway grid locate LAT LNG [--datum gcj02]   # which unit a point falls in
    gateway grid locate --address TEXT            # which unit an address names
    gateway grid words                            # the gazetteer as a jieba user dictionary

The gateway mounts them with ``grid.cli.register(subparsers)``; every command prints JSON on
stdout. ``locate`` exits 1 when the point or the address is in no unit (the JSON says why), and
``import`` exits 1 with the list of problems when the file is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grid.datum import Datum
from grid.store import default_store_path, import_grid, load_index
from grid.units import GridImportError


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add ``grid`` and its sub-commands to a parent's subparsers; returns the ``grid`` parser."""
    grid: argparse.ArgumentParser = subparsers.add_parser(
        "grid", help="grid units (网格): import a grid, locate a point or an address"
    )
    grid.add_argument(
        "--store", type=Path, default=None, help="the stored grid (default: $GATEWAY_VAR_DIR/grid/grid.geojson)"
    )
    grid.set_defaults(func=lambda _args: _usage(grid))
    sub = grid.add_subparsers(title="grid commands", metavar="COMMAND")

    imp = sub.add_parser("import", help="validate a GeoJSON FeatureCollection of units and store it")
    imp.add_argument("file", type=Path, help="GeoJSON file (see docs/grid.md for the properties)")
    imp.add_argument("--dry-run", action="store_true", help="validate only; store nothing")
    imp.set_defaults(func=cmd_import)

    loc = sub.add_parser("locate", help="the grid path of a point (LAT LNG) or of an address (--address)")
    loc.add_argument("lat", nargs="?", type=float, help="latitude")
    loc.add_argument("lng", nargs="?", type=float, help="longitude")
    loc.add_argument(
        "--datum",
        type=Datum.parse,
        default=Datum.WGS84,
        metavar="wgs84|gcj02",
        help="wgs84 (GPS, default) or gcj02 (WeChat)",
    )
    loc.add_argument("--snap-m", type=float, default=0.0, help="outside every unit: take the nearest within this")
    loc.add_argument("--address", help="an address text instead of a point")
    loc.set_defaults(func=cmd_locate, parser=loc)

    words = sub.add_parser("words", help="print the gazetteer's names as a jieba user dictionary")
    words.set_defaults(func=cmd_words)
    return grid


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _store(args: argparse.Namespace) -> Path:
    return args.store if args.store is not None else default_store_path()


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def cmd_import(args: argparse.Namespace) -> int:
    try:
        summary = import_grid(args.file, _store(args), dry_run=args.dry_run)
    except GridImportError as exc:
        _print({"imported": False, "problems": [str(p) for p in exc.problems]})
        print(f"grid import: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        _print({"imported": False, "problems": [str(exc)]})
        return 1
    _print(
        {
            "imported": not args.dry_run,
            "units": summary.units,
            "per_level": summary.per_level,
            "source_datum": summary.source_datum,
            "store": str(summary.stored_at),
        }
    )
    return 0


def cmd_locate(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    if (args.address is None) == (args.lat is None or args.lng is None):
        parser.error("give LAT LNG or --address TEXT (one of them)")
    index = load_index(_store(args))
    if args.address is not None:
        match = index.locate_address(args.address)
        reason = "the address names no unit of the grid"
    else:
        match = index.locate(args.lat, args.lng, datum=args.datum, snap_m=args.snap_m)
        reason = "outside every unit of the grid"
    if match is None:
        _print({"found": False, "reason": reason, "grid": index.source})
        return 1
    _print({"found": True, **match.as_dict(), "grid": index.source})
    return 0


def cmd_words(args: argparse.Namespace) -> int:
    for line in load_index(_store(args)).gazetteer.jieba_dictionary():
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m")  # so that the commands read "python -m grid …"
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    register(subparsers)
    args = parser.parse_args(["grid", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))
