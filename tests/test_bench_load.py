"""What the intake benchmarks print beside throughput (bench/_load.py): the CPU a load cost
(``CpuMeter``), so that "the server is bound by its own CPU" is a figure, not a profile; and the
gateway's event-loop lag during it, read from its ``/metrics`` (``lag_histogram``)."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import generate_latest

from bench._load import (
    MIN_CPU_S,
    CpuFigures,
    CpuMeter,
    LagMeter,
    cpu_line,
    free_port,
    lag_between,
    lag_histogram,
    lag_line,
)
from gateway.metrics import Metrics

linux = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="CpuMeter reads Linux /proc")

SPIN = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\n"


@linux
def test_a_busy_process_is_measured_as_one_cpu() -> None:
    child = subprocess.Popen([sys.executable, "-c", SPIN.format(s=30)])
    try:
        time.sleep(0.3)  # started and spinning
        with CpuMeter([child.pid]) as meter:
            time.sleep(1.0)
        assert child.poll() is None
    finally:
        child.kill()
        child.wait(30)
    figures = meter.figures
    assert figures is not None and figures.measurable
    # One spinning thread: up to one CPU for the second measured (less when the machine is shared).
    assert 0.25 <= figures.server_s <= 1.1, figures
    assert 0.25 <= figures.server_cores <= 1.05, figures
    assert 0 < figures.machine_busy <= 1
    assert figures.per_request_us(1000) == pytest.approx(figures.server_s * 1000)


@linux
def test_an_idle_process_has_no_figure() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.3)
        with CpuMeter([child.pid]) as meter:
            time.sleep(0.5)
    finally:
        child.kill()
        child.wait(30)
    assert meter.figures is not None
    assert not meter.figures.measurable
    assert math.isnan(meter.figures.per_request_us(100))
    assert cpu_line(meter.figures, 100).startswith("n/a (a load this short")


def test_figures_and_their_line() -> None:
    figures = CpuFigures(server_s=2.0, wall_s=4.0, machine_busy=0.625)
    assert figures.measurable and MIN_CPU_S < 2.0
    assert figures.server_cores == 0.5
    assert figures.per_request_us(4000) == 500.0
    assert math.isnan(figures.per_request_us(0))
    assert cpu_line(figures, 4000) == " 0.50 CPUs     500 µs/request   machine  62% busy"
    assert cpu_line(None, 10) == "n/a (no /proc here)"


@linux
def test_a_process_that_is_gone_reads_as_no_figure() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(30)
    with CpuMeter([child.pid]) as meter:
        pass
    assert meter.figures is None  # nothing to read: no figure rather than a zero


def _histogram(counts: dict[str, float], total: float, seconds: float) -> dict[str, float]:
    return {**counts, "count": total, "sum": seconds}


def test_lag_between_two_scrapes_counts_only_the_load() -> None:
    before = _histogram({"0.001": 10, "0.005": 10, "0.01": 10, "+Inf": 10}, 10, 0.002)
    # During the load: 100 samples, 60 under 1 ms, 35 more under 5 ms, 5 more under 10 ms.
    after = _histogram({"0.001": 70, "0.005": 105, "0.01": 110, "+Inf": 110}, 110, 0.202)
    figures = lag_between(before, after)
    assert figures is not None
    assert figures.samples == 100 and figures.mean_s == pytest.approx(0.002)
    assert (figures.p50_le, figures.p90_le, figures.p99_le) == (0.001, 0.005, 0.01)
    assert lag_line(figures) == "mean 2.0 ms; half ≤ 1 ms, 90% ≤ 5 ms, 99% ≤ 10 ms (100 samples)"


def test_lag_without_samples_or_metrics_has_no_figure() -> None:
    same = _histogram({"0.001": 3, "+Inf": 3}, 3, 0.001)
    assert lag_between(same, same) is None
    assert lag_between(None, same) is None
    assert lag_line(None) == "n/a (no samples on /metrics)"


async def test_lag_meter_reads_a_gateway_metrics_page_before_and_after() -> None:
    metrics = Metrics()
    for value in (0.0004, 0.003, 0.2):
        metrics.loop_lag.observe(value)

    async def serve_metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.registry))  # as it stands at each scrape

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        found = await asyncio.to_thread(lag_histogram, base)  # it blocks: a bench helper
        meter = LagMeter(base)
        await asyncio.to_thread(meter.__enter__)
        for value in (0.001, 0.001, 0.008):  # the load's samples
            metrics.loop_lag.observe(value)
        await asyncio.to_thread(meter.__exit__)
    finally:
        await runner.cleanup()
    assert found is not None
    assert found["count"] == 3 and found["sum"] == pytest.approx(0.2034)
    assert found["0.0005"] == 1 and found["0.005"] == 2 and found["0.25"] == 3 and found["+Inf"] == 3
    # Only what came between the two scrapes counts.
    assert meter.figures is not None and meter.figures.samples == 3
    assert meter.figures.mean_s == pytest.approx(0.01 / 3)
    assert (meter.figures.p50_le, meter.figures.p99_le) == (0.001, 0.01)
    assert await asyncio.to_thread(lag_histogram, base) is None  # nobody listening now
