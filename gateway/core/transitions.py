"""The lifecycle in action: move a report, write its history, queue the resident's news.

Every status change goes through ``Lifecycle.transition`` inside the caller's transaction.
Listeners (``TransitionListener``, such as the dispatch outbox that writes a delivery with every
move to ``ready``) are passed in by the composition root and run in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core import replies
from gateway.core.lifecycle import Status, check
from gateway.core.units import ReportNotFound, Units, after_commit
from gateway.db import History, Notification, Report

if TYPE_CHECKING:
    from gateway.metrics import Metrics

# Moves a resident hears about on their channel; the first answer (case number) is the intake reply.
NOTIFY_ON = frozenset({Status.ACCEPTED, Status.IN_PROGRESS, Status.RESOLVED, Status.REJECTED, Status.MERGED})


class TransitionListener(Protocol):
    """Called inside the transaction of every status change."""

    async def on_transition(self, s: AsyncSession, report: Report, current: str, target: str) -> None: ...


class Lifecycle:
    def __init__(
        self,
        units: Units,
        *,
        listeners: Sequence[TransitionListener] = (),
        outbound_channels: frozenset[str] = frozenset(),
        metrics: Metrics | None = None,
    ) -> None:
        self.units = units
        self.listeners: tuple[TransitionListener, ...] = tuple(listeners)
        self.outbound_channels = outbound_channels  # channels that can tell residents the news
        self.metrics = metrics

    async def transition(
        self,
        s: AsyncSession,
        report: Report,
        target: str,
        actor: str,
        *,
        note: str | None = None,
        data: dict[str, Any] | None = None,
        action: str = "status",
    ) -> None:
        """Move a report (inside the caller's transaction); refuses what the lifecycle forbids."""
        current = report.status
        check(report.case_number, current, target)
        now = self.units.clock()
        report.status = str(target)
        report.updated_at = now
        s.add(
            History(
                report_id=report.id,
                at=now,
                actor=actor,
                action=action,
                from_status=current,
                to_status=str(target),
                note=note,
                data=data,
            )
        )
        await self._status_news(s, report, str(target), note)
        for listener in self.listeners:
            await listener.on_transition(s, report, current, str(target))
        if self.metrics:
            self.metrics.report_transitions.labels(channel=report.channel, status=str(target)).inc()

    async def _status_news(self, s: AsyncSession, report: Report, target: str, note: str | None) -> None:
        """Queue news for the resident on their own channel (the web status page shows every move)."""
        if target not in NOTIFY_ON or report.channel not in self.outbound_channels:
            return
        extra = report.duplicate_of if target == Status.MERGED else note
        text = replies.status_news(target, report.case_number, extra)
        if text:
            notification = Notification(
                report_id=report.id,
                channel=report.channel,
                account=report.account,
                recipient=report.sender,
                kind="status",
                text=text,
                state="pending",
            )
            s.add(notification)
            await s.flush()
            after_commit(s, "notify", notification.id)

    async def change_status(self, case_number: str, target: str, actor: str, *, note: str | None = None) -> Report:
        async with self.units.unit() as s:
            report = await s.scalar(select(Report).where(Report.case_number == case_number).with_for_update())
            if report is None:
                raise ReportNotFound(case_number)
            await self.transition(s, report, target, actor, note=note)
            return report
