"""The Celery app: the same task functions as the in-process runner, run by ``gateway worker``.

Each worker process keeps one event loop and one task context (database engine, classifier,
HTTP session), built lazily on its first task. Tasks are idempotent and take ids only, so
``acks_late`` is safe: a worker killed mid-task leaves the message to be delivered again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_shutdown, worker_shutdown

from gateway.settings import Settings
from gateway.tasks import runners as task_table

log = logging.getLogger(__name__)


class _WorkerState:
    """One event loop and task context per worker process (the solo/prefork pools run tasks serially)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ctx: task_table.TaskContext | None = None


_state = _WorkerState()


def _context(settings: Settings, celery_app: Celery) -> tuple[asyncio.AbstractEventLoop, task_table.TaskContext]:
    with _state.lock:
        if _state.loop is None or _state.ctx is None:
            loop = asyncio.new_event_loop()
            _state.loop = loop
            _state.ctx = loop.run_until_complete(_build_context(settings, celery_app))
        return _state.loop, _state.ctx


@worker_process_shutdown.connect
@worker_shutdown.connect
def close_worker_context(**_: Any) -> None:
    """Close the database engine and HTTP session of this worker process."""
    with _state.lock:
        loop, ctx = _state.loop, _state.ctx
        _state.loop = _state.ctx = None
    if loop is None or ctx is None:
        return
    loop.run_until_complete(_close(ctx))
    loop.close()


async def _close(ctx: task_table.TaskContext) -> None:
    await ctx.services["http"].close()
    await ctx.pipeline.db.close()


async def _build_context(settings: Settings, celery_app: Celery) -> task_table.TaskContext:
    from aiohttp import ClientSession, ClientTimeout

    import channels
    from gateway.core.pipeline import Pipeline
    from gateway.db import Database
    from gateway.dispatch import outbox, ratings
    from gateway.http.app import make_classifier
    from gateway.http.channels import load_accounts
    from gateway.media import LocalMediaStore

    db = Database(settings.db_url)
    runner = task_table.CeleryRunner(celery_app)
    pipeline = Pipeline(db, settings, runner, make_classifier(settings))
    chans = {name: cls() for name, cls in channels.load_channels().items()}
    pipeline.outbound_channels = frozenset(n for n, c in chans.items() if c.can_send)
    outbox.install(pipeline)  # the worker moves reports to ready too (classification)
    ratings.install(pipeline)
    http = ClientSession(timeout=ClientTimeout(total=30))
    return task_table.TaskContext(
        pipeline=pipeline,
        services={
            "settings": settings,
            "media": LocalMediaStore(settings.media_path),
            "http": http,
            "channels": chans,
            "accounts": load_accounts(chans, settings.model_dump()),
        },
    )


def make_celery(settings: Settings) -> Celery:
    if not settings.redis_url:
        raise RuntimeError("GATEWAY_REDIS_URL is required for Celery")
    app = Celery("gateway", broker=settings.redis_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="default",
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={"visibility_timeout": 3600},
        task_routes={f"gateway.{name}": {"queue": queue} for name, queue in task_table.QUEUES.items()},
    )
    for name in task_table.TASKS:
        _register(app, settings, name)
    return app


def _register(app: Celery, settings: Settings, name: str) -> None:
    def run(self: Task, *args: Any) -> None:
        loop, ctx = _context(settings, app)
        try:
            loop.run_until_complete(task_table.TASKS[name](ctx, *args))
        except task_table.Retry as exc:
            raise self.retry(
                countdown=exc.delay or task_table.backoff(self.request.retries), max_retries=task_table.MAX_ATTEMPTS
            ) from exc
        except Exception as exc:
            log.exception("task failed", extra={"task": name, "task_args": args, "attempt": self.request.retries + 1})
            raise self.retry(
                countdown=task_table.backoff(self.request.retries), max_retries=task_table.MAX_ATTEMPTS
            ) from exc

    # shared=False: each app (one per test, one per process in production) keeps its own tasks.
    app.task(name=f"gateway.{name}", bind=True, shared=False)(run)


def queues() -> list[str]:
    return sorted(set(task_table.QUEUES.values()) | {"default"})
