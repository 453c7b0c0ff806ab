"""Triage: close a resident's draft, classify the report, route it to ``ready`` or ``needs_review``.

Classification runs as a task (``classify_report``) once a draft is closed; a confident,
non-duplicate report goes to ``ready`` (and so to dispatch), the rest to moderators.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from gateway.core import placing
from gateway.core.duplicates import near_duplicates
from gateway.core.lifecycle import Status
from gateway.core.transitions import Lifecycle
from gateway.core.units import SYSTEM, Units, after_commit
from gateway.db import History, Report

if TYPE_CHECKING:
    from gateway.core.classify import ReportClassifier
    from gateway.core.placing import Placer
    from gateway.metrics import Metrics

# A new report this similar to an open one goes to moderators as a possible duplicate (nlp.dedupe
# scores: cosine of character bigrams, nudged up for nearby coordinates).
DUPLICATE_ROUTE_SCORE = 0.8


class Triage:
    def __init__(
        self,
        units: Units,
        lifecycle: Lifecycle,
        classifier: ReportClassifier,
        *,
        metrics: Metrics | None = None,
        placer: Placer | None = None,
    ) -> None:
        self.units = units
        self.lifecycle = lifecycle
        self.classifier = classifier
        self.metrics = metrics
        self.placer = placer  # places reports in the grid; None: no grid (a pipeline built by hand)

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
        """Classify a closed report and route it to ``ready`` or ``needs_review``. Idempotent."""
        async with self.units.db.session() as s:
            report = await s.get(Report, report_id)
            if report is None or report.session_open or report.status != Status.RECEIVED:
                return None
            text = "\n".join(p for p in (report.title, report.text) if p)
            placement = await self.placer.place(s, report) if self.placer else None
        started = time.perf_counter()
        result = await self.classifier.classify(text)
        # Only a report that would go straight to dispatch needs the (costlier) twin check.
        will_dispatch = bool(result.code) and not result.needs_review and not result.urgent
        twins = await self._likely_duplicates(report, result.parent or result.code) if will_dispatch else []
        if self.metrics:
            self.metrics.pipeline_seconds.labels(stage="classify").observe(time.perf_counter() - started)
        async with self.units.unit() as s:
            report = await s.get(Report, report_id, with_for_update=True)
            if report is None or report.status != Status.RECEIVED:
                return None  # another worker got there first
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
            dup_data = (
                {"possible_duplicates": [{"case_number": c, "score": v} for c, v in twins[:5]]} if twins else None
            )
            await self.lifecycle.transition(s, report, target, SYSTEM, note=reason, data=dup_data)
            return report.status

    async def _likely_duplicates(self, report: Report, parent: str | None) -> list[tuple[str, float]]:
        """Open reports of the same top-level category this one very likely repeats (score at
        least ``DUPLICATE_ROUTE_SCORE``)."""
        try:
            scored, _ = await near_duplicates(self.units.db, [report], parent=parent)
        except ImportError:  # nlp is part of this distribution; only a broken install lacks it
            return []
        return [(case, value) for case, value in scored.get(report.case_number, []) if value >= DUPLICATE_ROUTE_SCORE]
