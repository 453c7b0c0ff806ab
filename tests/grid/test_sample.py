"""The bundled Longhua sample: what it claims to be, and in step with names.yaml and the address samples."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from grid.index import SAMPLE_PATH, GridIndex
from grid.synthetic import longhua_units
from grid.units import GridUnit, Level

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "grid"
STREETS = {"观澜街道", "大浪街道", "龙华街道", "民治街道", "福城街道", "观湖街道"}


def test_shape_of_the_sample(sample: GridIndex) -> None:
    levels = [u.level for u in sample.units]
    assert levels.count(Level.STREET) == 6 and levels.count(Level.COMMUNITY) == 51
    assert levels.count(Level.GRID) == 4 * 51
    assert {u.name for u in sample.units if u.level is Level.STREET} == STREETS
    assert all(u.places for u in sample.units if u.level is Level.COMMUNITY)
    assert SAMPLE_PATH.stat().st_size < 2_000_000
    readme = (SAMPLE_PATH.parent / "README.md").read_text(encoding="utf-8")
    assert "SYNTHETIC POLYGONS" in readme


def test_sample_file_is_in_step_with_names_yaml(sample: GridIndex) -> None:
    """Regenerate from names.yaml: same units, names, parents, aliases and places (geometry
    may differ in the last digits between GEOS versions, so it is not compared)."""

    def key(units: Iterable[GridUnit]) -> list[tuple[object, ...]]:
        return [(u.code, u.name, u.level, u.parent, u.aliases, u.places) for u in units]

    assert key(longhua_units()) == key(sample.units)


def test_address_samples_name_units_of_the_sample(sample: GridIndex) -> None:
    for name in ("longhua_addresses.jsonl", "longhua_addresses_public.jsonl"):
        for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            assert sample.by_code[row["code"]].name == row["name"], row
