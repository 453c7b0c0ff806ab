"""Evaluation (统一评价): the resident rates how their case was handled, 1 to 5.

The ``resolved`` news asks for a digit reply (``gateway/core/replies.py``). On the chat channels
(WeChat, SMS, Weibo) an intake hook recognizes a reply such as ``5``, ``4分`` or ``2 太慢了``
from a resident whose case was resolved within ``GATEWAY_RATING_WINDOW_S`` as a rating of
their latest resolved case, and answers it, instead of opening a new report. On the web, the
signed link ``/report/{case}/rate?t=TOKEN`` (``rating_url``) shows a small form
(``gateway/http/rating.py``). One rating per
report; a second one replaces the first. Ratings feed ``GET /api/v1/stats``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core import replies
from gateway.core.intake import IntakeResult, message_row
from gateway.core.lifecycle import Status
from gateway.core.units import Units
from gateway.db import History, Message, Rating, Report
from gateway.models import InboundMessage, MessageKind
from gateway.settings import signing_key

if TYPE_CHECKING:
    from gateway.core.pipeline import Pipeline
    from gateway.settings import Settings

log = logging.getLogger(__name__)

RATED_STATUSES = (Status.RESOLVED, Status.CLOSED)
MAX_CHAT_COMMENT = 200  # a longer text after a digit is more likely a new report than a comment
MAX_COMMENT = 500
_SEP = r"[，,。.!！;；:：、\s]"
# A digit alone, or followed by 分/星 or a separator and an optional short comment; "3号楼…" is not one.
_RATING_RE = re.compile(rf"^\s*([1-5１-５])\s*(?:(?:分|星){_SEP}*|{_SEP}+|$)(.*)$", re.S)


def parse_rating(text: str) -> tuple[int, str | None] | None:
    """``(score, comment)`` when ``text`` reads as a 1-5 rating reply, else None."""
    match = _RATING_RE.match(text or "")
    if match is None:
        return None
    comment = match.group(2).strip()
    if len(comment) > MAX_CHAT_COMMENT:
        return None
    return int(unicodedata.normalize("NFKC", match.group(1))), comment or None


async def store_rating(
    s: AsyncSession, report: Report, score: int, comment: str | None, *, source: str, actor: str, now: datetime
) -> None:
    """Insert or replace the report's rating and write it to the history (comment kept off the public page)."""
    rating = await s.scalar(select(Rating).where(Rating.report_id == report.id))
    if rating is None:
        s.add(Rating(report_id=report.id, score=score, comment=comment, source=source, created_at=now, updated_at=now))
    else:
        rating.score, rating.comment, rating.source, rating.updated_at = score, comment, source, now
    s.add(History(report_id=report.id, at=now, actor=actor, action="rated", data={"score": score, "source": source}))


class Ratings:
    """An ``IntakeFilter``: passed to the pipeline by the composition root."""

    def __init__(self, units: Units, settings: Settings) -> None:
        self.units = units
        self.settings = settings

    async def on_intake(self, msgs: Sequence[InboundMessage]) -> IntakeResult | None:
        """Intake hook: a lone digit reply after ``resolved`` is a rating, not a new report."""
        if len(msgs) != 1 or msgs[0].complete or msgs[0].kind != MessageKind.TEXT:
            return None
        m = msgs[0]
        parsed = parse_rating(m.text)
        if parsed is None:
            return None
        score, comment = parsed
        now = self.units.clock()
        async with self.units.unit() as s:
            seen = await s.scalar(
                select(Message.id).where(
                    Message.channel == m.channel, Message.channel_message_id == m.channel_message_id
                )
            )
            if seen is not None:
                return None  # a provider retry: the pipeline answers it as a duplicate
            report = await self._awaiting(s, m.channel, m.sender, now)
            if report is None:
                return None
            s.add(message_row(m, report.id))
            await store_rating(s, report, score, comment, source="message", actor=m.sender, now=now)
            result = IntakeResult(
                report.id, report.case_number, report.status, reply=replies.rating_thanks(report.case_number, score)
            )
        log.info("rating received", extra={"case": result.case_number, "score": score, "channel": m.channel})
        return result

    async def _awaiting(self, s: AsyncSession, channel: str, sender: str, now: datetime) -> Report | None:
        since = now - timedelta(seconds=self.settings.rating_window_s)
        return await s.scalar(
            select(Report)
            .join(History, History.report_id == Report.id)
            .where(
                Report.channel == channel,
                Report.sender == sender,
                Report.status.in_(RATED_STATUSES),
                History.to_status == Status.RESOLVED,
                History.at >= since,
            )
            .order_by(History.at.desc())
            .limit(1)
        )


def install(pipeline: Pipeline) -> Ratings:
    """For a pipeline built by hand (tests, scripts); the composition root passes ``Ratings`` in."""
    ratings = Ratings(pipeline.units, pipeline.settings)
    pipeline.intake_stage.filters += (ratings,)
    return ratings


# --------------------------------------------------------------------------- the web rating link


def rating_token(settings: Settings, case: str, sender: str) -> str:
    """Bound to the case and to who reported it, so only the reporter's link rates it."""
    message = f"{case}\n{sender}".encode()
    return hmac.new(signing_key(settings, "rating-link"), message, hashlib.sha256).hexdigest()[:32]


def rating_url(settings: Settings, case: str, sender: str) -> str:
    return f"{settings.public_url.rstrip('/')}/report/{case}/rate?t={rating_token(settings, case, sender)}"
