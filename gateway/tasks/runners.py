"""Background work behind one small seam, with two backends running the same task functions.

- ``InProcessRunner`` (embedded default): asyncio tasks in the serving process, with bounded
  retries and backoff; drained on graceful shutdown. What it had not finished when the process
  died is picked up by the pipeline's sweeper, because every task re-reads its state by id.
- ``CeleryRunner`` (``GATEWAY_REDIS_URL`` set): sends the task by name to Celery over Redis;
  ``gateway worker`` runs the same functions (see ``gateway/worker.py``).

The task table (``gateway/tasks/table.py``) fills ``TASKS`` and ``QUEUES``; this module is the
interface only and imports no task.

Tasks take ids and small JSON values only, and are idempotent, so running one twice is harmless.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from celery import Celery
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

if TYPE_CHECKING:
    from aiohttp import ClientSession

    from channels.base import Account, BaseChannel
    from gateway.core.pipeline import Pipeline
    from gateway.media import MediaStore
    from gateway.settings import Settings

log = logging.getLogger(__name__)


class Deliverer(Protocol):
    """The outbox as tasks use it (``gateway/dispatch/outbox.py``)."""

    async def deliver(self, http: ClientSession, delivery_pk: int) -> str | None: ...


class Services(TypedDict, total=False):
    """What tasks use besides the pipeline, built by the composition root (``gateway/runtime.py``)."""

    settings: Settings
    media: MediaStore
    http: ClientSession
    channels: dict[str, BaseChannel]
    accounts: dict[tuple[str, str], Account]
    outbox: Deliverer  # the process's one outbox (gateway/dispatch/outbox.py), whose batches tasks share


@dataclass
class TaskContext:
    """What task functions may use; built once per process (web or worker) by ``gateway/runtime.py``."""

    pipeline: Pipeline
    services: Services = field(default_factory=lambda: Services())


TaskFn = Callable[..., Awaitable[Any]]


class Retry(Exception):  # noqa: N818 - reads as "raise Retry(...)"
    """Raised by a task to ask for another attempt later (transient failure)."""

    def __init__(self, reason: str, *, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


# Filled by ``gateway/tasks/table.py`` (name -> function, name -> Celery queue); the runners look
# tasks up here by name and never import a task module, so the interface sits below every task.
TASKS: dict[str, TaskFn] = {}
QUEUES: dict[str, str] = {}
MAX_ATTEMPTS = 8
BACKOFF_BASE_S = 2.0
BACKOFF_CAP_S = 600.0


def register(name: str, fn: TaskFn, *, queue: str = "default") -> None:
    TASKS[name] = fn
    QUEUES[name] = queue


def backoff(attempt: int, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_CAP_S) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(cap, base * 2**attempt))


MAX_PENDING = 10_000  # tasks running or waiting to retry in one process
MAX_DELAYED = 200_000  # delayed tasks not yet due (a draft's close_session each)


class InProcessRunner:
    """Tasks on the serving process's event loop. The queue is bounded: past ``max_pending``
    running tasks (or ``max_delayed`` delayed ones) a task is not started and a warning counts it;
    its work is in the database (a report in ``received``, a pending delivery, notification or
    media row, an expired draft), where the sweeper (``gateway/core/sweeping.py``) finds it again.
    A flood therefore costs latency, never the process's memory."""

    def __init__(
        self, max_attempts: int = MAX_ATTEMPTS, *, max_pending: int = MAX_PENDING, max_delayed: int = MAX_DELAYED
    ) -> None:
        self.ctx: TaskContext | None = None
        self.max_attempts = max_attempts
        self.max_pending = max_pending
        self.max_delayed = max_delayed
        self.refused = 0  # tasks not started because the queue was full (the sweeper covers them)
        self._pending: set[asyncio.Task[None]] = set()
        # Delayed tasks not yet due are timers, not sleeping tasks: a draft's close_session waits
        # the session window (minutes) and a busy gateway opens a thousand drafts a second, so each
        # waiting one must cost a heap entry, not a task with its coroutine frame.
        self._timers: set[asyncio.TimerHandle] = set()
        self.failures: list[tuple[str, tuple[Any, ...], str]] = []

    def bind(self, ctx: TaskContext) -> None:
        self.ctx = ctx

    async def enqueue(self, name: str, *args: Any, delay: float = 0) -> None:
        if name not in TASKS:
            raise KeyError(f"unknown task {name!r}")
        if delay > 0:
            if len(self._timers) >= self.max_delayed:
                self._refuse(name)
                return
            loop = asyncio.get_running_loop()

            def due() -> None:
                self._timers.discard(handle)
                self._start(name, args)

            handle = loop.call_later(delay, due)
            self._timers.add(handle)
            return
        self._start(name, args)

    def _refuse(self, name: str) -> None:
        self.refused += 1
        if self.refused == 1 or self.refused % 1000 == 0:
            log.warning("task queue full: left for the sweeper", extra={"task": name, "refused": self.refused})

    def _start(self, name: str, args: tuple[Any, ...]) -> None:
        if len(self._pending) >= self.max_pending:
            self._refuse(name)
            return
        task = asyncio.get_running_loop().create_task(self._run(name, args), name=f"task:{name}")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _run(self, name: str, args: tuple[Any, ...]) -> None:
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
        """Wait for running tasks (not delayed ones not yet due) up to ``timeout``, then cancel the rest."""
        for handle in self._timers:
            handle.cancel()  # not due yet: the sweeper re-enqueues them after a restart
        self._timers.clear()
        running = set(self._pending)
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
        while self._pending:
            if loop.time() > deadline:
                raise TimeoutError(f"tasks still running: {[t.get_name() for t in self._pending]}")
            await asyncio.sleep(0.01)

    @property
    def delayed(self) -> int:
        """Delayed tasks waiting to be due."""
        return len(self._timers)


