"""The CPU a load cost (bench/_load.py ``CpuMeter``): what the intake benchmarks print beside
throughput, so that "the server is bound by its own CPU" is a figure, not a profile."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench._load import MIN_CPU_S, CpuFigures, CpuMeter, cpu_line

pytestmark = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="CpuMeter reads Linux /proc")

SPIN = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\n"


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


def test_a_process_that_is_gone_reads_as_no_figure() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(30)
    with CpuMeter([child.pid]) as meter:
        pass
    assert meter.figures is None  # nothing to read: no figure rather than a zero
