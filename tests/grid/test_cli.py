"""The grid commands: import into a store, locate a point or an address, mounting under a parent CLI."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from grid import cli
from grid.datum import wgs84_to_gcj02
from grid.store import default_store_path, import_grid, load_index
from grid.units import GridImportError
from tests.grid.conftest import tiny_grid

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = cli.main(list(argv))
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1]) if out else {}


def write(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def test_import_then_locate_from_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "var" / "grid" / "grid.geojson"
    src = write(tmp_path / "city.geojson", tiny_grid())
    code, out = run(capsys, "--store", str(store), "import", str(src))
    assert code == 0
    assert out == {
        "imported": True,
        "units": 7,
        "per_level": {"区": 1, "街道": 2, "社区": 2, "网格": 2},
        "source_datum": "wgs84",
        "store": str(store),
    }
    code, out = run(capsys, "--store", str(store), "locate", "0.25", "0.25")
    assert code == 0 and out["code"] == "G1" and out["found"] is True and out["grid"] == str(store)
    code, out = run(capsys, "--store", str(store), "locate", "--address", "东环路口")
    assert code == 0 and out["code"] == "S2" and out["method"] == "address"
    # A second import keeps the previous grid beside the new one.
    assert run(capsys, "--store", str(store), "import", str(src))[0] == 0
    assert (store.parent / "grid.prev.geojson").exists()


def test_refused_import_lists_problems_and_keeps_the_old_grid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "grid.geojson"
    assert run(capsys, "--store", str(store), "import", str(write(tmp_path / "ok.geojson", tiny_grid())))[0] == 0
    bad = tiny_grid()
    bad["features"][4]["properties"]["parent"] = "S9"
    del bad["features"][5]["properties"]["name"]
    before = store.read_bytes()
    code, out = run(capsys, "--store", str(store), "import", str(write(tmp_path / "bad.geojson", bad)))
    assert code == 1 and out["imported"] is False
    assert out["problems"] == [
        'feature 5 (code G1): "name" is required (a non-empty string)',
    ]  # the tree is checked once every feature reads
    assert store.read_bytes() == before


def test_import_of_a_file_that_is_not_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "x.geojson"
    src.write_text("{nope", encoding="utf-8")
    code, out = run(capsys, "--store", str(tmp_path / "g.geojson"), "import", str(src))
    assert code == 1 and "not JSON" in str(out["problems"])


def test_dry_run_stores_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "grid.geojson"
    src = write(tmp_path / "city.geojson", tiny_grid())
    code, out = run(capsys, "--store", str(store), "import", "--dry-run", str(src))
    assert code == 0 and out["imported"] is False and not store.exists()


def test_locate_on_the_sample_without_an_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "none.geojson")
    lat, lng = wgs84_to_gcj02(22.625, 114.045)
    code, out = run(capsys, "--store", store, "locate", str(lat), str(lng), "--datum", "gcj02")
    assert code == 0 and out["path"][2]["name"] == "民治街道" and out["grid"].endswith("longhua/grid.geojson")
    code, out = run(capsys, "--store", store, "locate", "22.54", "114.06")
    assert code == 1 and out == {"found": False, "reason": "outside every unit of the grid", "grid": out["grid"]}
    code, out = run(capsys, "--store", store, "locate", "--address", "路灯坏了")
    assert code == 1 and out["reason"] == "the address names no unit of the grid"


def test_locate_needs_a_point_or_an_address(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["locate"])
    assert exc.value.code == 2
    assert "give LAT LNG or --address TEXT" in capsys.readouterr().err


def test_register_mounts_under_a_parent_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parent = argparse.ArgumentParser(prog="gateway")
    cli.register(parent.add_subparsers())
    args = parent.parse_args(["grid", "--store", str(tmp_path / "g.geojson"), "locate", "--address", "红山地铁站"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "上芬社区"


def test_words(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.main(["--store", str(tmp_path / "g.geojson"), "words"]) == 0
    assert "红山地铁站 1000000 ns" in capsys.readouterr().out.splitlines()


def test_python_dash_m_grid(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "grid", "--store", str(tmp_path / "g.geojson"), "locate", "--address", "清湖科技园"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["name"] == "清湖社区"


def test_store_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_VAR_DIR", str(tmp_path))
    assert default_store_path() == tmp_path / "grid" / "grid.geojson"
    assert load_index().source.endswith("longhua/grid.geojson")
    summary = import_grid(write(tmp_path / "c.geojson", tiny_grid()), default_store_path())
    assert summary.units == 7 and load_index().source == str(default_store_path())
    with pytest.raises(GridImportError):
        import_grid(
            write(tmp_path / "bad.geojson", {"type": "FeatureCollection", "features": []}), default_store_path()
        )
