"""Background work behind one small seam, with two backends running the same task functions.

- ``InProcessRunner`` (embedded default): asyncio tasks in the serving process, with bounded
  retries and backoff; drained on graceful shutdown. What it had not finished when the process
  died is picked up by the pipeline's sweeper, because every task re-reads its state by id.
- ``CeleryRunner`` (``GATEWAY_REDIS_URL`` set): sends the task by name to Celery over Redis;
  ``gateway worker`` runs the same functions (see ``gateway/worker.py``).

Tasks take ids and small JSON values only, and are idempotent, so running one twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gateway.core.pipeline import Pipeline

log = logging.getLogger(__name__)


@dataclass
class TaskContext:
    """What task functions may use; built once per process (web or worker)."""

    pipeline: Pipeline
    services: dict[str, Any] = field(default_factory=dict)


TaskFn = Callable[..., Awaitable[Any]]


class Retry(Exception):  # noqa: N818 - reads as "raise Retry(...)"
    """Raised by a task to ask for another attempt later (transient failure)."""

    def __init__(self, reason: str, *, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


async def classify_report(ctx: TaskContext, report_id: int) -> None:
    await ctx.pipeline.classify_report(report_id)


async def close_session(ctx: TaskContext, report_id: int) -> None:
    await ctx.pipeline.close_session(report_id)


async def notify(ctx: TaskContext, notification_id: int) -> None:
    from gateway.tasks.notify import notify as send_notification

    await send_notification(ctx, notification_id)


async def fetch_media(ctx: TaskContext, media_id: int) -> None:
    from gateway.tasks.mediafetch import fetch_media as download

    await download(ctx, media_id)


async def deliver_dispatch(ctx: TaskContext, delivery_id: int) -> None:
    from gateway.dispatch.outbox import deliver_dispatch as deliver

    await deliver(ctx, delivery_id)


async def poll_weibo_mentions(ctx: TaskContext) -> None:
    from gateway.tasks.mentions import poll_weibo_mentions as poll

    await poll(ctx)


# The explicit task table: name -> function. Queues group them for Celery workers.
TASKS: dict[str, TaskFn] = {
    "classify_report": classify_report,
    "close_session": close_session,
    "notify": notify,
    "deliver_dispatch": deliver_dispatch,
    "deliver_dispatch_urgent": deliver_dispatch,  # P1: its own queue, so a backlog never delays it
    "fetch_media": fetch_media,
    "poll_weibo_mentions": poll_weibo_mentions,  # periodic, enqueued by gateway serve (gateway/tasks/mentions.py)
}
QUEUES: dict[str, str] = {
    "classify_report": "nlp",
    "close_session": "nlp",
    "notify": "send",
    "deliver_dispatch": "dispatch",
    "deliver_dispatch_urgent": "dispatch_urgent",
    "fetch_media": "media",
    "poll_weibo_mentions": "default",
}
MAX_ATTEMPTS = 8
BACKOFF_BASE_S = 2.0
BACKOFF_CAP_S = 600.0


def register(name: str, fn: TaskFn, *, queue: str = "default") -> None:
    TASKS[name] = fn
    QUEUES[name] = queue


def backoff(attempt: int, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_CAP_S) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(cap, base * 2**attempt))


class TaskRunner(Protocol):
    async def enqueue(self, name: str, *args: Any, delay: float = 0) -> None: ...

    async def drain(self, timeout: float) -> None: ...


class InProcessRunner:
    def __init__(self, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.ctx: TaskContext | None = None
        self.max_attempts = max_attempts
        self._pending: set[asyncio.Task[None]] = set()
        self._sleeping: set[asyncio.Task[Any]] = set()  # delayed tasks not yet due
        self.failures: list[tuple[str, tuple[Any, ...], str]] = []

    def bind(self, ctx: TaskContext) -> None:
        self.ctx = ctx

    async def enqueue(self, name: str, *args: Any, delay: float = 0) -> None:
        if name not in TASKS:
            raise KeyError(f"unknown task {name!r}")
        task = asyncio.get_running_loop().create_task(self._run(name, args, delay), name=f"task:{name}")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _run(self, name: str, args: tuple[Any, ...], delay: float) -> None:
        if delay:
            me = asyncio.current_task()
            assert me is not None
            self._sleeping.add(me)
            try:
                await asyncio.sleep(delay)
            finally:
                self._sleeping.discard(me)
        assert self.ctx is not None, "runner not bound to a context"
        for attempt in range(self.max_attempts):
            try:
                await TASKS[name](self.ctx, *args)
                return
            except asyncio.CancelledError:
                raise
            except Retry as exc:
                wait = exc.delay if exc.delay is not None else backoff(attempt)
                log.info(
                    "task retry", extra={"task": name, "task_args": args, "attempt": attempt + 1, "reason": str(exc)}
                )
            except Exception as exc:
                wait = backoff(attempt)
                log.exception("task failed", extra={"task": name, "task_args": args, "attempt": attempt + 1})
                if attempt + 1 == self.max_attempts:
                    self.failures.append((name, args, repr(exc)))
                    return
            await asyncio.sleep(wait)
        self.failures.append((name, args, "gave up after retries"))

    async def drain(self, timeout: float) -> None:
        """Wait for running tasks (not sleeping delayed ones) up to ``timeout``, then cancel the rest."""
        if not self._pending:
            return
        for task in self._sleeping:
            task.cancel()  # not due yet: the sweeper re-enqueues them after a restart
        running = self._pending - self._sleeping
        if not running:
            return
        done, pending = await asyncio.wait(running, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def idle(self, timeout: float = 10.0) -> None:
        """For tests and benchmarks: wait until no task is running (delayed ones not yet due aside)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._pending - self._sleeping:
            if loop.time() > deadline:
                raise TimeoutError(f"tasks still running: {[t.get_name() for t in self._pending]}")
            await asyncio.sleep(0.01)


class CeleryRunner:
    """Sends tasks to Celery workers over Redis. Enqueue happens after the caller's commit."""

    def __init__(self, celery_app: Any) -> None:
        self.celery = celery_app

    async def enqueue(self, name: str, *args: Any, delay: float = 0) -> None:
        if name not in TASKS:
            raise KeyError(f"unknown task {name!r}")
        # send_task talks to Redis synchronously; keep it off the event loop.
        await asyncio.to_thread(
            self.celery.send_task,
            f"gateway.{name}",
            args=list(args),
            countdown=delay or None,
            queue=QUEUES.get(name, "default"),
        )

    async def drain(self, timeout: float) -> None:
        return None
