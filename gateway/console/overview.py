"""Figures for the overview page, computed from reports, their history, deliveries and ratings.

Days are China Standard Time days. Queue size over time replays the history: every move into
``needs_review`` adds one, every move out of it removes one. Department figures: a dispatched report
resolved within its priority's deadline, as ``gateway stats`` (``gateway/dispatch/stats.py``) counts it.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select

from gateway.console.labels import CHANNELS
from gateway.console.queue import LOCAL_TZ
from gateway.core.lifecycle import Status
from gateway.db import Database, History, Report
from gateway.dispatch.stats import compute_stats
from gateway.settings import Settings
from nlp.loader import bundled_model_dir

DAYS = 30


def _day(at: datetime) -> date:
    return at.astimezone(LOCAL_TZ).date()


@dataclass
class Overview:
    days: list[str]
    by_channel: dict[str, list[int]]
    by_category: dict[str, list[int]]
    queue_size: list[int]
    queue_now: int
    median_wait_s: float | None
    reviewed: int
    departments: list[dict[str, Any]] = field(default_factory=list)
    dispatch_data: bool = False
    units: list[dict[str, Any]] = field(default_factory=list)  # per street (grid), as `gateway stats`

    def charts(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "by_channel": self.by_channel,
            "by_category": self.by_category,
            "queue_size": self.queue_size,
        }


async def build_overview(db: Database, today: date, names: dict[str, str]) -> Overview:
    start_day = today - timedelta(days=DAYS - 1)
    start = datetime.combine(start_day, datetime.min.time(), LOCAL_TZ)
    days = [start_day + timedelta(days=i) for i in range(DAYS)]
    index = {d: i for i, d in enumerate(days)}
    async with db.session() as s:
        rows = (
            await s.execute(
                select(
                    Report.created_at, Report.channel, func.coalesce(Report.category_parent, Report.category_code)
                ).where(Report.created_at >= start)
            )
        ).all()
        moves = (
            await s.execute(
                select(History.report_id, History.at, History.from_status, History.to_status)
                .where(or_(History.to_status == Status.NEEDS_REVIEW, History.from_status == Status.NEEDS_REVIEW))
                .order_by(History.at, History.id)
            )
        ).all()
        queue_now = int(await s.scalar(select(func.count()).where(Report.status == Status.NEEDS_REVIEW)) or 0)
    departments, units, has_dispatch = await _departments(db)
    by_channel: dict[str, list[int]] = defaultdict(lambda: [0] * DAYS)
    by_category: dict[str, list[int]] = defaultdict(lambda: [0] * DAYS)
    for at, channel, cat in rows:
        i = index.get(_day(at))
        if i is None:
            continue
        by_channel[CHANNELS.get(channel, channel)][i] += 1
        label = f"{cat} {names.get(cat, '')}".strip() if cat else "未分类"
        by_category[label][i] += 1
    queue_size, median, reviewed = _queue_replay(moves, days, start)
    return Overview(
        days=[d.isoformat() for d in days],
        by_channel=dict(sorted(by_channel.items())),
        by_category=_top(by_category, 8),
        queue_size=queue_size,
        queue_now=queue_now,
        median_wait_s=median,
        reviewed=reviewed,
        departments=departments,
        dispatch_data=has_dispatch,
        units=units,
    )


def _top(series: dict[str, list[int]], n: int) -> dict[str, list[int]]:
    ranked = sorted(series.items(), key=lambda kv: -sum(kv[1]))
    out = dict(ranked[:n])
    rest = [sum(col) for col in zip(*(v for _, v in ranked[n:]), strict=True)] if len(ranked) > n else []
    if rest:
        out["其他"] = rest
    return out


def _queue_replay(moves: Sequence[Any], days: list[date], start: datetime) -> tuple[list[int], float | None, int]:
    """Queue size at the end of each day, and the median wait of reports that left it since ``start``."""
    size, sizes, entered, waits = 0, [], {}, []
    per_day: Counter[date] = Counter()
    for report_id, at, from_status, to_status in moves:
        if to_status == Status.NEEDS_REVIEW and from_status != Status.NEEDS_REVIEW:
            entered[report_id] = at
            delta = 1
        elif from_status == Status.NEEDS_REVIEW and to_status != Status.NEEDS_REVIEW:
            since = entered.pop(report_id, None)
            if since is not None and at >= start:
                waits.append((at - since).total_seconds())
            delta = -1
        else:
            continue
        if at < start:
            size += delta
        else:
            per_day[_day(at)] += delta
    for d in days:
        size += per_day[d]
        sizes.append(max(size, 0))
    return sizes, (statistics.median(waits) if waits else None), len(waits)


async def _departments(db: Database) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """Per-department and per-street figures of everything handed to dispatch (``gateway stats``)."""
    data = await compute_stats(db)
    return list(data.get("by_department") or []), list(data.get("by_grid") or []), True


# --------------------------------------------------------------------------- the model


def model_info(settings: Settings) -> dict[str, Any]:
    """The classifier's version and evaluation figures from its model directory, if readable."""
    return {"note": "", "figures": {}, "figures_source": None, **_model_info(settings)}


def _model_info(settings: Settings) -> dict[str, Any]:
    if settings.classifier == "placeholder":
        return {"version": "placeholder", "note": "占位分类器：所有案件进入人工审核"}
    model_dir = settings.model_dir or _bundled_dir(settings.var_dir / "models")
    if model_dir is None or not (model_dir / "meta.json").is_file():
        return {"version": "bundled (missing)", "note": "内置模型缺失：运行 python -m nlp.bundled build"}
    meta = _read_json(model_dir / "meta.json")
    info: dict[str, Any] = {
        "version": meta.get("version", "?"),
        "created_at": meta.get("created_at"),
        "trained_on": (meta.get("train") or {}).get("n"),
        "figures": {},
    }
    cal = meta.get("evaluation") or meta.get("calibration") or {}  # held-out figures of the bundled model
    for key in ("top_level_accuracy", "coverage", "precision_routed", "ece"):
        if isinstance(cal.get(key), int | float):
            info["figures"][key] = cal[key]
    info["figures_source"] = cal.get("source")
    found = [*model_dir.glob("eval-*/metrics.json"), *[p for p in (model_dir / "metrics.json",) if p.is_file()]]
    evals = sorted(found, key=lambda p: p.stat().st_mtime)
    if evals:
        m = _read_json(evals[-1])
        for key in ("accuracy", "macro_f1", "top_level_accuracy", "coverage", "precision_routed"):
            if isinstance(m.get(key), int | float):
                info["figures"][key] = m[key]
        info["figures_source"] = f"{evals[-1].parent.name} (n={m.get('n', '?')})"
    return info


def _bundled_dir(cache: Path) -> Path | None:
    """The bundled model shipped in the nlp package (``cache`` is no longer used)."""
    return bundled_model_dir()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
