"""The dispatch outbox: every ready report reaches dispatch, exactly once per delivery id.

- When a report moves to ``ready`` (classified with confidence, urgent, or approved by a
  moderator), a transition hook writes a ``Delivery`` row in the same transaction and enqueues
  ``deliver_dispatch`` after commit. Urgent (P1) cases go to their own task/queue
  (``deliver_dispatch_urgent`` on ``dispatch_urgent``) and the sweeper re-enqueues them first.
- The deliver task claims the row (a lease: ``next_attempt_at`` moves past the send timeout, so a
  second copy of the task does nothing), sends it through ``adapters.dispatch`` and records the
  attempt. Retryable failures are rescheduled with exponential backoff and full jitter (capped
  at ``GATEWAY_DISPATCH_BACKOFF_CAP_S``) for ``GATEWAY_DISPATCH_RETRY_FOR_S`` from the first
  failure (a day by default: a dispatch system down overnight needs no one in the morning), then
  the row is dead-lettered; 4xx rejections stop at once. Both show in ``gateway deliveries
  --dead`` and come back with ``gateway replay``. While a target fails, a warning is logged (once
  per ``GATEWAY_DISPATCH_ALERT_INTERVAL_S`` per target and process) and ``/metrics`` shows it
  (``failing_targets``).
- Nothing lives only in a queue: a worker killed mid-send, a Redis restart or a runner that lost
  its delayed tasks leave a pending row whose ``next_attempt_at`` passes, and the sweeper
  (``Pipeline.sweep``) enqueues it again; a claim names its process (``claimed_by``), so a dead
  process's lease is released as soon as it is reaped (``gateway/core/leases.py``). The receiver
  dedupes on ``X-Gateway-Delivery``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, selectinload

from adapters import dispatch
from adapters.routing import DEFAULT_TARGET, RoutingTable, Target, load_routing
from gateway.core import replies
from gateway.core.groupcommit import GroupCommit
from gateway.core.leases import boot_id
from gateway.core.lifecycle import Status
from gateway.core.schema import report_json
from gateway.core.transitions import Followup, Move
from gateway.core.units import SYSTEM, Units, after_commit
from gateway.db import Database, Delivery, DeliveryAttempt, Report
from gateway.tasks.runners import TaskContext, backoff
from nlp.pii import mask_pii

if TYPE_CHECKING:
    from aiohttp import ClientSession

    from gateway.core.pipeline import Pipeline
    from gateway.settings import Settings

log = logging.getLogger(__name__)

_DELIVERIES = cast(Table, Delivery.__table__)

TASK = "deliver_dispatch"
URGENT_TASK = "deliver_dispatch_urgent"
LEASE_MARGIN_S = 60.0
UNCONFIGURED_RECHECK_S = 300.0
SWEEP_BATCH = 1000
CLAIM_BATCH = 32  # deliveries claimed in one transaction, then sent concurrently
PARKED = "no dispatch target"  # last_error of a delivery waiting for dispatch to be configured
DEAD_STATES = ("dead", "rejected")
# Default handling deadlines per priority: the taxonomy's `priorities` section (Beijing 接诉即办
# tiers). Subcategory deadlines in the taxonomy are free text and not machine-readable yet.
DEADLINES: dict[str, timedelta] = {
    "P1": timedelta(hours=2),
    "P2": timedelta(hours=24),
    "P3": timedelta(days=7),
    "P4": timedelta(days=15),
}


class ReplayRefused(ValueError):
    """The delivery is not dead-lettered (pending or delivered), or does not exist."""


def deadline_for(priority: str | None) -> timedelta:
    return DEADLINES.get(priority or "P3", DEADLINES["P3"])


def task_for(priority: str | None, urgent: bool) -> str:
    return URGENT_TASK if urgent or priority == "P1" else TASK


@lru_cache(maxsize=8)
def _routing_cached(path: str | None, mtime: int, url: str | None, secret: str | None) -> RoutingTable:
    return load_routing(Path(path) if path else None, url, secret)


def routing_for(settings: Settings) -> RoutingTable:
    """The routing table of these settings (re-read when the file changes)."""
    path = settings.routing_table
    mtime = path.stat().st_mtime_ns if path is not None and path.exists() else 0
    secret = settings.dispatch_secret.get_secret_value() if settings.dispatch_secret else None
    url = str(settings.dispatch_url) if settings.dispatch_url else None
    return _routing_cached(str(path) if path else None, mtime, url, secret)


@dataclass(frozen=True, slots=True)
class _Job:
    """A leased delivery: where it goes and the report it carries (read in the claim, detached:
    its webhook body is built when it is sent, off the database connection)."""

    pk: int
    delivery_id: str
    target: Target
    target_name: str
    department: str | None
    report: Report


@dataclass(frozen=True, slots=True)
class _Claimed:
    """A ``deliver`` call's share of a claim batch: its own job, and the due ones taken along."""

    job: _Job | None
    along: tuple[_Job, ...] = ()


