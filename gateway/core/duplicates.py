"""Possible duplicates: open reports that seem to describe the same problem (``nlp.dedupe``).

Used by the pipeline, which sends a report with a likely twin to moderators instead of
dispatching the same problem twice, and by the console, which shows the candidates side by side
for a merge. The candidates are open reports within ``WINDOW`` of the report (at most ``POOL``
of them, newest first); text similarity and, where both have coordinates, distance decide.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select

from gateway.core.lifecycle import Status
from gateway.db import Database, Report, ReportView
from nlp.dedupe import DedupeIndex, DedupeItem

WINDOW = timedelta(days=3)
POOL = 2000
# Reports a new one may duplicate (and a moderator may merge into).
MERGE_TARGETS = (Status.NEEDS_REVIEW, Status.READY, Status.DISPATCHED, Status.ACCEPTED, Status.IN_PROGRESS)
Scored = list[tuple[str, float]]  # (case number, score), best first


async def candidate_pool(db: Database, reports: Sequence[Report], parent: str | None = None) -> list[Report]:
    lo = min(r.created_at for r in reports) - WINDOW
    hi = max(r.created_at for r in reports) + WINDOW
    query = select(Report).where(Report.status.in_([str(t) for t in MERGE_TARGETS]), Report.created_at.between(lo, hi))
    if parent:
        query = query.where(Report.category_parent == parent)
    async with db.session() as s:
        pool = list((await s.scalars(query.order_by(Report.created_at.desc()).limit(POOL))).all())
        linked = {r.duplicate_of for r in reports if r.duplicate_of} - {p.case_number for p in pool}
        if linked:
            pool += list((await s.scalars(select(Report).where(Report.case_number.in_(linked)))).all())
    return pool


async def near_duplicates(
    db: Database, reports: Sequence[Report], *, parent: str | None = None
) -> tuple[dict[str, Scored], dict[str, Report]]:
    """Per case number, the open reports that look like the same problem; and the pool by case.

    ``parent`` limits the candidates to one top-level category: the pipeline knows the new
    report's category, and a twin in another category is not one it would hold back.
    """
    if not reports:
        return {}, {}
    pool = await candidate_pool(db, reports, parent)
    scored = await asyncio.to_thread(score, reports, pool)
    return scored, {p.case_number: p for p in pool}


async def near_duplicates_of_new(
    db: Database, reports: Sequence[ReportView], *, parent: str | None, batch: Sequence[ReportView] = ()
) -> dict[str, Scored]:
    """``near_duplicates`` for reports being classified (triage), per case number. The candidate
    pool is read as plain columns (no ORM objects: it is read for every batch), and the reports of
    ``batch`` (classified together, in id order) count as open for the ones after them."""
    if not reports:
        return {}
    lo = min(r.created_at for r in reports) - WINDOW
    hi = max(r.created_at for r in reports) + WINDOW
    cols = (Report.case_number, Report.title, Report.text, Report.location_lat, Report.location_lng, Report.created_at)
    query = select(*cols).where(Report.status.in_([str(t) for t in MERGE_TARGETS]), Report.created_at.between(lo, hi))
    if parent:
        query = query.where(Report.category_parent == parent)
    async with db.session() as s:
        rows = (await s.execute(query.order_by(Report.created_at.desc()).limit(POOL))).all()
        pool = [DedupeItem(c, "\n".join(x for x in (t, b) if x), la, ln, at) for c, t, b, la, ln, at in rows]
        linked = {r.duplicate_of for r in reports if r.duplicate_of} - {p.id for p in pool}
        if linked:
            more = (await s.execute(select(*cols).where(Report.case_number.in_(linked)))).all()
            pool += [DedupeItem(c, "\n".join(x for x in (t, b) if x), la, ln, at) for c, t, b, la, ln, at in more]
    return await asyncio.to_thread(_score_new, reports, pool, batch)


def _score_new(reports: Sequence[ReportView], pool: list[DedupeItem], batch: Sequence[ReportView]) -> dict[str, Scored]:
    index = DedupeIndex(pool)
    known = {p.id for p in pool}
    earlier = sorted(batch, key=lambda r: r.id)
    out: dict[str, Scored] = {}
    for r in sorted(reports, key=lambda r: r.id):
        while earlier and earlier[0].id < r.id:
            known.add(earlier[0].case_number)
            index.add(_item(earlier.pop(0)))
        out[r.case_number] = _hits(r, index, known)
    return out


def _hits(r: ReportView, index: DedupeIndex, known: set[str]) -> Scored:
    """``r``'s likely twins in ``index``; a confirmed ``duplicate_of`` link among ``known`` scores 1.0."""
    hits: dict[str, float] = {}
    if r.duplicate_of and r.duplicate_of in known:
        hits[r.duplicate_of] = 1.0
    for case, value in index.query(_item(r)):
        hits.setdefault(case, value)
    hits.pop(r.case_number, None)
    return list(hits.items())


def _item(r: ReportView) -> DedupeItem:
    return DedupeItem(
        r.case_number, "\n".join(x for x in (r.title, r.text) if x), r.location_lat, r.location_lng, r.created_at
    )


def score(reports: Sequence[Report], pool: Sequence[Report]) -> dict[str, Scored]:
    """CPU-bound: run it in a thread. A confirmed ``duplicate_of`` link scores 1.0."""
    index = DedupeIndex(_item(p) for p in pool)
    known = {p.case_number for p in pool}
    out: dict[str, Scored] = {}
    for r in reports:
        out[r.case_number] = _hits(r, index, known)
    return out
