"""Production wiring under faults: PostgreSQL, a private Redis, ``gateway serve`` and a Celery
``gateway worker``, with 40 posts in flight.

- kill -9 of the worker (its whole process group): what it had reserved stays unacked in Redis
  until the visibility timeout (``GATEWAY_TASK_VISIBILITY_TIMEOUT_S``, 900 s); the serving
  process reaps the dead worker's leases (its pids are gone) and re-enqueues the work at once.
- a Redis restart (no persistence: every queued task is lost): the serving process sees a new
  Redis ``run_id`` and re-enqueues every unfinished piece of work; posts answered while Redis was
  down were stored and answered all the same (the enqueue failure is logged and made up for).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.support import (
    RECOVERY_S,
    Proc,
    Residents,
    free_port,
    gateway_env,
    report_figure,
    serve,
    settle,
    wait_up,
    worker,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(170)]


async def _ready(proc: Proc, timeout: float = 60) -> float:
    """Wait for the Celery worker's "ready" line; the monotonic time it appeared."""
    deadline = time.monotonic() + timeout
    while " ready." not in (proc.log.read_text(errors="replace") if proc.log.exists() else ""):
        assert proc.proc is not None and proc.proc.poll() is None, f"worker exited: {proc.tail()}"
        assert time.monotonic() < deadline, f"worker not ready: {proc.tail()}"
        await asyncio.sleep(0.1)
    return time.monotonic()


async def test_kill_9_worker_under_load(tmp_path, fake, pg_url, private_redis, record_property):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = gateway_env(tmp_path, fake, database_url=pg_url, redis_url=private_redis.url)
    residents = Residents(base, 40)
    web, first = serve(tmp_path, env, port), worker(tmp_path, env)
    second = None
    try:
        await wait_up(base, web)
        await _ready(first)
        fake.delay_s = 0.3  # deliveries are in flight at the kill
        posting = asyncio.create_task(residents.post(spacing_s=0.02))
        await residents.acked_at_least(20)
        first.kill()
        killed = time.monotonic()
        await posting
        assert len(residents.acked) == 40  # the serving process lived: every post answered
        fake.delay_s = 0
        first.log.rename(tmp_path / "worker-killed.log")
        second = worker(tmp_path, env)
        ready = await _ready(second)
        moved = await settle(pg_url, residents, fake)  # every post was answered already (above)
    finally:
        for proc in (second, first, web):
            if proc is not None:
                proc.stop()
    report_figure(
        record_property,
        "kill -9 worker (PostgreSQL, Redis)",
        recovery_after_restart_s=max(0.0, moved - ready),
        after_kill_s=moved - killed,
    )
    assert moved - ready <= RECOVERY_S


async def test_redis_restart_under_load(tmp_path, fake, pg_url, private_redis, record_property):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = gateway_env(tmp_path, fake, database_url=pg_url, redis_url=private_redis.url)
    residents = Residents(base, 40)
    web, work = serve(tmp_path, env, port), worker(tmp_path, env)
    try:
        await wait_up(base, web)
        await _ready(work)
        fake.delay_s = 0.2
        posting = asyncio.create_task(residents.post(spacing_s=0.03))
        await residents.acked_at_least(15)
        await private_redis.restart(down_s=1.0)
        restarted = time.monotonic()
        await posting
        fake.delay_s = 0
        moved = await settle(pg_url, residents, fake)
    finally:
        work.stop()
        web.stop()
    report_figure(record_property, "Redis restart (PostgreSQL)", recovery_after_restart_s=moved - restarted)
    assert moved - restarted <= RECOVERY_S