class DeliveryWriter:
    """Writes the outbox: a ``TransitionListener`` (a delivery row with every move to ``ready``)
    and a ``Sweeper`` (due deliveries enqueued again). Passed to the pipeline by the composition root."""

    def __init__(self, units: Units, settings: Settings) -> None:
        self.units = units
        self.routing = routing_for(settings)

    # ------------------------------------------------------------------ writing the outbox

    async def on_transition(self, s: AsyncSession, report: Report, current: str, target: str) -> None:
        """Transition hook: a report that becomes ready gets a delivery row in the same transaction."""
        if target != Status.READY:
            return
        pending = await s.scalar(
            select(Delivery.id).where(Delivery.report_id == report.id, Delivery.state == "pending").limit(1)
        )
        if pending is not None:
            return
        row = Delivery(
            **self._row(
                report.id,
                report.category_code,
                report.location_address,
                report.grid_path,
                report.priority,
                report.urgent,
                self.units.clock(),
            )
        )
        s.add(row)
        await s.flush()
        after_commit(s, task_for(row.priority, row.urgent), row.id)

    def on_moves(self, conn: Connection, moves: Sequence[Move], now: datetime) -> list[Followup]:
        """The same for a batch of moves (``Lifecycle.write_moves``): one select, one insert."""
        ready = {m.report_id: m for m in moves if m.target == Status.READY}
        if not ready:
            return []
        pending = set(
            conn.scalars(
                select(_DELIVERIES.c.report_id).where(
                    _DELIVERIES.c.report_id.in_(list(ready)), _DELIVERIES.c.state == "pending"
                )
            )
        )
        rows = [
            self._row(m.report_id, m.category_code, m.location_address, m.grid_path, m.priority, m.urgent, now)
            for m in ready.values()
            if m.report_id not in pending
        ]
        if not rows:
            return []
        ids = conn.execute(insert(_DELIVERIES).returning(_DELIVERIES.c.id, sort_by_parameter_order=True), rows)
        # One task per queue for the batch's deliveries (urgent ones on their own): sent as one batch.
        tasks: dict[str, list[int]] = {}
        for row, (pk,) in zip(rows, ids, strict=True):
            tasks.setdefault(task_for(row["priority"], row["urgent"]), []).append(pk)
        return [(name, tuple(pks), 0.0) for name, pks in tasks.items()]

    def _row(
        self,
        report_id: int,
        category_code: str | None,
        address: str | None,
        grid_path: list[dict[str, Any]] | None,
        priority: str,
        urgent: bool,
        now: datetime,
    ) -> dict[str, Any]:
        """A new pending delivery of a report, routed by its category, address and grid path."""
        dest = self.routing.route(category_code, address, grid_path)
        return {
            "delivery_id": str(uuid.uuid4()),
            "report_id": report_id,
            "target": dest.name if dest else DEFAULT_TARGET,
            "department": dest.department if dest else None,
            "priority": priority,
            "urgent": urgent,
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }

    async def sweep(self) -> int:
        """Enqueue every due pending delivery, urgent and higher priority first."""
        now = self.units.clock()
        async with self.units.db.session() as s:
            due = (
                await s.execute(
                    select(Delivery.id, Delivery.priority, Delivery.urgent)
                    .where(Delivery.state == "pending", Delivery.next_attempt_at <= now)
                    .order_by(Delivery.urgent.desc(), Delivery.priority, Delivery.next_attempt_at, Delivery.id)
                    .limit(SWEEP_BATCH)
                )
            ).all()
        for pk, priority, urgent in due:
            await self.units.runner.enqueue(task_for(priority, urgent), pk)
        return len(due)


# Attempts made by this process whose outcome could not be written yet: (database, delivery) -> result.
_UNRECORDED: dict[tuple[str, int], dispatch.AttemptResult] = {}
_UNRECORDED_MAX = 10_000