def celery_app(settings: Settings) -> Celery:
    """A Celery app configured for the gateway's broker and queues (tasks are registered by the worker)."""
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
        # A task not acked by then is delivered again. Longer than every countdown we send (backoff
        # cap 600 s, a draft's window), so a held delayed task is not duplicated; a killed worker's
        # work does not wait for it: its lease is reaped and the work re-enqueued in seconds
        # (gateway/core/leases.py).
        broker_transport_options={"visibility_timeout": settings.task_visibility_timeout_s},
        task_routes={f"gateway.{name}": {"queue": queue} for name, queue in QUEUES.items()},
    )
    return app


class RedisClaims:
    """Claims shared by every worker over Redis (``SET NX`` with a TTL): concurrent classification
    batches in different worker processes take different reports. A claim outlives a killed worker
    by ``ttl_s`` at most (a batch takes well under a second); each claimed report's own task looks
    again every couple of seconds until the report has left ``received``."""

    shared = True

    def __init__(self, url: str, database: str, ttl_s: int = 5) -> None:
        self.redis = AsyncRedis.from_url(url)
        # Ids are per database: gateways with different databases may share a Redis.
        self.prefix = f"gateway:claim:{hashlib.sha256(database.encode()).hexdigest()[:12]}:"
        self.ttl_s = ttl_s
        self.token = uuid.uuid4().hex

    async def take(self, ids: Sequence[int], limit: int) -> list[int]:
        taken: list[int] = []
        for start in range(0, len(ids), limit):
            if len(taken) >= limit:
                break
            chunk = list(dict.fromkeys(ids[start : start + limit]))
            async with self.redis.pipeline(transaction=False) as pipe:
                for i in chunk:
                    pipe.set(f"{self.prefix}{i}", self.token, nx=True, ex=self.ttl_s)
                won = await pipe.execute()
            taken += [i for i, ok in zip(chunk, won, strict=True) if ok]
        await self.release(taken[limit:])
        return taken[:limit]

    async def release(self, ids: Sequence[int]) -> None:
        if ids:
            await self.redis.delete(*(f"{self.prefix}{i}" for i in ids))

    async def aclose(self) -> None:
        await self.redis.aclose()


class CeleryRunner:
    """Sends tasks to Celery workers over Redis. Enqueue happens after the caller's commit."""

    def __init__(self, celery_app: Any) -> None:
        self.celery = celery_app
        self._redis: Redis | None = None

    async def epoch(self) -> str | None:
        """The broker's identity (Redis ``run_id``): a new one means it restarted, and what was
        queued may be gone."""
        return await asyncio.to_thread(self._run_id)

    def _run_id(self) -> str | None:
        if self._redis is None:
            self._redis = Redis.from_url(self.celery.conf.broker_url, socket_timeout=2, socket_connect_timeout=2)
        return str(self._redis.info("server").get("run_id") or "") or None

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
