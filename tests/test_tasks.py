"""The task runner seam: in-process retries and drain; the same tasks through Celery over Redis."""

from __future__ import annotations

import asyncio
import threading

import pytest

from gateway.tasks import runners as tasks
from gateway.tasks.runners import InProcessRunner, Retry, TaskContext


@pytest.fixture
def table(monkeypatch):
    calls: list[tuple[str, int]] = []
    attempts = {"n": 0}

    async def flaky(ctx, value):
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise Retry("not yet", delay=0)
        calls.append(("flaky", value))

    async def broken(ctx, value):
        raise RuntimeError("always")

    monkeypatch.setitem(tasks.TASKS, "flaky", flaky)
    monkeypatch.setitem(tasks.TASKS, "broken", broken)
    monkeypatch.setattr(tasks, "backoff", lambda attempt, **kw: 0)
    return calls, attempts


async def test_in_process_runner_retries_until_success(table):
    calls, attempts = table
    runner = InProcessRunner(max_attempts=5)
    runner.bind(TaskContext(pipeline=None))  # type: ignore[arg-type]
    await runner.enqueue("flaky", 7)
    await runner.idle()
    assert calls == [("flaky", 7)] and attempts["n"] == 3


async def test_in_process_runner_gives_up_and_records(table):
    runner = InProcessRunner(max_attempts=2)
    runner.bind(TaskContext(pipeline=None))  # type: ignore[arg-type]
    await runner.enqueue("broken", 1)
    await runner.idle()
    assert runner.failures and runner.failures[0][0] == "broken"


async def test_unknown_task_is_refused():
    with pytest.raises(KeyError):
        await InProcessRunner().enqueue("nope")


async def test_drain_cancels_delayed_tasks_and_waits_for_running(table):
    calls, _ = table
    runner = InProcessRunner()
    runner.bind(TaskContext(pipeline=None))  # type: ignore[arg-type]
    await runner.enqueue("flaky", 1, delay=3600)
    await runner.drain(timeout=1)
    await asyncio.sleep(0)
    assert calls == [] and not runner._pending


async def test_in_process_queue_is_bounded_and_counts_what_it_leaves_to_the_sweeper(table):
    calls, _ = table
    runner = InProcessRunner(max_pending=2, max_delayed=1)
    runner.bind(TaskContext(pipeline=None))  # type: ignore[arg-type]
    for n in range(4):
        await runner.enqueue("flaky", n)  # started on the loop: at most 2 at once
    await runner.enqueue("flaky", 10, delay=3600)
    await runner.enqueue("flaky", 11, delay=3600)  # over max_delayed
    assert len(runner._pending) == 2 and runner.delayed == 1 and runner.refused == 3
    await runner.drain(timeout=5)


@pytest.mark.redis
async def test_celery_runner_runs_the_same_task_over_redis(make_settings, redis_url, monkeypatch, sqlite_url):
    """Enqueue through Redis, run in a real Celery worker thread, see the report classified."""
    from celery.contrib.testing.worker import start_worker

    from gateway.core.pipeline import Pipeline
    from gateway.db import Database, Report
    from gateway.models import InboundMessage, MessageKind
    from gateway.tasks.runners import CeleryRunner
    from gateway.worker import close_worker_context, make_celery

    settings = make_settings(redis_url=redis_url)
    celery_app = make_celery(settings)
    db = Database(sqlite_url)
    from gateway.core.classify import PlaceholderClassifier

    pipeline = Pipeline(db, settings, CeleryRunner(celery_app), PlaceholderClassifier())
    from datetime import UTC, datetime

    message = InboundMessage(
        channel="web",
        channel_message_id="c1",
        sender="web:1",
        received_at=datetime.now(UTC),
        kind=MessageKind.TEXT,
        text="路灯坏了",
        complete=True,
    )
    try:
        with start_worker(
            celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10, queues=["nlp", "default", "send"]
        ):
            result = await pipeline.intake([message])
            for _ in range(100):
                async with db.session() as s:
                    status = (await s.get(Report, result.report_id)).status
                if status != "received":
                    break
                await asyncio.sleep(0.1)
    finally:
        # The worker thread's task context (built from this test's settings) and its heartbeat
        # outlive the worker; a later test's worker would reuse them, on this test's database.
        await asyncio.to_thread(close_worker_context)
        await db.close()
    assert status == "needs_review"
    assert threading.active_count() >= 1
