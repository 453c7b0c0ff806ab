"""The lifecycle in action: move a report, write its history, queue the resident's news.

Every status change goes through the lifecycle inside the caller's transaction, one of two ways:

- ``Lifecycle.transition``: one ORM ``Report`` in an ``AsyncSession`` (the console, callbacks,
  the outbox);
- ``Lifecycle.write_moves``: many ``Move``s as set-based statements on a synchronous
  ``Connection`` inside ``Database.run_sync`` (triage, which moves a whole batch at once). It
  returns the tasks to enqueue once the transaction has committed.

Both write the same history and news rows (``_history``, ``_news``). Listeners
(``TransitionListener``, such as the dispatch outbox that writes a delivery with every move to
``ready``) are passed in by the composition root and run in the same transaction, either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core import replies
from gateway.core.lifecycle import Status, check
from gateway.core.units import ReportNotFound, Units, after_commit
from gateway.db import History, Notification, Report

if TYPE_CHECKING:
    from gateway.metrics import Metrics

# Moves a resident hears about on their channel; the first answer (case number) is the intake reply.
NOTIFY_ON = frozenset({Status.ACCEPTED, Status.IN_PROGRESS, Status.RESOLVED, Status.REJECTED, Status.MERGED})


_HISTORY = cast(Table, History.__table__)
_NOTIFICATIONS = cast(Table, Notification.__table__)

# A task to enqueue once a transaction has committed: (task name, its arguments, delay in seconds).
Followup = tuple[str, tuple[Any, ...], float]


@dataclass(frozen=True, slots=True)
class Move:
    """One status change of the batch path, with what the history, the resident's news and the
    listeners need to know of its report (the values it has after the move)."""

    report_id: int
    case_number: str
    channel: str
    account: str | None
    sender: str
    current: str
    target: str
    actor: str
    note: str | None = None
    data: dict[str, Any] | None = None
    action: str = "status"
    category_code: str | None = None
    location_address: str | None = None
    grid_path: list[dict[str, Any]] | None = None
    priority: str = "P3"
    urgent: bool = False
    duplicate_of: str | None = None

    @classmethod
    def of(
        cls,
        report: Report,
        target: str,
        actor: str,
        *,
        note: str | None = None,
        data: dict[str, Any] | None = None,
        action: str = "status",
    ) -> Move:
        """The move of an ORM ``report`` from its status to ``target`` (its columns as they are)."""
        return cls(
            report_id=report.id,
            case_number=report.case_number,
            channel=report.channel,
            account=report.account,
            sender=report.sender,
            current=report.status,
            target=str(target),
            actor=actor,
            note=note,
            data=data,
            action=action,
            category_code=report.category_code,
            location_address=report.location_address,
            grid_path=report.grid_path,
            priority=report.priority,
            urgent=report.urgent,
            duplicate_of=report.duplicate_of,
        )


class TransitionListener(Protocol):
    """Called inside the transaction of every status change."""

    async def on_transition(self, s: AsyncSession, report: Report, current: str, target: str) -> None: ...

    def on_moves(self, conn: Connection, moves: Sequence[Move], now: datetime) -> list[Followup]:
        """The batch path's hook: the same work for many moves on a synchronous connection; the
        tasks to enqueue after commit."""
        ...


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
        s.add(History(**_history(report.id, current, str(target), actor, now, note, data, action)))
        news = self._news(
            report.id,
            report.channel,
            report.account,
            report.sender,
            report.case_number,
            str(target),
            report.duplicate_of if target == Status.MERGED else note,
            now,
        )
        if news is not None:
            notification = Notification(**news)
            s.add(notification)
            await s.flush()
            after_commit(s, "notify", notification.id)
        for listener in self.listeners:
            await listener.on_transition(s, report, current, str(target))
        self._count(report.channel, str(target))

    def write_moves(self, conn: Connection, moves: Sequence[Move], now: datetime) -> list[Followup]:
        """Many moves in the caller's transaction (``Database.run_sync``), set-based: the history
        rows in one statement, the resident's news in one, then each listener's ``on_moves``.
        Refuses (raises) what the lifecycle forbids, before writing anything. The reports' own
        columns (status, updated_at) are the caller's to update. Returns the tasks to enqueue once
        the transaction has committed."""
        if not moves:
            return []
        for m in moves:
            check(m.case_number, m.current, m.target)
        conn.execute(
            insert(_HISTORY),
            [_history(m.report_id, m.current, m.target, m.actor, now, m.note, m.data, m.action) for m in moves],
        )
        news = [
            n
            for m in moves
            if (
                n := self._news(
                    m.report_id,
                    m.channel,
                    m.account,
                    m.sender,
                    m.case_number,
                    m.target,
                    m.duplicate_of if m.target == Status.MERGED else m.note,
                    now,
                )
            )
            is not None
        ]
        followups: list[Followup] = []
        if news:
            ids = conn.execute(
                insert(_NOTIFICATIONS).returning(_NOTIFICATIONS.c.id, sort_by_parameter_order=True), news
            )
            followups += [("notify", (pk,), 0.0) for (pk,) in ids]
        for listener in self.listeners:
            followups += listener.on_moves(conn, moves, now)
        return followups

    def count_moves(self, moves: Sequence[Move]) -> None:
        """Count committed moves of the batch path on ``/metrics`` (``transition`` counts its own)."""
        for m in moves:
            self._count(m.channel, m.target)

    def _count(self, channel: str, target: str) -> None:
        if self.metrics:
            self.metrics.report_transitions.labels(channel=channel, status=target).inc()

    def _news(
        self,
        report_id: int,
        channel: str,
        account: str | None,
        recipient: str,
        case_number: str,
        target: str,
        extra: str | None,
        now: datetime,
    ) -> dict[str, Any] | None:
        """The resident's news of a move, on their own channel, as a notification row (None: no
        news, or a channel that cannot send; the web status page shows every move)."""
        if target not in NOTIFY_ON or channel not in self.outbound_channels:
            return None
        text = replies.status_news(target, case_number, extra)
        if not text:
            return None
        return {
            "report_id": report_id,
            "channel": channel,
            "account": account,
            "recipient": recipient,
            "kind": "status",
            "text": text,
            "state": "pending",
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }

    async def change_status(self, case_number: str, target: str, actor: str, *, note: str | None = None) -> Report:
        async with self.units.unit() as s:
            report = await s.scalar(select(Report).where(Report.case_number == case_number).with_for_update())
            if report is None:
                raise ReportNotFound(case_number)
            await self.transition(s, report, target, actor, note=note)
            return report


def _history(
    report_id: int,
    current: str,
    target: str,
    actor: str,
    at: datetime,
    note: str | None,
    data: dict[str, Any] | None,
    action: str,
) -> dict[str, Any]:
    return {
        "report_id": report_id,
        "at": at,
        "actor": actor,
        "action": action,
        "from_status": current,
        "to_status": target,
        "note": note,
        "data": data,
    }
