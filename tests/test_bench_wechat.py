"""bench/wechat.py runs end to end and prints its figures (a smoke test: no timing assertions)."""

from __future__ import annotations

import re

import pytest

from tests import bench_support
from tests.bench_support import NUMBER


def run_bench(*args: str) -> str:
    proc = bench_support.run_bench("wechat.py", "--client", "python", "--duration", "2", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def row(out: str, label: str) -> dict[str, float]:
    m = re.search(
        rf"^{re.escape(label)}\s+(?P<rate>{NUMBER})\s+(?P<p50>{NUMBER})\s+(?P<p99>{NUMBER})\s+(?P<answered>\d+)"
        rf"\s+(?P<stored>\d+)\s+(?P<errors>\d+)\s+(?P<rss>\d+)\s+(?P<torch>yes|no)$",
        out,
        re.M,
    )
    assert m, f"no row for {label!r} in:\n{out}"
    values = {k: float(v) if k != "torch" else float(v == "yes") for k, v in m.groupdict().items()}
    assert values["rate"] > 0 and values["answered"] > 0 and values["errors"] == 0
    assert values["stored"] >= values["answered"]  # every answered message was stored
    return values


def test_wechat_bench_prints_the_gateway_beside_the_reference() -> None:
    out = run_bench("--connections", "4")
    assert re.search(r"^machine\n  platform .+", out, re.M) and "client python" in out
    row(out, "reference")
    gateway = row(out, "gateway")
    assert gateway["torch"] == 0  # a serving process with the linear model never imports torch
    assert re.search(rf"gateway/reference: throughput {NUMBER}, p99 {NUMBER}×", out)
    assert "every answered message stored" in out
    # Two seconds of load keep the gateway busy for well over the clock ticks a CPU figure needs.
    assert re.search(rf"^  gateway\s+{NUMBER} CPUs\s+{NUMBER} µs/request\s+machine\s+{NUMBER}% busy$", out, re.M), out
    # The gateway's /metrics sampled its event loop every 50 ms through the 2 s of load.
    lag = re.search(rf"^  gateway\s+mean {NUMBER} ms; half ≤ {NUMBER} ms, 90% ≤ .+ \((\d+) samples\)$", out, re.M)
    assert lag and int(lag.group(1)) >= 10, out


@pytest.mark.postgres
def test_wechat_bench_on_postgresql_with_two_processes(pg_database: str) -> None:
    out = run_bench("--connections", "4", "--database-url", pg_database, "--processes", "1,2")
    row(out, "reference")
    row(out, "gateway ×1")
    row(out, "gateway ×2")
    row(out, "reference ×2")  # the machine's own scaling, beside the gateway's
    assert re.search(rf"gateway ×2/reference ×2: throughput {NUMBER}", out)
    assert re.search(rf"gateway ×2/gateway ×1: throughput {NUMBER}", out)
    assert re.search(rf"reference ×2/reference: throughput {NUMBER}", out)
