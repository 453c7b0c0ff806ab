"""bench/intake.py runs end to end and prints its figures (a smoke test: no timing assertions)."""

from __future__ import annotations

import asyncio
import re
import subprocess

import pytest

from tests import bench_support
from tests.bench_support import NUMBER

ROW = rf"\s+(?P<rate>{NUMBER})\s+(?P<p50>{NUMBER})\s+(?P<p99>{NUMBER})\s+(?P<errors>\d+)$"


def run_bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return bench_support.run_bench("intake.py", *args, timeout=timeout)


def figures(out: str, label: str) -> dict[str, float]:
    m = re.search(rf"^{re.escape(label)}{ROW}", out, re.MULTILINE)
    assert m, f"no figures for {label!r} in:\n{out}"
    values = {k: float(v) for k, v in m.groupdict().items()}
    assert values["rate"] > 0 and 0 < values["p50"] <= values["p99"], values
    assert values["errors"] == 0
    return values


def check_common(out: str) -> None:
    assert re.search(r"^machine\n  platform .+\n  cpu_model .+\n  cpu_count", out, re.MULTILINE), out
    assert re.search(r"python\s+CPython|python\s+\w+ 3\.", out)
    assert "load_average" in out
    assert "GATEWAY_CLASSIFIER=placeholder" in out and "measure intake" in out
    assert "50 requests per target" in out
    figures(out, "bare aiohttp")
    assert "CPU during the load" in out
    assert "the gateway's event loop during the load" in out
    for label in ("bare aiohttp", "reference (sqlite)", "gateway (sqlite)"):
        # 50 requests are a few clock ticks of CPU: a figure or the reason there is none.
        assert re.search(rf"^  {re.escape(label)}\s+({NUMBER} CPUs|n/a \(a load this short)", out, re.M), out


def check_gateway(out: str, label: str) -> None:
    figures(out, label)
    ratio = re.search(
        rf"^  {re.escape(label)}\s+throughput ({NUMBER})x\s+p50 ({NUMBER})x\s+p99 ({NUMBER})x$", out, re.M
    )
    assert ratio, f"no ratio line for {label!r} in:\n{out}"
    # 50 measured + 5 warm-up posts, every one answered 201 and stored.
    assert re.search(
        rf"^  {re.escape(label)}\s+reports stored 55 of 55 answered 201 \(ok; needs_review 55\)", out, re.M
    )


def test_intake_bench_prints_both_targets_and_their_ratio() -> None:
    proc = run_bench("--requests", "50", "--concurrency", "4")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check_common(proc.stdout)
    check_gateway(proc.stdout, "gateway (sqlite)")
    # The event loop's lag from the gateway's /metrics (50 requests may take under 50 ms: no sample).
    lag = rf"^  gateway \(sqlite\)\s+(mean {NUMBER} ms; half ≤ .+ samples\)|n/a \(no samples on /metrics\))$"
    assert re.search(lag, proc.stdout, re.M), proc.stdout
    assert "postgresql" not in proc.stdout


@pytest.mark.postgres
def test_intake_bench_on_postgresql_creates_and_drops_its_database(pg_database: str) -> None:
    proc = run_bench("--requests", "50", "--concurrency", "4", "--database-url", pg_database)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check_common(proc.stdout)
    check_gateway(proc.stdout, "gateway (sqlite)")
    check_gateway(proc.stdout, "gateway (postgresql)")
    m = re.search(r"database (gw_bench_\w+) created, migrated and dropped", proc.stdout)
    assert m, proc.stdout
    assert not asyncio.run(_database_exists(pg_database, m.group(1)))


async def _database_exists(url: str, name: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "url",
    ["postgresql+asyncpg://postgres@db.example.com:5432/test", "sqlite+aiosqlite:///x.db"],
    ids=["remote host", "not postgresql"],
)
def test_intake_bench_refuses_a_database_it_should_not_touch(url: str) -> None:
    proc = run_bench("--requests", "1", "--database-url", url, timeout=60)
    assert proc.returncode != 0
    assert "--database-url must" in proc.stderr
    assert "req/s" not in proc.stdout  # refused before any load
