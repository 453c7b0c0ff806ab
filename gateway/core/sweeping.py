"""Sweeping: re-enqueue what a crash or restart left behind.

Every serving process runs ``Sweeping.sweep`` on an interval. Extra sweepers (``Sweeper``, such
as the dispatch outbox's due deliveries) are passed in by the composition root.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select

from gateway.core.lifecycle import Status
from gateway.core.units import Units
from gateway.db import Media, Notification, Report

if TYPE_CHECKING:
    from gateway.settings import Settings


class Sweeper(Protocol):
    async def sweep(self) -> int:
        """Enqueue what is due; the number of tasks enqueued."""
        ...


class Sweeping:
    def __init__(self, units: Units, settings: Settings, *, sweepers: Sequence[Sweeper] = ()) -> None:
        self.units = units
        self.settings = settings
        self.sweepers: tuple[Sweeper, ...] = tuple(sweepers)

    async def sweep(self) -> int:
        """Re-enqueue what a crash or restart may have dropped: expired drafts, unclassified reports,
        unsent notifications, media not yet downloaded. Tasks are idempotent, so a second copy of a
        live task is harmless."""
        now = self.units.clock()
        stuck_before = now - timedelta(seconds=self.settings.stuck_after_s)
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
        for rid in stuck:
            await self.units.runner.enqueue("classify_report", rid)
        for nid in unsent:
            await self.units.runner.enqueue("notify", nid)
        for mid in unfetched:
            await self.units.runner.enqueue("fetch_media", mid)
        extra = 0
        for sweeper in self.sweepers:
            extra += await sweeper.sweep()
        return len(expired) + len(stuck) + len(unsent) + len(unfetched) + extra
