"""bench/worker.py runs end to end and prints its figures (a smoke test: no timing assertions)."""

from __future__ import annotations

import json
import re

import pytest
import redis

from tests.bench_support import NUMBER, run_bench

REPORTS = 120


@pytest.mark.redis
def test_worker_bench_classifies_a_backlog_on_a_real_celery_worker(redis_url: str) -> None:
    """``redis_url`` skips (or fails under CI=true) when Redis is missing; the bench refuses a
    database with queued tasks, so it starts from an empty one."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    args = ("--reports", str(REPORTS), "--redis-url", redis_url, "--worker-concurrency", "1", "--max-seconds", "200")
    proc = run_bench("worker.py", *args, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert re.search(r"^machine\n  platform .+\n  cpu_model .+\n  cpu_count", out, re.MULTILINE), out
    assert f"classification backlog: {REPORTS} reports queued" in out
    assert re.search(rf"^baseline: the model alone, classify\(list\)\s+{NUMBER}$", out, re.MULTILINE), out
    assert re.search(rf"^celery worker -c 1, through classification\s+{NUMBER}$", out, re.MULTILINE), out
    m = re.search(r"\((\d+) reports classified in", out)
    assert m and 0 < int(m.group(1)) <= REPORTS, out
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["reports_per_s"] > 0 and figures["model_alone_per_s"] > 0
