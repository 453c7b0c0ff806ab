"""Triage: close a resident's draft, classify the report, route it to ``ready`` or ``needs_review``.

Classification runs as a task (``classify_report``) once a draft is closed; a confident,
non-duplicate report goes to ``ready`` (and so to dispatch), the rest to moderators. The task
classifies its report together with the others waiting (``BATCH`` at most): under load the
per-report cost is one row of a batch, not a model call, a duplicate pool and a transaction each.
Reports a batch has claimed (``Claims``) are left to it; the claimer's retry, or the sweeper after
a crash, finishes them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core import placing
from gateway.core.classify import Classification, classify_many
from gateway.core.duplicates import near_duplicates_of_new
from gateway.core.lifecycle import Status
from gateway.core.transitions import Lifecycle
from gateway.core.units import SYSTEM, Claims, LocalClaims, Units, after_commit
from gateway.db import History, Report

# ``classify_report``'s answer when another batch holds the report: not done here, try again soon.
CLAIMED = "claimed"

if TYPE_CHECKING:
    from gateway.core.classify import ReportClassifier
    from gateway.core.placing import Placement, Placer
    from gateway.metrics import Metrics

# A new report this similar to an open one goes to moderators as a possible duplicate (nlp.dedupe
# scores: cosine of character bigrams, nudged up for nearby coordinates).
DUPLICATE_ROUTE_SCORE = 0.8
# Reports classified together: one model call, one duplicate pool and one transaction for all.
BATCH = 64


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
        nothing to do here (gone, still open, already classified, or taken by another batch)."""
        async with self.units.db.session() as s:
            report = await s.get(Report, report_id)
            if report is None or report.session_open or report.status != Status.RECEIVED:
                return None
            waiting = (
                await s.scalars(
                    select(Report.id)
                    .where(Report.status == Status.RECEIVED, Report.session_open.is_(False), Report.id != report_id)
                    .order_by(Report.id)
                    .limit(2 * BATCH)
                )
            ).all()
        taken = await self.claims.take([report_id, *waiting], BATCH)
        try:
            statuses = await self._classify_batch(taken) if taken else {}
        finally:
            await self.claims.release(taken)
        if report_id not in taken and self.claims.shared:
            # Another worker's batch holds it. Its task's own retry covers a failure, but not a worker
            # killed mid-batch: this report's task must still see it leave `received`, so it asks
            # to be run again (the claim expires within its TTL) instead of counting as done.
            return CLAIMED
        return statuses.get(report_id)

    async def _classify_batch(self, ids: Sequence[int]) -> dict[int, str]:
        async with self.units.db.session() as s:
            found = (await s.scalars(select(Report).where(Report.id.in_(ids)).order_by(Report.id))).all()
            reports = [r for r in found if not r.session_open and r.status == Status.RECEIVED]
            placements = [await self.placer.place(s, r) if self.placer else None for r in reports]
        if not reports:
            return {}
        started = time.perf_counter()
        results = await classify_many(self.classifier, ["\n".join(p for p in (r.title, r.text) if p) for r in reports])
        # Only a report that would go straight to dispatch needs the (costlier) twin check.
        twins = await self._likely_duplicates(reports, results)
        if self.metrics:
            per_report = (time.perf_counter() - started) / len(reports)
            for _ in reports:
                self.metrics.pipeline_seconds.labels(stage="classify").observe(per_report)
        statuses: dict[int, str] = {}
        async with self.units.unit() as s:
            query = select(Report).where(Report.id.in_([r.id for r in reports])).with_for_update()
            locked = {r.id: r for r in (await s.scalars(query)).all()}
            for report, result, placement in zip(reports, results, placements, strict=True):
                current = locked.get(report.id)
                if current is None or current.status != Status.RECEIVED:
                    continue  # another worker got there first
                twins_of = twins.get(report.case_number, [])
                statuses[report.id] = await self._route(s, current, result, placement, twins_of)
        return statuses

    async def _route(
        self,
        s: AsyncSession,
        report: Report,
        result: Classification,
        placement: Placement | None,
        twins: list[tuple[str, float]],
    ) -> str:
        report.category_code = result.code
        report.category_name = result.name
        report.category_parent = result.parent
        report.category_confidence = result.confidence
        report.category_model_version = result.model_version
        report.category_set_by = result.set_by
        report.category_candidates = result.candidates
        report.category_explanation = result.explanation
        report.priority = result.priority
        report.urgent = result.urgent
        if placement is not None:
            placing.apply(report, placement)
        data = {
            "code": result.code,
            "confidence": result.confidence,
            "model": result.model_version,
            "candidates": result.candidates,
            **({"grid": placement.as_dict()} if placement else {}),
        }
        await self.lifecycle.transition(
            s, report, Status.CLASSIFIED, SYSTEM, note=result.explanation or None, data=data
        )
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
        await self.lifecycle.transition(s, report, target, SYSTEM, note=reason, data=dup_data)
        return report.status

    async def _likely_duplicates(
        self, reports: Sequence[Report], results: Sequence[Classification]
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


def _will_dispatch(result: Classification) -> bool:
    return bool(result.code) and not result.needs_review and not result.urgent
