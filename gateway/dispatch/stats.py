"""Handling figures (统一评价) of every case handed to dispatch, per category, per department and
per grid unit at a chosen level (``grid_level``: 街道 by default; the unit of that level on each
report's stored grid path, so a roll-up needs no join; cases not placed that deep count under a
null code).

Every figure says what it counts (``COUNTS``, part of the answer). The count of cases handed
to dispatch (outbox written), of those delivered and still waiting, the median time from
hand-off to acceptance, the median time from receipt to resolution, the on-time rate against the priority's deadline
(``gateway.dispatch.outbox.DEADLINES``) and the mean resident rating. Served at
``GET /api/v1/stats`` (``gateway/http/dispatch.py``), printed by ``gateway stats`` and drawn by
the console's overview.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from gateway.core.lifecycle import Status
from gateway.db import Database, Delivery, History, Rating, Report, utcnow
from gateway.dispatch.outbox import deadline_for

GRID_LEVELS = ("市", "区", "街道", "社区", "网格")

# What each figure counts; printed with the figures (``gateway stats``, ``GET /api/v1/stats``).
COUNTS = {
    "count": "cases handed to dispatch: a delivery was written to the outbox (delivered or still waiting)",
    "delivered": "of those, cases the dispatch system has acknowledged (a delivery answered 2xx)",
    "waiting": "of those, cases not delivered yet (dispatch unconfigured, unreachable, or dead letters)",
    "median_accept_s": "median seconds from dispatched to accepted, over cases dispatch accepted",
    "median_resolve_s": "median seconds from receipt to resolved, over resolved cases",
    "on_time_rate": "resolved within the priority's deadline, over cases resolved or past their deadline",
    "ratings": "cases the resident rated",
    "mean_rating": "mean of those ratings (1-5)",
}


@dataclass
class _Case:
    code: str | None
    name: str | None
    department: str
    priority: str
    created_at: datetime
    times: dict[str, datetime]
    score: int | None = None
    delivered: bool = False
    unit: tuple[str, str] | None = None  # (code, name) of the report's grid unit at the chosen level


async def compute_stats(db: Database, now: datetime | None = None, grid_level: str = "街道") -> dict[str, Any]:
    """Handling figures of every case handed to dispatch, per category, department and grid unit."""
    now = now or utcnow()
    async with db.session() as s:
        deliveries = (
            await s.execute(
                select(Delivery.report_id, Delivery.department, Delivery.target, Delivery.state).order_by(Delivery.id)
            )
        ).all()
        handed = {rid: dept or target for rid, dept, target, _ in deliveries}  # the latest delivery wins
        delivered = {rid for rid, _, _, state in deliveries if state == "delivered"}
        rows = (
            await s.execute(
                select(
                    Report.id,
                    Report.category_code,
                    Report.category_name,
                    Report.priority,
                    Report.created_at,
                    Report.grid_path,
                ).where(Report.id.in_(select(Delivery.report_id)))
            )
        ).all()
        firsts = (
            await s.execute(
                select(History.report_id, History.to_status, func.min(History.at))
                .where(History.report_id.in_(select(Delivery.report_id)), History.to_status.is_not(None))
                .group_by(History.report_id, History.to_status)
            )
        ).all()
        scores = dict((await s.execute(select(Rating.report_id, Rating.score))).all())
    times: dict[int, dict[str, datetime]] = defaultdict(dict)
    for rid, status, at in firsts:
        if status is not None:
            times[rid][status] = at
    cases = [
        _Case(
            code,
            name,
            handed[rid],
            priority,
            created,
            times[rid],
            scores.get(rid),
            rid in delivered,
            _unit(path, grid_level),
        )
        for rid, code, name, priority, created, path in rows
    ]
    by_category: dict[tuple[str | None, str | None], list[_Case]] = defaultdict(list)
    by_department: dict[str, list[_Case]] = defaultdict(list)
    by_unit: dict[tuple[str, str] | None, list[_Case]] = defaultdict(list)
    for case in cases:
        by_category[(case.code, case.name)].append(case)
        by_department[case.department].append(case)
        by_unit[case.unit].append(case)
    return {
        "generated_at": now.isoformat(),
        "counts": COUNTS,
        "total": _figures(cases, now),
        "by_category": [
            {"code": code, "name": name, **_figures(group, now)}
            for (code, name), group in sorted(by_category.items(), key=_key)
        ],
        "by_department": [{"department": d, **_figures(g, now)} for d, g in sorted(by_department.items())],
        "grid_level": grid_level,
        "by_grid": [
            {"code": unit[0] if unit else None, "name": unit[1] if unit else None, **_figures(group, now)}
            for unit, group in sorted(by_unit.items(), key=lambda item: item[0] or ("~", ""))
        ],
    }


def _unit(path: list[dict[str, str]] | None, level: str) -> tuple[str, str] | None:
    step = next((s for s in path or () if s.get("level") == level), None)
    return (step["code"], step["name"]) if step else None


def _key(item: tuple[tuple[str | None, str | None], list[_Case]]) -> str:
    return item[0][0] or ""


def _median(values: Iterable[float]) -> float | None:
    found = list(values)
    return round(statistics.median(found), 1) if found else None


def _figures(cases: list[_Case], now: datetime) -> dict[str, Any]:
    accept, resolve, on_time, judged = [], [], 0, 0
    for c in cases:
        handed = c.times.get(Status.DISPATCHED)
        accepted = min(
            (c.times[s] for s in (Status.ACCEPTED, Status.IN_PROGRESS, Status.RESOLVED) if s in c.times), default=None
        )
        if handed and accepted:
            accept.append((accepted - handed).total_seconds())
        resolved = c.times.get(Status.RESOLVED)
        deadline = c.created_at + deadline_for(c.priority)
        if resolved:
            resolve.append((resolved - c.created_at).total_seconds())
            judged += 1
            on_time += resolved <= deadline
        elif now > deadline and Status.REJECTED not in c.times:
            judged += 1  # still open past its deadline: late
    rated = [c.score for c in cases if c.score is not None]
    delivered = sum(c.delivered for c in cases)
    return {
        "count": len(cases),
        "delivered": delivered,
        "waiting": len(cases) - delivered,
        "median_accept_s": _median(accept),
        "median_resolve_s": _median(resolve),
        "on_time_rate": round(on_time / judged, 3) if judged else None,
        "ratings": len(rated),
        "mean_rating": round(sum(rated) / len(rated), 2) if rated else None,
    }
