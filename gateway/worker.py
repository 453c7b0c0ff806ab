"""The Celery app: the same task functions as the in-process runner, run by ``gateway worker``.

Each worker process keeps one event loop and one task context (database engine, classifier,
HTTP session), built lazily on its first task. Tasks are idempotent and take ids only, so
``acks_late`` is safe: a worker killed mid-task leaves the message to be delivered again.

Each worker process (each prefork child) also holds a lease (``gateway/core/leases.py``), renewed
from a thread of its own because a running task blocks the process's loop: when a worker is
killed, any live process reaps its lease within seconds and resumes its work from the database,
without waiting for Redis to redeliver what it had reserved (``GATEWAY_TASK_VISIBILITY_TIMEOUT_S``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init, worker_process_shutdown, worker_shutdown

from gateway.core.classify import PlaceholderClassifier
from gateway.runtime import build_runtime, keep_alive, open_runtime
from gateway.settings import Settings
from gateway.tasks.runners import (
    MAX_ATTEMPTS,
    QUEUES,
    TASKS,
    CeleryRunner,
    RedisClaims,
    Retry,
    TaskContext,
    backoff,
    celery_app,
)

log = logging.getLogger(__name__)


class _WorkerState:
    """One event loop and task context per worker process (the solo/prefork pools run tasks serially)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ctx: TaskContext | None = None
        self.heart: _Heartbeat | None = None


_state = _WorkerState()


class _Heartbeat:
    """This worker process's lease, kept by a thread with its own loop and database engine."""

    def __init__(self, settings: Settings, celery_app: Celery) -> None:
        self.pid = os.getpid()
        self.running = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self.thread = threading.Thread(
            target=asyncio.run, args=(self._run(settings, celery_app),), name="gateway-heartbeat", daemon=True
        )
        self.thread.start()

    async def _run(self, settings: Settings, celery_app: Celery) -> None:
        self.loop, self.stopping = asyncio.get_running_loop(), asyncio.Event()
        self.running.set()
        runner = CeleryRunner(celery_app)
        async with open_runtime(settings, runner=runner, classifier=PlaceholderClassifier()) as runtime:
            await keep_alive(runtime, "worker").run(self.stopping)

    def stop(self, timeout: float = 5.0) -> None:
        if self.running.wait(timeout) and self.loop is not None and self.stopping is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(timeout)


def start_heartbeat(settings: Settings, celery_app: Celery) -> None:
    """Take this process's lease (once per process; a forked child takes its own)."""
    with _state.lock:
        if _state.heart is None or _state.heart.pid != os.getpid():
            _state.heart = _Heartbeat(settings, celery_app)


def _context(settings: Settings, celery_app: Celery) -> tuple[asyncio.AbstractEventLoop, TaskContext]:
    start_heartbeat(settings, celery_app)  # the solo pool has no worker_process_init
    with _state.lock:
        if _state.loop is None or _state.ctx is None:
            loop = asyncio.new_event_loop()
            _state.loop = loop
            _state.ctx = loop.run_until_complete(_build_context(settings, celery_app))
        return _state.loop, _state.ctx


def close_worker_context(**_: Any) -> None:
    """Close the database engine and HTTP session of this worker process."""
    with _state.lock:
        loop, ctx, heart = _state.loop, _state.ctx, _state.heart
        _state.loop = _state.ctx = _state.heart = None
    if heart is not None and heart.pid == os.getpid():
        heart.stop()
    if loop is None or ctx is None:
        return
    loop.run_until_complete(_close(ctx))
    loop.close()


# Celery signals (not typed): close the context when the worker (or a pool process) stops.
worker_process_shutdown.connect(close_worker_context)
worker_shutdown.connect(close_worker_context)


async def _close(ctx: TaskContext) -> None:
    claims = ctx.pipeline.triage.claims
    if isinstance(claims, RedisClaims):
        await claims.aclose()
    await ctx.services["http"].close()
    await ctx.pipeline.db.close()


async def _build_context(settings: Settings, celery_app: Celery) -> TaskContext:
    """The worker's runtime, from the composition root; kept open until the process shuts down."""
    return build_runtime(settings, runner=CeleryRunner(celery_app)).context  # closed by close_worker_context


def make_celery(settings: Settings) -> Celery:
    app = celery_app(settings)
    for name in TASKS:
        _register(app, settings, name)

    def on_child_start(**_: Any) -> None:
        start_heartbeat(settings, app)  # a prefork child: its lease from the start, not its first task

    worker_process_init.connect(on_child_start, weak=False)
    return app


def _register(app: Celery, settings: Settings, name: str) -> None:
    def run(self: Task, *args: Any) -> None:
        loop, ctx = _context(settings, app)
        try:
            loop.run_until_complete(TASKS[name](ctx, *args))
        except Retry as exc:
            raise self.retry(countdown=exc.delay or backoff(self.request.retries), max_retries=MAX_ATTEMPTS) from exc
        except Exception as exc:
            log.exception("task failed", extra={"task": name, "task_args": args, "attempt": self.request.retries + 1})
            raise self.retry(countdown=backoff(self.request.retries), max_retries=MAX_ATTEMPTS) from exc

    # shared=False: each app (one per test, one per process in production) keeps its own tasks.
    app.task(name=f"gateway.{name}", bind=True, shared=False)(run)


def queues() -> list[str]:
    return sorted(set(QUEUES.values()) | {"default"})
