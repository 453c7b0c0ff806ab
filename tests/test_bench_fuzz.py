"""bench/fuzz.py runs end to end against a real server (a smoke test of the runner; the 100,000-input
figure comes from running it by hand, see THREAT_MODEL.md)."""

from __future__ import annotations

import re

import pytest

from tests.bench_support import run_bench

pytestmark = pytest.mark.slow


def test_fuzz_runner_sends_hostile_requests_and_finds_no_5xx_or_hang() -> None:
    proc = run_bench("fuzz.py", "--count", "400", "--concurrency", "8", "--seed", "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^400 requests sent in", proc.stdout, re.M), proc.stdout
    assert re.search(r"^5xx: 0\s+hangs: 0\s+server alive at the end: True$", proc.stdout, re.M), proc.stdout
    histogram = re.search(r"^status histogram: (.+)$", proc.stdout, re.M)
    assert histogram and "400:" in histogram.group(1) and "403:" in histogram.group(1)
