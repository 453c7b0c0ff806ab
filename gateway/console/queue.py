"""The review queue: reports in ``needs_review``, most urgent and oldest first, with why each is there.

What a moderator sees is masked (phone and ID numbers through ``nlp.mask_pii``); the unmasked
values are only shown to admins, one field at a time, by ``views.reveal`` (audited).
Possible duplicates come from ``nlp.dedupe`` over the open reports of the last days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import selectinload

from gateway.core.duplicates import near_duplicates
from gateway.core.lifecycle import Status
from gateway.db import Database, Report
from nlp.pii import mask_pii

LOCAL_TZ = timezone(timedelta(hours=8), "CST")  # China Standard Time, no daylight saving
PAGE_SIZE = 50
REASONS = {
    "no_text": "没有文字描述（空白或仅图片）",
    "not_chinese": "非中文内容",
    "unclassified": "未能自动分类",
    "low_confidence": "分类置信度低",
    "duplicate": "可能重复",
    "rule_conflict": "关键词规则与模型不一致",
    "urgent": "居民反映紧急",
    "returned": "派遣退回",
}
_PHONE_RE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")


def mask(text: str | None) -> str:
    """Phone, ID and bank card numbers masked (``nlp.mask_pii``; a phone-only fallback without nlp)."""
    if not text:
        return text or ""
    return mask_pii(text)


def mask_sender(sender: str | None) -> str:
    scheme, _, ident = (sender or "").partition(":")
    if scheme == "tel":
        return f"tel:{mask(ident)}"
    if len(ident) > 8:
        ident = f"{ident[:4]}…{ident[-3:]}"
    return f"{scheme}:{ident}" if ident else scheme


@dataclass(frozen=True)
class QueueFilter:
    channel: str = ""
    category: str = ""
    district: str = ""
    date_from: date | None = None
    date_to: date | None = None

    @classmethod
    def from_query(cls, query: Any) -> QueueFilter:
        return cls(
            channel=query.get("channel", "").strip()[:32],
            category=query.get("category", "").strip()[:16],
            district=query.get("district", "").strip()[:100],
            date_from=_date(query.get("from", "")),
            date_to=_date(query.get("to", "")),
        )

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        if self.channel:
            stmt = stmt.where(Report.channel == self.channel)
        if self.category:
            stmt = stmt.where(or_(Report.category_code == self.category, Report.category_parent == self.category))
        if self.district:
            like = f"%{_escape_like(self.district)}%"
            stmt = stmt.where(or_(Report.location_address.like(like, escape="\\"), Report.text.like(like, escape="\\")))
        if self.date_from:
            stmt = stmt.where(Report.created_at >= _local_midnight(self.date_from))
        if self.date_to:
            stmt = stmt.where(Report.created_at < _local_midnight(self.date_to + timedelta(days=1)))
        return stmt

    def as_query(self) -> dict[str, str]:
        out = {"channel": self.channel, "category": self.category, "district": self.district}
        out["from"] = self.date_from.isoformat() if self.date_from else ""
        out["to"] = self.date_to.isoformat() if self.date_to else ""
        return out


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip()) if value.strip() else None
    except ValueError:
        return None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), LOCAL_TZ)


@dataclass
class Duplicate:
    case_number: str
    score: float
    status: str
    text: str
    address: str
    created_at: datetime


@dataclass
class QueueItem:
    report: Report
    title: str
    text: str
    address: str
    sender: str
    phone: str
    pii_masked: dict[str, bool]  # field -> whether masking changed it (an admin may reveal it)
    candidates: list[dict[str, Any]]
    reasons: list[tuple[str, str]]
    duplicates: list[Duplicate] = field(default_factory=list)

    @property
    def case_number(self) -> str:
        return self.report.case_number


def present(report: Report, duplicates: list[Duplicate]) -> QueueItem:
    title, text, address = mask(report.title), mask(report.text), mask(report.location_address)
    phone = mask(report.contact_phone)
    return QueueItem(
        report=report,
        title=title,
        text=text,
        address=address,
        sender=mask_sender(report.sender),
        phone=phone,
        pii_masked={
            "text": text != (report.text or "") or title != (report.title or ""),
            "contact_phone": phone != (report.contact_phone or ""),
            "sender": mask_sender(report.sender) != report.sender,
        },
        candidates=sorted(report.category_candidates or [], key=lambda c: -float(c.get("confidence") or 0))[:3],
        reasons=reasons_of(report, duplicates),
        duplicates=duplicates,
    )


def reasons_of(report: Report, duplicates: list[Duplicate]) -> list[tuple[str, str]]:
    """Why a report waits for a moderator, most telling first."""
    found: list[str] = []
    if report.urgent:
        found.append("urgent")
    entry = next((h for h in reversed(report.history) if h.to_status == Status.NEEDS_REVIEW), None)
    if entry is not None and entry.from_status in (Status.READY, Status.DISPATCHED, Status.ACCEPTED):
        found.append("returned")
    if report.category_set_by in ("no_text", "not_chinese"):
        found.append(report.category_set_by)
    if not report.category_code or report.category_set_by == "placeholder":
        found.append("unclassified")
    elif report.category_set_by == "model" and _below_threshold(report):
        found.append("low_confidence")
    top = (report.category_candidates or [{}])[0].get("code")
    own_top = report.category_parent or report.category_code
    if report.category_set_by == "rule" or (top and own_top and top != own_top):
        found.append("rule_conflict")
    if duplicates or report.duplicate_of:
        found.append("duplicate")
    return [(key, REASONS[key]) for key in dict.fromkeys(found)]


def _below_threshold(report: Report) -> bool:
    """The classifier's confidence was below its category's threshold: the pipeline then sends the
    classified report to review with the note "low confidence" (not for duplicates, urgent or
    returned reports, which are in the queue for those reasons)."""
    return any(
        h.from_status == Status.CLASSIFIED and h.to_status == Status.NEEDS_REVIEW and h.note == "low confidence"
        for h in report.history
    )


def _queue_stmt(flt: QueueFilter) -> Select[Any]:
    stmt = select(Report).where(Report.status == Status.NEEDS_REVIEW)
    return flt.apply(stmt)


async def load_queue(db: Database, flt: QueueFilter, *, limit: int = PAGE_SIZE) -> tuple[list[QueueItem], int]:
    """One page of the queue and the size of the whole filtered queue."""
    async with db.session() as s:
        total = int(await s.scalar(select(func.count()).select_from(_queue_stmt(flt).subquery())) or 0)
        reports = list(
            (
                await s.scalars(
                    _queue_stmt(flt)
                    .options(selectinload(Report.media), selectinload(Report.history))
                    .order_by(Report.urgent.desc(), Report.priority.asc(), Report.created_at.asc(), Report.id.asc())
                    .limit(limit)
                )
            ).all()
        )
    dups = await find_duplicates(db, reports)
    return [present(r, dups.get(r.case_number, [])) for r in reports], total


async def load_item(db: Database, case: str) -> QueueItem | None:
    async with db.session() as s:
        report = await s.scalar(
            select(Report)
            .where(Report.case_number == case)
            .options(selectinload(Report.media), selectinload(Report.history))
        )
    if report is None:
        return None
    dups = await find_duplicates(db, [report])
    return present(report, dups.get(case, []))


async def find_duplicates(db: Database, reports: list[Report]) -> dict[str, list[Duplicate]]:
    """Open reports that look like the same problem, per case number (best first, at most 5)."""
    scored, pool = await near_duplicates(db, reports)
    return {case: [_duplicate(pool[c], value) for c, value in hits[:5]] for case, hits in scored.items()}


def _duplicate(p: Report, score: float) -> Duplicate:
    text = "\n".join(x for x in (p.title, p.text) if x)
    return Duplicate(p.case_number, round(score, 2), p.status, mask(text), mask(p.location_address), p.created_at)


async def channels_in_queue(db: Database) -> list[str]:
    async with db.session() as s:
        rows = await s.scalars(select(Report.channel).where(Report.status == Status.NEEDS_REVIEW).distinct())
        return sorted(rows.all())
