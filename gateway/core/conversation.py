"""Chat messages that are not reports: a greeting, or a question about the resident's own cases.

An ``IntakeFilter`` passed to the pipeline by the composition root (beside the ratings). On the
chat channels (WeChat, SMS, Weibo) a lone text message that is

- a greeting ("你好", "在吗", "hello") gets the account's welcome and guidance, not a case;
- a progress question ("查询", "进度") or a case number gets the status and latest step of the
  sender's own cases: a case number of someone else is answered exactly like one that does not
  exist, so case numbers (sequential) reveal nothing.

Neither stores a message nor opens a report; a provider's retry gets the same answer again.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from gateway.core import replies
from gateway.core.casenumber import CST
from gateway.core.intake import IntakeResult
from gateway.core.units import Units
from gateway.db import History, Report
from gateway.models import InboundMessage, MessageKind

if TYPE_CHECKING:
    from gateway.settings import Settings

GREETINGS = frozenset(
    {
        "你好",
        "您好",
        "你好呀",
        "您好呀",
        "你好啊",
        "在吗",
        "在么",
        "在不在",
        "有人吗",
        "哈喽",
        "嗨",
        "hi",
        "hello",
        "喂",
    }
)
QUERY_WORDS = frozenset({"查询", "进度", "查进度", "查询进度", "案件进度", "我的案件", "查询案件", "处理进度"})
MAX_LISTED = 3
_PUNCT = re.compile(r"[\s,，.。!！?？~～、:：]+")
# Actions without a status change that a resident may read as a step (as on the status page).
ACTION_STEPS = {"session_closed": "已提交", "rated": "已评价", "merged_in": "有相同问题的反映并入本案件"}


def normalized(text: str) -> str:
    return _PUNCT.sub("", unicodedata.normalize("NFKC", text or "")).lower()


class Conversation:
    """An ``IntakeFilter``: answers greetings and progress questions without making a report."""

    def __init__(self, units: Units, settings: Settings) -> None:
        self.units = units
        self.settings = settings
        self._case_re = re.compile(rf"^(?:查询|查|进度)?({re.escape(settings.case_prefix.lower())}\d{{14,}})$")

    async def on_intake(self, msgs: Sequence[InboundMessage]) -> IntakeResult | None:
        if len(msgs) != 1 or msgs[0].complete or msgs[0].kind != MessageKind.TEXT:
            return None
        m = msgs[0]
        words = normalized(m.text)
        if words in GREETINGS:
            return IntakeResult(None, None, None, reply=replies.GREETING)
        found = self._case_re.match(words)
        if found is None and words not in QUERY_WORDS:
            return None
        case = found.group(1).upper() if found else None
        return IntakeResult(None, None, None, reply=await self.progress(m.channel, m.sender, case))

    async def progress(self, channel: str, sender: str, case: str | None) -> str:
        """The status of ``case`` (or of the latest few cases) among the sender's own reports."""
        query = (
            select(Report)
            .options(selectinload(Report.history))
            .where(Report.channel == channel, Report.sender == sender)
            .order_by(Report.created_at.desc(), Report.id.desc())
            .limit(MAX_LISTED)
        )
        if case is not None:
            query = query.where(Report.case_number == case)
        async with self.units.unit() as s:
            found = list(await s.scalars(query))
        if not found:
            return replies.QUERY_NOT_FOUND.format(case=case) if case else replies.QUERY_NONE
        lines = [progress_line(r) for r in found]
        return lines[0] if case else "\n".join([replies.QUERY_HEAD, *lines])


def progress_line(report: Report) -> str:
    label, sentence = replies.resident_status(report.status, report.duplicate_of)
    step, at = latest_step(report.history)
    when = (at or report.updated_at or report.created_at).astimezone(CST).strftime("%m-%d %H:%M")
    return replies.QUERY_LINE.format(case=report.case_number, label=label, sentence=sentence, when=when, step=step)


def latest_step(history: Sequence[History]) -> tuple[str, datetime | None]:
    """The newest history entry a resident may read, as a short phrase, and when it happened."""
    for h in reversed(history):
        if h.to_status:
            label = replies.resident_status(h.to_status)[0]
            note = h.note if h.to_status in ("rejected", "resolved", "closed") and h.note else None
            return (f"{label}（{note}）" if note else label), h.at
        if h.action in ACTION_STEPS:
            return ACTION_STEPS[h.action], h.at
    return replies.resident_status("received")[0], None
