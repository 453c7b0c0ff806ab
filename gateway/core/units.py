"""Units of work: a transaction whose follow-up tasks are enqueued once it has committed.

``TaskRunner`` is the seam to background work (``gateway/tasks/runners.py`` implements it); the
core only enqueues by name and never imports a task.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import Database, utcnow

log = logging.getLogger(__name__)

SYSTEM = "system"


class ReportNotFound(LookupError):
    """No report with that case number or id."""


class TaskRunner(Protocol):
    async def enqueue(self, name: str, *args: Any, delay: float = 0) -> None: ...

    async def drain(self, timeout: float) -> None: ...


class Claims(Protocol):
    """Short-lived claims on ids, so that concurrent batches take different work."""

    # Held across processes (a claimer may die with its claims held until they expire)
    shared: bool

    async def take(self, ids: Sequence[int], limit: int) -> list[int]:
        """Claim up to ``limit`` of ``ids`` (in their order) that nobody holds; the ones claimed."""
        ...

    async def release(self, ids: Sequence[int]) -> None: ...


class LocalClaims:
    """Claims within one process (the in-process runner's tasks share its event loop)."""

    shared = False  # the claimer dies with the process that holds the claims

    def __init__(self) -> None:
        self._held: set[int] = set()

    async def take(self, ids: Sequence[int], limit: int) -> list[int]:
        taken = [i for i in dict.fromkeys(ids) if i not in self._held][:limit]
        self._held.update(taken)
        return taken

    async def release(self, ids: Sequence[int]) -> None:
        self._held.difference_update(ids)


class Units:
    """The database, the task runner and the clock that every stage of the core shares."""

    def __init__(self, db: Database, runner: TaskRunner, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.runner = runner
        self.clock = clock
        self.missed = False  # an enqueue after commit failed (``enqueue``)

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[AsyncSession]:
        """A transaction whose ``after_commit`` tasks are enqueued once it has committed."""
        async with self.db.session() as s:
            async with s.begin():
                yield s
            for name, args, delay in s.info.pop("enqueue", []):
                await self.enqueue(name, *args, delay=delay)

    async def enqueue(self, name: str, *args: Any, delay: float = 0) -> None:
        """Enqueue after a commit. What is committed is answered for even when the task broker is
        down: the failure is logged and counted in ``missed``, and the heartbeat re-enqueues the
        unfinished work once the broker answers (``gateway/core/leases.py``)."""
        try:
            await self.runner.enqueue(name, *args, delay=delay)
        except KeyError:
            raise  # an unknown task: a programming error
        except Exception as exc:
            self.missed = True
            log.warning(
                "task not enqueued; resumed from the database later", extra={"task": name, "error": type(exc).__name__}
            )


def after_commit(s: AsyncSession, task: str, *args: Any, delay: float = 0) -> None:
    """Enqueue ``task`` once the transaction of ``s`` (opened by ``Units.unit``) commits."""
    s.info.setdefault("enqueue", []).append((task, args, delay))
