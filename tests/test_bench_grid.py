"""bench/grid.py runs end to end on a small grid and prints its figures (a smoke test: no timing assertions)."""

from __future__ import annotations

import json

from tests.bench_support import run_bench


def test_bench_grid_small_run() -> None:
    proc = run_bench("grid.py", "--units", "300", "--points", "3000", "--texts", "300")
    assert proc.returncode == 0, proc.stderr
    assert "agrees with the index on 200/200" in proc.stdout
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["points"] == 3000 and figures["texts"] == 300
    assert figures["memory_mib"] > 0 and figures["locate_per_s"] > 0 and figures["address_per_s"] > 0
    assert figures["accuracy_generated"] >= 0.97