class Outbox:
    """Drains the outbox: delivery attempts, replays of dead letters, listings.

    Attempts are batched like intake and triage. Concurrent ``deliver`` calls of a process are
    coalesced (``GroupCommit``): one transaction claims the batch, topped up with other due
    deliveries (``CLAIM_BATCH`` in all; on PostgreSQL ``SKIP LOCKED`` leaves other workers' rows
    alone), the batch's webhooks go out concurrently, and one transaction records their outcomes.
    A Celery worker, which runs one task at a time, so still sends a backlog many at a time. The
    delivery tasks of rows a batch took along find them leased or done and do nothing.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self.routing = routing_for(pipeline.settings)
        self._claiming: GroupCommit[int, _Claimed] = GroupCommit(self._claim_batch, max_batch=CLAIM_BATCH)
        self._recording: GroupCommit[tuple[int, dispatch.AttemptResult], str] = GroupCommit(
            self._record_batch, max_batch=4 * CLAIM_BATCH
        )

    async def release_parked(self) -> int:
        """At start-up, with a dispatch target configured: deliveries parked while there was none
        are due now (the sweep that follows sends them, urgent first), not minutes later."""
        if not self.routing.targets:
            return 0
        now = self.pipeline.clock()
        async with self.pipeline.unit() as s:
            parked = await s.execute(
                update(Delivery)
                .where(
                    Delivery.state == "pending", Delivery.next_attempt_at > now, Delivery.last_error.like(PARKED + "%")
                )
                .values(next_attempt_at=now, updated_at=now)
            )
        count = int(getattr(parked, "rowcount", 0) or 0)
        if count:
            log.info("parked deliveries released", extra={"count": count})
        return count

    # ------------------------------------------------------------------ draining it

    async def deliver(self, http: ClientSession, delivery_pk: int) -> str | None:
        """One attempt at a due delivery (and at the due ones its batch took along); returns its new
        state, None when there was nothing to do."""
        result = _UNRECORDED.pop((self.pipeline.db.url, delivery_pk), None)
        if result is not None:
            return await self._record(delivery_pk, result)
        claimed = await self._claiming.submit(delivery_pk)
        states = await asyncio.gather(
            *(self._attempt(http, job) for job in (claimed.job, *claimed.along) if job is not None)
        )
        return states[0] if claimed.job is not None else None

    async def _claim(self, delivery_pk: int) -> _Job | None:
        """Claim one delivery (a lease), without taking others along; its job, or None."""
        claimed = await self.pipeline.db.run_sync(partial(self._claim_sync, [delivery_pk], 0))
        return claimed[0].job

    async def _attempt(self, http: ClientSession, job: _Job) -> str:
        body = dispatch.encode(self._payload(job))
        result = await dispatch.send(
            http, job.target, job.delivery_id, body, timeout_s=self.settings.dispatch_timeout_s
        )
        return await self._record(job.pk, result)

    async def _record(self, delivery_pk: int, result: dispatch.AttemptResult) -> str:
        try:
            return await self._recording.submit((delivery_pk, result))
        except Exception:
            # Sent, but the database went away before the outcome was written: the row still holds
            # this process's lease, so the task's retry would find nothing due until it ran out.
            # The retry writes this outcome instead of sending again (a lease whose process died is
            # released by reaping, gateway/core/leases.py). A row a batch took along is retried by
            # its own task, or by the sweeper once its lease is released.
            while len(_UNRECORDED) >= _UNRECORDED_MAX:
                _UNRECORDED.pop(next(iter(_UNRECORDED)))
            _UNRECORDED[(self.pipeline.db.url, delivery_pk)] = result
            raise

    async def _claim_batch(self, pks: Sequence[int]) -> list[_Claimed | BaseException]:
        try:
            return list(await self.pipeline.db.run_sync(partial(self._claim_sync, pks, CLAIM_BATCH - len(pks))))
        except Exception as exc:  # every caller's task fails (and is retried)
            return [exc for _ in pks]

    def _claim_sync(self, pks: Sequence[int], room: int, conn: Connection) -> list[_Claimed]:
        """One transaction: lease the due ones of ``pks``, and up to ``room`` other due deliveries
        (urgent and higher priority first) that no other worker holds. Per pk: its job (None when
        done, dead, or leased by another worker), the first also carrying the ones taken along."""
        now = self.pipeline.clock()
        with Session(bind=conn) as s:
            # Rows are locked in id order in every batch: overlapping batches queue, never deadlock.
            mine = list(s.scalars(select(Delivery).where(Delivery.id.in_(pks)).order_by(Delivery.id).with_for_update()))
            along: list[Delivery] = []
            if room > 0:
                due = (
                    select(Delivery)
                    .where(Delivery.state == "pending", Delivery.next_attempt_at <= now, Delivery.id.not_in(pks))
                    .order_by(Delivery.urgent.desc(), Delivery.priority, Delivery.next_attempt_at, Delivery.id)
                    .limit(room)
                    .with_for_update(skip_locked=True)
                )
                along = list(s.scalars(due))
            report_ids = {d.report_id for d in (*mine, *along)}
            reports = {
                r.id: r
                for r in s.scalars(select(Report).where(Report.id.in_(report_ids)).options(selectinload(Report.media)))
            }
            jobs = {d.id: self._lease(d, reports.get(d.report_id), now) for d in (*mine, *along)}
            s.flush()
        claimed = [_Claimed(jobs.get(pk)) for pk in pks]
        extra = [job for d in along if (job := jobs[d.id]) is not None]
        if claimed:
            claimed[0] = _Claimed(claimed[0].job, tuple(extra))
        return claimed

    def _lease(self, d: Delivery, report: Report | None, now: datetime) -> _Job | None:
        """Lease ``d`` to this process (``next_attempt_at`` past the send timeout); None when it is
        not due, or its report moved on (cancelled) or has no target."""
        if d.state != "pending" or d.next_attempt_at > now:
            return None  # done, dead, or another worker holds the lease
        if report is None or report.status != Status.READY:
            d.state, d.last_error = "cancelled", f"report is {report.status if report else 'gone'}"
            d.updated_at = now
            return None
        dest = self.routing.target(d.target) or self.routing.route(
            report.category_code, report.location_address, report.grid_path
        )
        if dest is None:
            # Not a failure of dispatch: keep the row and look again later (and after a replay).
            d.next_attempt_at = now + timedelta(seconds=UNCONFIGURED_RECHECK_S)
            d.last_error = PARKED + ": set GATEWAY_DISPATCH_URL or GATEWAY_ROUTING_TABLE"
            log.warning("dispatch not configured", extra={"delivery": d.delivery_id, "target": d.target})
            return None
        d.attempts += 1
        d.next_attempt_at = now + timedelta(seconds=self.settings.dispatch_timeout_s + LEASE_MARGIN_S)
        d.claimed_by = boot_id()
        d.updated_at = now
        return _Job(d.id, d.delivery_id, dest, d.target, d.department, report)

    def _payload(self, job: _Job) -> dict[str, Any]:
        mask = None
        if self.settings.dispatch_mask_pii:
            mask = mask_pii
        report = job.report
        data = report_json(report, public_url=self.settings.public_url, private=True, history=False)
        due = report.created_at + deadline_for(report.priority)
        payload = dispatch.build_payload(data, deadline=due.isoformat(), department=job.department, mask=mask)
        payload["delivery_id"] = job.delivery_id
        payload["target"] = job.target_name
        return payload

    async def _record_batch(self, items: Sequence[tuple[int, dispatch.AttemptResult]]) -> list[str | BaseException]:
        try:
            states, moves, followups = await self.pipeline.db.run_sync(partial(self._record_sync, items))
        except Exception as exc:
            return [exc for _ in items]
        for name, args, delay in followups:
            await self.pipeline.units.enqueue(name, *args, delay=delay)
        self.pipeline.lifecycle.count_moves(moves)
        return list(states)

    def _record_sync(
        self, items: Sequence[tuple[int, dispatch.AttemptResult]], conn: Connection
    ) -> tuple[list[str], list[Move], list[Followup]]:
        """One transaction: each attempt's row, each delivery's new state; a delivered report moves
        to ``dispatched``. The tasks to enqueue after commit (retries) come back with it."""
        now = self.pipeline.clock()
        followups: list[Followup] = []
        with Session(bind=conn) as s:
            pks = [pk for pk, _ in items]
            query = select(Delivery).where(Delivery.id.in_(pks)).order_by(Delivery.id).with_for_update()
            found = {d.id: d for d in s.scalars(query)}
            delivered: list[Delivery] = []
            states: list[str] = []
            for pk, result in items:
                d = found[pk]
                states.append(self._outcome(s, d, result, now, followups))
                if d.state == "delivered" and result.outcome is dispatch.Outcome.DELIVERED:
                    delivered.append(d)
            moves = self._dispatched(s, delivered, now)
            s.flush()
        followups += self.pipeline.lifecycle.write_moves(conn, moves, now)
        return states, moves, followups

    def _outcome(
        self, s: Session, d: Delivery, result: dispatch.AttemptResult, now: datetime, followups: list[Followup]
    ) -> str:
        s.add(
            DeliveryAttempt(
                delivery_id=d.id,
                number=d.attempts,
                at=now,
                outcome=str(result.outcome),
                status_code=result.status_code,
                latency_ms=result.latency_ms,
                error=result.error,
            )
        )
        d.last_status_code, d.last_error, d.updated_at = result.status_code, result.error, now
        d.claimed_by = None
        extra = {"delivery": d.delivery_id, "target": d.target, "attempt": d.attempts, "status": result.status_code}
        if result.outcome is dispatch.Outcome.DELIVERED:
            d.state, d.delivered_at = "delivered", now
            log.info("dispatch delivered", extra=extra)
        elif result.outcome is dispatch.Outcome.REJECTED:
            d.state = "rejected"
            log.warning("dispatch rejected the delivery", extra={**extra, "error": result.error})
        else:
            d.failing_since = d.failing_since or now
            _alert(d, now, result.error, self.settings.dispatch_alert_interval_s)
            if now - d.failing_since >= timedelta(seconds=self.settings.dispatch_retry_for_s):
                d.state = "dead"
                log.error("dispatch delivery dead-lettered", extra={**extra, "error": result.error})
            else:
                followups.append(self._reschedule(d, now, result))
                log.info("dispatch delivery will be retried", extra={**extra, "error": result.error})
        return d.state

    def _reschedule(self, d: Delivery, now: datetime, result: dispatch.AttemptResult) -> Followup:
        """The next attempt after backoff, and never later than the end of the retry period, so the
        last attempt is made when it ends."""
        cap = self.settings.dispatch_backoff_cap_s
        wait = backoff(d.attempts - 1, self.settings.dispatch_backoff_base_s, cap)
        if result.retry_after_s is not None:
            wait = max(wait, min(result.retry_after_s, cap))
        assert d.failing_since is not None
        end = d.failing_since + timedelta(seconds=self.settings.dispatch_retry_for_s)
        wait = max(0.0, min(wait, (end - now).total_seconds()))
        d.next_attempt_at = now + timedelta(seconds=wait)
        return (task_for(d.priority, d.urgent), (d.id,), wait)

    def _dispatched(self, s: Session, delivered: Sequence[Delivery], now: datetime) -> list[Move]:
        """Delivered reports still ``ready`` move to ``dispatched`` (their rows here, their history,
        news and listeners through ``Lifecycle.write_moves``)."""
        if not delivered:
            return []
        ids = [d.report_id for d in delivered]
        query = select(Report).where(Report.id.in_(ids)).order_by(Report.id).with_for_update()
        reports = {r.id: r for r in s.scalars(query)}
        moves: list[Move] = []
        for d in delivered:
            report = reports.get(d.report_id)
            if report is None or report.status != Status.READY:
                continue
            note = replies.DISPATCHED_TO.format(department=d.department) if d.department else None
            data = {"delivery_id": d.delivery_id, "target": d.target}
            moves.append(Move.of(report, Status.DISPATCHED, SYSTEM, note=note, data=data))
            report.status, report.updated_at = str(Status.DISPATCHED), now
        return moves

    # ------------------------------------------------------------------ operators

    async def replay(self, ref: str) -> Delivery:
        """Put a dead or rejected delivery back in the outbox (same delivery id, fresh attempts)."""
        async with self.pipeline.unit() as s:
            query = select(Delivery).with_for_update()
            query = query.where(Delivery.id == int(ref)) if ref.isdigit() else query.where(Delivery.delivery_id == ref)
            d = await s.scalar(query)
            if d is None:
                raise ReplayRefused(f"no delivery {ref}")
            if d.state not in DEAD_STATES:
                raise ReplayRefused(f"delivery {d.id} is {d.state}; only dead or rejected deliveries are replayed")
            now = self.pipeline.clock()
            d.state, d.attempts, d.next_attempt_at, d.updated_at = "pending", 0, now, now
            d.failing_since = None  # a fresh retry period
            after_commit(s, task_for(d.priority, d.urgent), d.id)
            log.info("dispatch delivery replayed", extra={"delivery": d.delivery_id})
            return d

    async def replay_dead(self) -> list[Delivery]:
        async with self.pipeline.db.session() as s:
            ids = (await s.scalars(select(Delivery.id).where(Delivery.state.in_(DEAD_STATES)))).all()
        return [await self.replay(str(pk)) for pk in ids]

    async def listing(
        self, *, dead: bool = False, ids: list[int] | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        async with self.pipeline.db.session() as s:
            query = select(Delivery, Report.case_number).join(Report, Report.id == Delivery.report_id)
            if dead:
                query = query.where(Delivery.state.in_(DEAD_STATES))
            if ids is not None:
                query = query.where(Delivery.id.in_(ids))
            rows = (await s.execute(query.order_by(Delivery.id.desc()).limit(limit))).all()
        return [_row_json(d, case) for d, case in rows]


# ---------------------------------------------------------------- alerting
# While a target fails, operators hear of it: a structured warning per target at most once per
# ``GATEWAY_DISPATCH_ALERT_INTERVAL_S`` in each process, and gauges on ``/metrics``
# (``failing_targets``, read from the outbox so that every process's attempts count).

_last_alert: dict[str, float] = {}  # target -> monotonic time of its last warning in this process
ALERT_INTERVAL_S = 60.0


def _alert(d: Delivery, now: datetime, error: str | None, interval: float = ALERT_INTERVAL_S) -> None:
    last = _last_alert.get(d.target)
    if last is not None and time.monotonic() - last < interval:
        return
    _last_alert[d.target] = time.monotonic()
    assert d.failing_since is not None
    log.warning(
        "dispatch target failing",
        extra={
            "target": d.target,
            "delivery": d.delivery_id,
            "attempt": d.attempts,
            "failing_s": round((now - d.failing_since).total_seconds(), 1),
            "error": error,
        },
    )


@dataclass(frozen=True, slots=True)
class TargetHealth:
    target: str
    failing: bool
    failures: int  # failed attempts of its longest-failing pending delivery
    failing_s: float  # since that delivery's first failure
    pending: int


async def failing_targets(db: Database, targets: list[str], now: datetime) -> list[TargetHealth]:
    """Each known target, and each target with pending deliveries: failing or not, for how long."""
    async with db.session() as s:
        rows = (
            await s.execute(
                select(
                    Delivery.target,
                    func.count(),
                    func.max(Delivery.attempts).filter(Delivery.failing_since.is_not(None)),
                    func.min(Delivery.failing_since),
                )
                .where(Delivery.state == "pending")
                .group_by(Delivery.target)
            )
        ).all()
    found = {t: TargetHealth(t, False, 0, 0.0, 0) for t in targets}
    for target, pending, failures, since in rows:
        failing_s = (now - since).total_seconds() if since is not None else 0.0
        found[target] = TargetHealth(target, since is not None, int(failures or 0), failing_s, int(pending))
    return sorted(found.values(), key=lambda h: h.target)


def _row_json(d: Delivery, case: str) -> dict[str, Any]:
    return {
        "id": d.id,
        "delivery_id": d.delivery_id,
        "case_number": case,
        "target": d.target,
        "priority": d.priority,
        "state": d.state,
        "attempts": d.attempts,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "next_attempt_at": d.next_attempt_at.isoformat(),
        "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
        "failing_since": d.failing_since.isoformat() if d.failing_since else None,
    }


def install(pipeline: Pipeline) -> Outbox:
    """For a pipeline built by hand (tests, scripts): add the outbox's writer to its listeners.
    The composition root (``gateway/runtime.py``) passes ``DeliveryWriter`` to the constructor instead."""
    writer = DeliveryWriter(pipeline.units, pipeline.settings)
    pipeline.lifecycle.listeners += (writer,)
    pipeline.sweeping.sweepers += (writer,)
    return Outbox(pipeline)


async def deliver_dispatch(ctx: TaskContext, *delivery_pks: int) -> None:
    """The task: ids in (a batch's deliveries), one attempt each, idempotent (a delivered or leased
    row is left alone); a failure to record any fails the task, whose retry records it."""
    # The process's outbox (built by the composition root), so that concurrent tasks share batches.
    box = ctx.services.get("outbox") or Outbox(ctx.pipeline)
    http = ctx.services["http"]
    await asyncio.gather(*(box.deliver(http, pk) for pk in delivery_pks))


async def settle(box: Outbox) -> None:
    """Wait for deliveries this process started (embedded CLI); nothing to wait for with Celery."""
    idle = getattr(box.pipeline.runner, "idle", None)
    if idle is not None:
        await idle(timeout=box.settings.dispatch_timeout_s + 10)
