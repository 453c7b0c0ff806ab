"""Process leases: which processes are alive, so that the work of a dead one resumes at once.

Every ``gateway serve`` process and every worker process holds a row in ``process_leases`` under
its boot id (``boot_id()``: new in every OS process, forked children included) and renews it every
``GATEWAY_HEARTBEAT_INTERVAL_S``. A task that works on a row for a while (a dispatch delivery, a
notification) writes its boot id in the row's ``claimed_by``; a second copy of the task leaves a
row alone while its claimer's lease has not ended (``held``).

A lease ends cleanly when its process stops, or is *reaped* by any other live process when its
heartbeat is older than ``GATEWAY_LEASE_TTL_S``, or at once when it belonged to a process of this
host whose pid is gone (a ``kill -9`` and restart). The reaper releases the dead process's claims
and re-enqueues every unfinished piece of work without waiting for ``GATEWAY_STUCK_AFTER_S``
(``Sweeping.recover``); tasks are idempotent and claim their rows, so work a live process still
holds is never done twice. ``KeepAlive`` runs the heartbeat, the reaping and the recovery.

A process reaps only after its own heartbeat has succeeded for a whole TTL: after a database
outage everyone's heartbeats are old, and nobody may take that for a death.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import ProcessLease

if TYPE_CHECKING:
    from gateway.core.sweeping import Sweeping
    from gateway.core.units import Units
    from gateway.settings import Settings

log = logging.getLogger(__name__)
HOST = socket.gethostname()[:255]
_boot_ids: dict[int, str] = {}


def boot_id() -> str:
    """This OS process's id for leases and claims (a forked child gets its own)."""
    return _boot_ids.setdefault(os.getpid(), uuid.uuid4().hex)


