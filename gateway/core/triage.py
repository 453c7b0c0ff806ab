"""Triage: close a resident's draft, classify the report, route it to ``ready`` or ``needs_review``.

Classification runs as a task (``classify_report``) once a draft is closed; a confident,
non-duplicate report goes to ``ready`` (and so to dispatch), the rest to moderators. The task
classifies its report together with the others waiting (``BATCH`` at most): under load the
per-report cost is one row of a batch, not a model call, a duplicate pool and a transaction each.
Reports a batch has claimed (``Claims``) are left to it; the claimer's retry, or the sweeper after
a crash, finishes them.

A batch is set-based, like intake (``gateway/core/intake.py``): one read (``_read``: the reports
and their senders' last positions, plain columns), the grid, the model and the twin check off the
database connection, and one write (``Triage._write``: the report rows in one ``UPDATE``
executemany, the moves through ``Lifecycle.write_moves``), each one ``Database.run_sync``. On
SQLite that is two hops to the connection's thread per batch instead of several per report.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, and_, bindparam, select, tuple_, update

from gateway.core import placing
from gateway.core.classify import Classification, classify_many
from gateway.core.duplicates import near_duplicates_of_new
from gateway.core.groupcommit import GroupCommit
from gateway.core.lifecycle import Status
from gateway.core.placing import LastPosition, Placement
from gateway.core.transitions import Followup, Lifecycle, Move
from gateway.core.units import SYSTEM, Claims, LocalClaims, Units, after_commit
from gateway.db import Contact, History, Report

# ``classify_report``'s answer when another batch holds the report: not done here, try again soon.
CLAIMED = "claimed"

if TYPE_CHECKING:
    from gateway.core.classify import ReportClassifier
    from gateway.core.placing import Placer
    from gateway.metrics import Metrics

# A new report this similar to an open one goes to moderators as a possible duplicate (nlp.dedupe
# scores: cosine of character bigrams, nudged up for nearby coordinates).
DUPLICATE_ROUTE_SCORE = 0.8
# Reports classified together: one model call, one duplicate pool and one transaction for all.
BATCH = 64
# Reports this process's batches classified before their own task ran (which then answers from
# memory instead of a query), at most this many.
DONE_MAX = 10_000


class Triage:
    def __init__(
        self,
        units: Units,
        lifecycle: Lifecycle,
        classifier: ReportClassifier,
        *,
        metrics: Metrics | None = None,
        placer: Placer | None = None,
        claims: Claims | None = None,
    ) -> None:
        self.units = units
        self.lifecycle = lifecycle
        self.classifier = classifier
        self.metrics = metrics
        self.placer = placer  # places reports in the grid; None: no grid (a pipeline built by hand)
        # Reports a batch of this process (or, over Redis, of any worker) is classifying: batches
        # running at the same time take different reports instead of classifying the same twice.
        self.claims: Claims = claims if claims is not None else LocalClaims()
        self._coalesce: GroupCommit[int, str | None] = GroupCommit(self._run_batch, max_batch=BATCH)
        self._done: dict[int, bool] = {}  # an ordered set

    async def close_session(self, report_id: int, *, force: bool = False) -> bool:
        """Close a draft whose window has passed (or any draft when ``force``); True if closed."""
        now = self.units.clock()
        async with self.units.unit() as s:
            report = await s.get(Report, report_id, with_for_update=True)
            if report is None or not report.session_open:
                return False
            expires = report.session_expires_at
            if not force and expires is not None and expires > now:
                after_commit(s, "close_session", report_id, delay=(expires - now).total_seconds() + 1)
                return False
            report.session_open = False
            report.session_expires_at = None
            s.add(
                History(
                    report_id=report.id,
                    at=now,
                    actor=SYSTEM,
                    action="session_closed",
                    note="idle timeout" if not force else "closed",
                )
            )
        await self.units.runner.enqueue("classify_report", report_id)
        return True

    async def classify_report(self, report_id: int) -> str | None:
        """Classify a closed report and route it to ``ready`` or ``needs_review``, together with the
        other reports waiting for classification (up to ``BATCH``: one model call, one duplicate
        pool, one transaction). Idempotent. The status this report reached, or None when it had
        nothing to do here (gone, still open, already classified, or taken by another batch).

        Concurrent calls in one process are coalesced (``GroupCommit``) into one batch; a report
        that an earlier batch of this process took along answers from memory, without a query."""
        if self._done.pop(report_id, False):
            return None  # classified by a batch of this process, with the reports that were waiting
        return await self._coalesce.submit(report_id)

    async def classify_reports(self, report_ids: Sequence[int]) -> list[str | None]:
        """``classify_report`` for several reports at once (one task for a whole intake batch)."""
        return list(await asyncio.gather(*(self.classify_report(i) for i in report_ids)))

    async def _run_batch(self, ids: Sequence[int]) -> list[str | None | BaseException]:
        try:
            found = await self._classify(ids)
        except Exception as exc:  # each caller's task fails (and is retried by its runner)
            return [exc for _ in ids]
        return [found.get(i) for i in ids]

    async def _classify(self, ids: Sequence[int]) -> dict[int, str]:
        """Triage of the reports ``ids`` and of others waiting (``BATCH`` in all): one read, the
        grid, the model and the twin check off the connection, one write. The status of each of
        ``ids`` it reached (or ``CLAIMED``)."""
        # Other batches may hold some of the waiting reports: with claims shared between workers, read
        # twice what a batch takes; alone in this process (one batch at a time), what it can take.
        others = 2 * BATCH if self.claims.shared else max(0, BATCH - len(ids))
        keeps = self.lifecycle.outbound_channels
        wanted, more, contacts = await self.units.db.run_sync(partial(_read, ids, others, keeps))
        taken = set(await self.claims.take([r.id for r in (*wanted, *more)], BATCH))
        try:
            rows = [r for r in (*wanted, *more) if r.id in taken]
            statuses = await self._triage(rows, contacts) if rows else {}
        finally:
            await self.claims.release(list(taken))
        for report_id in statuses:
            if report_id not in ids:
                self._done[report_id] = True  # its own task is still to come
        while len(self._done) > DONE_MAX:
            del self._done[next(iter(self._done))]
        if self.claims.shared:
            # Another worker's batch holds it. Its task's own retry covers a failure, but not a worker
            # killed mid-batch: this report's task must still see it leave `received`, so it asks
            # to be run again (the claim expires within its TTL) instead of counting as done.
            statuses.update({r.id: CLAIMED for r in wanted if r.id not in taken})
        return statuses

    async def _triage(self, rows: list[_Row], contacts: dict[tuple[str, str], LastPosition]) -> dict[int, str]:
        started = time.perf_counter()
        placements: list[Placement | None] = [None] * len(rows)
        if self.placer is not None:
            facts = [self.placer.facts(r, contacts.get((r.channel, r.sender))) for r in rows]
            placements = list(await asyncio.to_thread(self.placer.place_many, facts))
        results = await classify_many(self.classifier, [r.model_text for r in rows])
        # Only a report that would go straight to dispatch needs the (costlier) twin check.
        twins = await self._likely_duplicates(rows, results)
        if self.metrics:
            per_report = (time.perf_counter() - started) / len(rows)
            for _ in rows:
                self.metrics.pipeline_seconds.labels(stage="classify").observe(per_report)
        routes = [
            _route(r, res, pl, twins.get(r.case_number, []))
            for r, res, pl in zip(rows, results, placements, strict=True)
        ]
        now = self.units.clock()
        moves, followups = await self.units.db.run_sync(partial(self._write, routes, now))
        for name, args, delay in followups:
            await self.units.enqueue(name, *args, delay=delay)
        self.lifecycle.count_moves(moves)
        return {m.report_id: m.target for m in moves if m.current == Status.CLASSIFIED}

    def _write(self, routes: list[_Route], now: datetime, conn: Connection) -> tuple[list[Move], list[Followup]]:
        """The batch's one transaction: the reports still ``received`` (locked on PostgreSQL; another
        worker may have got there first) get their category, grid and status, then the moves."""
        ids = [r.report_id for r in routes]
        lock = select(_REPORTS.c.id).where(_REPORTS.c.id.in_(ids), _REPORTS.c.status == Status.RECEIVED)
        # Locked in id order, as every batch locks: two batches over overlapping reports queue
        # instead of deadlocking.
        still = set(conn.scalars(lock.order_by(_REPORTS.c.id).with_for_update()))
        routes = [r for r in routes if r.report_id in still]
        if not routes:
            return [], []
        conn.execute(
            update(_REPORTS).where(_REPORTS.c.id == bindparam("rid")),
            [{**r.values, "rid": r.report_id, "status": r.moves[-1].target, "updated_at": now} for r in routes],
        )
        moves = [m for r in routes for m in r.moves]
        return moves, self.lifecycle.write_moves(conn, moves, now)

    async def _likely_duplicates(
        self, reports: Sequence[_Row], results: Sequence[Classification]
    ) -> dict[str, list[tuple[str, float]]]:
        """Per case number, the open reports of the same top-level category that report very likely
        repeats (score at least ``DUPLICATE_ROUTE_SCORE``), for those that would go to dispatch. The
        reports classified before it in the same batch count as open ones (they will be)."""
        checked = [(r, res.parent or res.code) for r, res in zip(reports, results, strict=True) if _will_dispatch(res)]
        found: dict[str, list[tuple[str, float]]] = {}
        for parent in {p for _, p in checked}:
            group = [r for r, p in checked if p == parent]
            earlier = [r for r, res in zip(reports, results, strict=True) if res.parent == parent]
            try:
                scored = await near_duplicates_of_new(self.units.db, group, parent=parent, batch=earlier)
            except ImportError:  # nlp is part of this distribution; only a broken install lacks it
                return {}
            for case, hits in scored.items():
                found[case] = [(c, v) for c, v in hits if v >= DUPLICATE_ROUTE_SCORE]
        return found


@dataclass(frozen=True, slots=True)
class _Row:
    """A report waiting for triage, as plain columns (``_COLUMNS``)."""

    id: int
    case_number: str
    channel: str
    account: str | None
    sender: str
    title: str | None
    text: str | None
    location_lat: float | None
    location_lng: float | None
    location_address: str | None
    created_at: datetime
    duplicate_of: str | None

    @property
    def model_text(self) -> str:
        return "\n".join(p for p in (self.title, self.text) if p)


_REPORTS = cast(Table, Report.__table__)
_CONTACTS = cast(Table, Contact.__table__)
_COLUMNS = tuple(_REPORTS.c[f.name] for f in fields(_Row))


def _read(
    ids: Sequence[int], others: int, keeps: frozenset[str], conn: Connection
) -> tuple[list[_Row], list[_Row], dict[tuple[str, str], LastPosition]]:
    """Of ``ids``, the reports waiting for triage; up to ``others`` more waiting, oldest first (the
    batch's claims take what no other batch holds); and the last positions of their senders on the
    channels in ``keeps`` (the channels that can send: intake keeps contacts for those alone)."""
    waiting = and_(_REPORTS.c.status == Status.RECEIVED, _REPORTS.c.session_open.is_(False))
    wanted = [_Row(*r) for r in conn.execute(select(*_COLUMNS).where(waiting, _REPORTS.c.id.in_(ids)))]
    more: list[_Row] = []
    if others > 0:
        query = select(*_COLUMNS).where(waiting, _REPORTS.c.id.not_in(ids)).order_by(_REPORTS.c.id).limit(others)
        more = [_Row(*r) for r in conn.execute(query)]
    senders = sorted({(r.channel, r.sender) for r in (*wanted, *more) if r.channel in keeps})
    contacts: dict[tuple[str, str], LastPosition] = {}
    if senders:
        c = _CONTACTS.c
        found = conn.execute(
            select(c.channel, c.address, c.last_lat, c.last_lng, c.last_location_at).where(
                tuple_(c.channel, c.address).in_(senders)
            )
        )
        contacts = {(ch, addr): (lat, lng, at) for ch, addr, lat, lng, at in found}
    return wanted, more, contacts


@dataclass(frozen=True, slots=True)
class _Route:
    """Where triage sends one report: its new column values and its two moves."""

    report_id: int
    values: dict[str, Any]
    moves: tuple[Move, Move]


def _route(row: _Row, result: Classification, placement: Placement | None, twins: list[tuple[str, float]]) -> _Route:
    values: dict[str, Any] = {
        "category_code": result.code,
        "category_name": result.name,
        "category_parent": result.parent,
        "category_confidence": result.confidence,
        "category_model_version": result.model_version,
        "category_set_by": result.set_by,
        "category_candidates": result.candidates,
        "category_explanation": result.explanation,
        "priority": result.priority,
        "urgent": result.urgent,
    }
    if placement is not None:
        values.update(placing.columns(placement))
    data = {
        "code": result.code,
        "confidence": result.confidence,
        "model": result.model_version,
        "candidates": result.candidates,
        **({"grid": placement.as_dict()} if placement else {}),
    }
    # Urgent (P1) cases skip the moderation queue: a person must act now, not triage. A likely
    # twin of an open case goes to moderators to merge rather than being dispatched twice.
    confident = (result.urgent or not result.needs_review) and result.code
    outside = placement is not None and placement.outside
    target = Status.READY if confident and (result.urgent or not (twins or outside)) else Status.NEEDS_REVIEW
    if result.urgent:
        reason = "urgent"
    elif outside:
        reason = placing.OUTSIDE_REASON
    elif twins:
        reason = "possible duplicate of " + ", ".join(case for case, _ in twins[:3])
    else:
        reason = "low confidence" if result.needs_review else "confident"
    dup_data = {"possible_duplicates": [{"case_number": c, "score": v} for c, v in twins[:5]]} if twins else None
    classified = Move(
        report_id=row.id,
        case_number=row.case_number,
        channel=row.channel,
        account=row.account,
        sender=row.sender,
        current=Status.RECEIVED,
        target=Status.CLASSIFIED,
        actor=SYSTEM,
        note=result.explanation or None,
        data=data,
        category_code=result.code,
        location_address=row.location_address,
        grid_path=values.get("grid_path"),
        priority=result.priority,
        urgent=result.urgent,
        duplicate_of=row.duplicate_of,
    )
    routed = replace(classified, current=Status.CLASSIFIED, target=target, note=reason, data=dup_data)
    return _Route(row.id, values, (classified, routed))


def _will_dispatch(result: Classification) -> bool:
    return bool(result.code) and not result.needs_review and not result.urgent
