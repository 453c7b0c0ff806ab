"""Sweeping: re-enqueue what a crash or restart left behind.

Every serving process runs ``Sweeping.sweep`` on an interval: work untouched for
``GATEWAY_STUCK_AFTER_S`` is enqueued again (a lost enqueue, a lost queue). ``Sweeping.recover``
does the same at once, for everything unfinished, when a process starts or another one is found
dead (``gateway/core/leases.py``), after releasing what the dead claimed. Extra sweepers
(``Sweeper``, such as the dispatch outbox's due deliveries) are passed in by the composition root.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select, update

from gateway.core.lifecycle import Status
from gateway.core.units import Units
from gateway.db import Delivery, Media, Notification, Report

if TYPE_CHECKING:
    from gateway.settings import Settings

CLASSIFY_CHUNK = 64  # report ids per classification task the sweep enqueues (one batch each)


class Sweeper(Protocol):
    async def sweep(self) -> int:
        """Enqueue what is due; the number of tasks enqueued."""
        ...


class Sweeping:
    def __init__(self, units: Units, settings: Settings, *, sweepers: Sequence[Sweeper] = ()) -> None:
        self.units = units
        self.settings = settings
        self.sweepers: tuple[Sweeper, ...] = tuple(sweepers)

    async def recover(self, dead: Sequence[str] = ()) -> int:
        """Release the claims of the ``dead`` processes' boot ids, then re-enqueue every unfinished
        piece of work now (not after ``stuck_after_s``), and the closing of every open draft at its
        expiry. Tasks are idempotent and claim their rows: what a live process holds is left alone."""
        now = self.units.clock()
        if dead:
            async with self.units.unit() as s:
                await s.execute(
                    update(Delivery)
                    .where(Delivery.claimed_by.in_(dead), Delivery.state == "pending")
                    .values(claimed_by=None, next_attempt_at=now)
                )
                await s.execute(update(Notification).where(Notification.claimed_by.in_(dead)).values(claimed_by=None))
        async with self.units.db.session() as s:
            drafts = (
                await s.execute(
                    select(Report.id, Report.session_expires_at).where(
                        Report.session_open.is_(True), Report.session_expires_at > now
                    )
                )
            ).all()
        for rid, expires in drafts:
            if expires is not None:
                await self.units.runner.enqueue("close_session", rid, delay=(expires - now).total_seconds() + 1)
        return len(drafts) + await self.sweep(stuck_after_s=0)

    async def sweep(self, *, stuck_after_s: float | None = None) -> int:
        """Re-enqueue what a crash or restart may have dropped: expired drafts, unclassified reports,
        unsent notifications, media not yet downloaded, untouched for ``stuck_after_s`` (default
        the setting). Tasks are idempotent, so a second copy of a live task is harmless."""
        now = self.units.clock()
        after = self.settings.stuck_after_s if stuck_after_s is None else stuck_after_s
        stuck_before = now - timedelta(seconds=after)
        async with self.units.db.session() as s:
            expired = (
                await s.scalars(
                    select(Report.id).where(Report.session_open.is_(True), Report.session_expires_at <= now)
                )
            ).all()
            stuck = (
                await s.scalars(
                    select(Report.id).where(
                        Report.status == Status.RECEIVED,
                        Report.session_open.is_(False),
                        Report.updated_at <= stuck_before,
                    )
                )
            ).all()
            unfetched = (
                await s.scalars(select(Media.id).where(Media.state == "pending", Media.created_at <= stuck_before))
            ).all()
            unsent = (
                await s.scalars(
                    select(Notification.id).where(
                        Notification.state == "pending", Notification.updated_at <= stuck_before
                    )
                )
            ).all()
        for rid in expired:
            await self.units.runner.enqueue("close_session", rid)
        for start in range(0, len(stuck), CLASSIFY_CHUNK):
            await self.units.runner.enqueue("classify_report", *stuck[start : start + CLASSIFY_CHUNK])
        for nid in unsent:
            await self.units.runner.enqueue("notify", nid)
        for mid in unfetched:
            await self.units.runner.enqueue("fetch_media", mid)
        extra = 0
        for sweeper in self.sweepers:
            extra += await sweeper.sweep()
        return len(expired) + len(stuck) + len(unsent) + len(unfetched) + extra