def _pid_gone(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another boot of this very pid (a restarted container): that process is gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


async def held(s: AsyncSession, owner: str | None) -> bool:
    """Whether a row claimed by ``owner`` is being worked on: by another task of this process, or
    by a process whose lease has not ended (a dead one's claims are released when it is reaped)."""
    if owner is None:
        return False
    if owner == boot_id():
        return True
    ended = await s.scalar(select(ProcessLease.ended_at.is_(None)).where(ProcessLease.boot_id == owner))
    return bool(ended)


class Leases:
    """This process's lease, and the reaping of the leases of dead processes."""

    def __init__(self, units: Units, settings: Settings, role: str) -> None:
        self.units = units
        self.ttl = timedelta(seconds=settings.lease_ttl_s)
        self.role = role
        self.boot_id = boot_id()
        self.pid = os.getpid()
        self.alive_since: datetime | None = None  # start of the current run of successful heartbeats

    async def register(self) -> list[str]:
        """Take the lease; reap at once what this host's dead processes left (their pid is gone)."""
        now = self.units.clock()
        async with self.units.unit() as s:
            row = await s.get(ProcessLease, self.boot_id)
            if row is None:
                s.add(
                    ProcessLease(
                        boot_id=self.boot_id,
                        role=self.role,
                        host=HOST,
                        pid=self.pid,
                        started_at=now,
                        heartbeat_at=now,
                    )
                )
            else:
                row.heartbeat_at, row.ended_at, row.ended = now, None, None
        self.alive_since = now
        log.info("process lease taken", extra={"boot_id": self.boot_id, "role": self.role})
        return await self.reap()

    async def beat(self) -> list[str]:
        """Renew the lease, then reap; the boot ids this call reaped."""
        now = self.units.clock()
        async with self.units.unit() as s:
            renewed = await s.execute(
                update(ProcessLease)
                .where(ProcessLease.boot_id == self.boot_id, ProcessLease.ended_at.is_(None))
                .values(heartbeat_at=now)
            )
        if not getattr(renewed, "rowcount", 0):
            # Reaped while alive (heartbeats failed for a whole TTL): take the lease again.
            log.warning("process lease had been ended; taking it again", extra={"boot_id": self.boot_id})
            return await self.register()
        if self.alive_since is None:
            self.alive_since = now
        return await self.reap()

    def missed_beat(self) -> None:
        self.alive_since = None

    async def reap(self) -> list[str]:
        now = self.units.clock()
        steady = self.alive_since is not None and now - self.alive_since >= self.ttl
        async with self.units.db.session() as s:
            rows = (
                await s.execute(
                    select(ProcessLease.boot_id, ProcessLease.host, ProcessLease.pid, ProcessLease.heartbeat_at).where(
                        ProcessLease.ended_at.is_(None), ProcessLease.boot_id != self.boot_id
                    )
                )
            ).all()
        dead = [
            bid
            for bid, host, pid, beat in rows
            if (host == HOST and _pid_gone(pid)) or (steady and beat < now - self.ttl)
        ]
        return [bid for bid in dead if await self._end(bid, "reaped")]

    async def _end(self, bid: str, how: str) -> bool:
        now = self.units.clock()
        async with self.units.unit() as s:
            ended = await s.execute(
                update(ProcessLease)
                .where(ProcessLease.boot_id == bid, ProcessLease.ended_at.is_(None))
                .values(ended_at=now, ended=how)
            )
        return bool(getattr(ended, "rowcount", 0))  # another process may have reaped it first

    async def stop(self) -> None:
        """A clean exit: the lease ends (this process released its claims itself)."""
        await self._end(self.boot_id, "stopped")


class KeepAlive:
    """The heartbeat loop: renew, reap, and resume what the dead left.

    ``recover_at_start``: the serving process re-enqueues every unfinished piece of work when it
    starts (its own tasks died with its previous incarnation). ``epoch``: the broker's identity
    (Redis ``run_id``); a new one means queued tasks may be gone, so the work is re-enqueued."""

    def __init__(
        self,
        leases: Leases,
        sweeping: Sweeping,
        interval: float,
        *,
        recover_at_start: bool = False,
        epoch: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        self.leases = leases
        self.sweeping = sweeping
        self.interval = interval
        self.recover_at_start = recover_at_start
        self.epoch = epoch
        self._epoch: str | None = None
        self._pending: set[str] = set()  # reaped, recovery not yet done (it failed)
        self.started = asyncio.Event()  # set once the start-up recovery has run

    async def start(self) -> None:
        """Take the lease and resume what is due at start-up (a serving process awaits this before
        it serves, so the work it resumes is what was there before it)."""
        await self._tick(start=True)
        self.started.set()

    async def run(self, stop: asyncio.Event) -> None:
        if not self.started.is_set():
            await self.start()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            if not stop.is_set():
                await self._tick(start=False)
        with contextlib.suppress(Exception):
            await self.leases.stop()

    async def _tick(self, *, start: bool) -> None:
        try:
            dead = await (self.leases.register() if start else self.leases.beat())
        except Exception as exc:  # the type only: a database error's message may quote values
            self.leases.missed_beat()
            log.warning("heartbeat failed", extra={"error": type(exc).__name__})
            return
        self._pending.update(dead)
        broker, missed = await self._broker_changed(), self._missed_enqueue()
        why = self._why(start, dead) or broker or missed
        if why or self._pending:
            await self._recover(why or "a recovery that failed", sorted(self._pending))

    def _why(self, start: bool, dead: Sequence[str]) -> str | None:
        if start and self.recover_at_start:
            return "start-up"
        return "a process died" if dead else None

    async def _broker_changed(self) -> str | None:
        if self.epoch is None:
            return None
        try:
            epoch = await self.epoch()
        except Exception:
            return None  # down: enqueues fail and are counted (``Units.missed``), see below
        changed = self._epoch is not None and epoch is not None and epoch != self._epoch
        self._epoch = epoch or self._epoch
        return "the task broker restarted" if changed else None

    def _missed_enqueue(self) -> str | None:
        if not self.sweeping.units.missed:
            return None
        self.sweeping.units.missed = False
        return "tasks could not be enqueued"

    async def _recover(self, why: str, dead: list[str]) -> None:
        try:
            count = await self.sweeping.recover(dead)
        except Exception as exc:
            log.warning(
                "recovery failed; retried on the next heartbeat", extra={"why": why, "error": type(exc).__name__}
            )
            self.sweeping.units.missed = True
            return
        self._pending.difference_update(dead)
        log.info("work resumed", extra={"why": why, "dead": len(dead), "count": count})
