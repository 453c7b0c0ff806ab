"""bench/dispatch.py runs end to end and prints its figures (a smoke test: no timing assertions)."""

from __future__ import annotations

import re
import subprocess

import pytest
import redis

from tests import bench_support
from tests.bench_support import NUMBER

REQUESTS = 6
BASELINE = "baseline: sign+POST"
EMBEDDED = "embedded (in-process)"
CELERY = "celery (redis, worker -c 1)"


def run_bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return bench_support.run_bench(
        "dispatch.py", "--requests", str(REQUESTS), "--concurrency", "2", "--warmup", "2", *args, timeout=timeout
    )


def check_header(out: str, modes: str) -> None:
    assert re.search(r"^machine\n  platform .+\n  cpu_model .+\n  cpu_count", out, re.MULTILINE), out
    assert "load_average" in out
    assert f"{REQUESTS} reports per mode, 2 in flight, 2 warm-up reports first" in out
    assert re.search(r"classifier: the bundled model default-\S+", out)
    assert f"modes: {modes}" in out


def check_row(out: str, label: str, *, ack: bool = True) -> None:
    ack_col = NUMBER if ack else "-"
    row = rf"^{re.escape(label)}\s+({NUMBER})\s+({NUMBER})\s+({NUMBER})\s+{ack_col}\s+{REQUESTS}\s+0$"
    m = re.search(row, out, re.MULTILINE)
    assert m, f"no figures for {label!r} in:\n{out}"
    rate, p50, p99 = (float(v) for v in m.groups())
    assert rate > 0 and 0 < p50 <= p99
    check = rf"^  {re.escape(label)}\s+delivered {REQUESTS} of {REQUESTS}, webhooks {REQUESTS}, "
    assert re.search(check + r"bad signatures 0, duplicates 0 \(ok\)$", out, re.MULTILINE), out


def check_ratio(out: str, label: str) -> None:
    ratio = rf"^  {re.escape(label)}\s+deliv/s ({NUMBER})x\s+p50 ({NUMBER})x\s+p99 ({NUMBER})x$"
    assert re.search(ratio, out, re.MULTILINE), f"no ratio line for {label!r} in:\n{out}"


def test_dispatch_bench_embedded_beside_its_baseline() -> None:
    proc = run_bench("--modes", "embedded")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    check_header(out, "embedded")
    check_row(out, BASELINE, ack=False)
    check_row(out, EMBEDDED)
    check_ratio(out, EMBEDDED)
    assert "celery" not in out


@pytest.mark.redis
def test_dispatch_bench_celery_mode_over_real_redis(redis_url: str) -> None:
    """``redis_url`` skips (or fails under CI=true) when Redis is missing; its database is this
    test process's own, flushed afterwards. An earlier test of this process may have left a task
    queued there after its flush (a sweeper of an app still closing); the bench refuses a database
    with pending tasks, so start from an empty one."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    proc = run_bench("--modes", "celery", "--redis-url", redis_url, "--worker-concurrency", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    check_header(out, "celery")
    check_row(out, BASELINE, ack=False)
    check_row(out, CELERY)
    check_ratio(out, CELERY)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--modes", "celery", "--redis-url", "redis://db.example.com:6379/0"),
            "--redis-url must point at a local Redis",
        ),
        (("--modes", "teleport"), "--modes takes embedded, celery"),
        (("--requests", "0"), "--requests must be"),
    ],
    ids=["remote redis", "unknown mode", "no requests"],
)
def test_dispatch_bench_refuses_bad_arguments_before_any_load(args: tuple[str, ...], message: str) -> None:
    proc = run_bench(*args, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "deliv/s" not in proc.stdout


def test_dispatch_bench_open_loop_at_a_fixed_rate() -> None:
    """``--rate``: reports posted on a schedule whatever the answers; the figures per mode and the
    exactly-once check (each case delivered once, none missing, none twice)."""
    proc = bench_support.run_bench(
        "dispatch.py", "--modes", "embedded", "--rate", "20", "--duration", "3", "--warmup", "2", timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "open loop: 20 reports/s for 3 s (60 per mode)" in out
    for label in (BASELINE, EMBEDDED):
        figures = rf"\s+({NUMBER})" * 5
        row = rf"^{re.escape(label)}\s+20\.0{figures}\s+\S+\s+60\s+0$"
        m = re.search(row, out, re.MULTILINE)
        assert m, f"no figures for {label!r} in:\n{out}"
        intake, deliv, p50, p99, top = (float(v) for v in m.groups())
        assert intake > 0 and deliv > 0 and 0 < p50 <= p99 <= top
        check = rf"^  {re.escape(label)}\s+delivered 60 of 60, missing 0, webhooks 60, "
        check += r"bad signatures 0, duplicates 0 \(ok\)$"
        assert re.search(check, out, re.MULTILINE), out
    assert re.search(rf"^  {re.escape(EMBEDDED)}\s+p50 {NUMBER}x\s+p99 {NUMBER}x\s+max {NUMBER}x$", out, re.MULTILINE)
