"""Intake: messages in, a stored report out (de-duplicate → stitch the session → store → commit).

``intake`` is idempotent on (channel, channel message id) and on a client's idempotency key, so
a retried webhook never makes a second report. The report is committed before ``intake``
returns, so a channel answers only after nothing can be lost. Messages of one resident that
arrive within the session window build one draft report (photo, then text, then location);
the draft is closed by a close word (提交/完成), a message that carries a whole report, or the
idle timeout, and only then classified. Background work (classification, media) is enqueued
after commit through the task runner.

Filters (``IntakeFilter``) see the messages first and may answer them instead (a digit reply
after ``resolved`` is a rating): they are passed in by the composition root.

This module is the home of the intake hot path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core import replies
from gateway.core.casenumber import next_case_number
from gateway.core.lifecycle import Status
from gateway.core.units import Units
from gateway.db import Contact, History, Media, Message, Report
from gateway.models import InboundMessage, LocationSource, MessageKind

if TYPE_CHECKING:
    from gateway.metrics import Metrics
    from gateway.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IntakeResult:
    report_id: int | None
    case_number: str | None
    status: str | None
    created: bool = False  # a new report was made
    duplicate: bool = False  # every message had been seen before (a retry)
    session_open: bool = False  # the report is a draft still collecting messages
    reply: str | None = None  # what to tell the resident in the passive reply, if anything


@dataclass
class _Outcome:
    report: Report | None = None
    created: bool = False
    duplicate: bool = False
    closed: bool = False
    new_media: list[int] = field(default_factory=list)
    reply: str | None = None


class IntakeFilter(Protocol):
    """Sees inbound messages before they become a report; a result means "handled" (e.g. a rating)."""

    async def on_intake(self, msgs: Sequence[InboundMessage]) -> IntakeResult | None: ...


class Intake:
    def __init__(
        self,
        units: Units,
        settings: Settings,
        *,
        filters: Sequence[IntakeFilter] = (),
        outbound_channels: frozenset[str] = frozenset(),
        metrics: Metrics | None = None,
    ) -> None:
        self.units = units
        self.settings = settings
        self.filters: tuple[IntakeFilter, ...] = tuple(filters)
        # Channels that can send to residents: only they keep contacts.
        self.outbound_channels = outbound_channels
        self.metrics = metrics

    async def intake(self, messages: Sequence[InboundMessage], *, idempotency_key: str | None = None) -> IntakeResult:
        msgs = [m for m in messages if m.kind != MessageKind.EVENT]
        if not msgs:
            # Events (follow, menu, location reports) make no report; they update the contact.
            events = [m for m in messages if m.kind == MessageKind.EVENT]
            if events:
                await self._note_events(events)
            channel = events[0].channel if events else "*"
            return IntakeResult(None, None, None, reply=replies.event_reply([m.event or "" for m in events], channel))
        for f in self.filters:
            handled = await f.on_intake(msgs)
            if handled is not None:
                return handled
        started = time.perf_counter()
        try:
            outcome = await self._intake_tx(msgs, idempotency_key)
        except IntegrityError:
            # A concurrent retry of the same message (or key) won the race: answer with its report.
            log.info("intake race resolved as duplicate", extra={"channel": msgs[0].channel})
            outcome = await self._intake_tx(msgs, idempotency_key)
            if not outcome.duplicate:
                raise
        report = outcome.report
        if report is None:
            return IntakeResult(None, None, None, reply=outcome.reply)
        for media_id in outcome.new_media:
            await self.units.runner.enqueue("fetch_media", media_id)
        if outcome.closed:
            await self.units.runner.enqueue("classify_report", report.id)
        elif outcome.created:
            await self.units.runner.enqueue("close_session", report.id, delay=self.settings.session_window_s + 1)
        if self.metrics and outcome.created:
            self.metrics.reports_created.labels(channel=report.channel).inc()
            self.metrics.pipeline_seconds.labels(stage="intake").observe(time.perf_counter() - started)
        return IntakeResult(
            report.id,
            report.case_number,
            report.status,
            created=outcome.created,
            duplicate=outcome.duplicate,
            session_open=report.session_open,
            reply=outcome.reply,
        )

    async def _intake_tx(self, msgs: list[InboundMessage], idempotency_key: str | None) -> _Outcome:
        first = msgs[0]
        now = self.units.clock()
        async with self.units.unit() as s:
            if idempotency_key:
                found = await s.scalar(
                    select(Report).where(Report.channel == first.channel, Report.idempotency_key == idempotency_key)
                )
                if found is not None:
                    return _Outcome(found, duplicate=True, reply=replies.DUPLICATE.format(case=found.case_number))
            seen = set(
                (
                    await s.scalars(
                        select(Message.channel_message_id).where(
                            Message.channel == first.channel,
                            Message.channel_message_id.in_([m.channel_message_id for m in msgs]),
                        )
                    )
                ).all()
            )
            fresh = [m for m in msgs if m.channel_message_id not in seen]
            if not fresh:
                return await self._duplicate(s, first)
            contact = await self._touch_contact(s, first, now)
            complete = any(m.complete for m in fresh)
            closing = not complete and all(m.kind == MessageKind.TEXT and replies.is_close_word(m.text) for m in fresh)
            report = None if complete else await self._open_draft(s, first, now)
            if report is None and closing:
                for m in fresh:
                    s.add(message_row(m, None))
                return _Outcome(None, reply=replies.NOTHING_OPEN)
            outcome = _Outcome(report)
            if report is None:
                report = await self._new_report(s, first, now, idempotency_key)
                outcome = _Outcome(report, created=True)
            for m in fresh:
                msg_row = message_row(m, report.id)
                s.add(msg_row)
                await s.flush()
                if not (closing and replies.is_close_word(m.text)):
                    outcome.new_media += await self._append(s, report, m, msg_row.id)
            self._locate_from_contact(report, contact, now)
            if complete or closing:
                report.session_open = False
                report.session_expires_at = None
                outcome.closed = True
            else:
                report.session_open = True
                report.session_expires_at = now + timedelta(seconds=self.settings.session_window_s)
            report.updated_at = now
            outcome.reply = _reply_for(report, outcome, complete, fresh)
            return outcome

    # ------------------------------------------------------------------ contacts

    async def _touch_contact(self, s: AsyncSession, m: InboundMessage, now: datetime) -> Contact | None:
        """The sender's contact row (made on first contact), stamped with this inbound time.

        ``last_inbound_at`` opens reply windows such as WeChat's 48 h; only channels that can
        write back to residents keep contacts. Insert-or-ignore, so concurrent first messages
        of one resident do not collide on the unique (channel, address).
        """
        if m.channel not in self.outbound_channels:
            return None
        insert = sqlite_insert if self.units.db.dialect == "sqlite" else pg_insert
        await s.execute(
            insert(Contact)
            .values(channel=m.channel, address=m.sender, opted_out=False, created_at=now)
            .on_conflict_do_nothing(index_elements=["channel", "address"])
        )
        contact = await s.scalar(
            select(Contact).where(Contact.channel == m.channel, Contact.address == m.sender).with_for_update()
        )
        if contact is not None:
            contact.last_inbound_at = now
        return contact

    async def _note_events(self, events: Sequence[InboundMessage]) -> None:
        """Follow/unfollow and location reports (WeChat ``LOCATION``) update the contact."""
        now = self.units.clock()
        async with self.units.unit() as s:
            for m in events:
                contact = await self._touch_contact(s, m, now)
                if contact is None:
                    continue
                if m.location and m.location.lat is not None and m.location.lng is not None:
                    contact.last_lat, contact.last_lng, contact.last_location_at = m.location.lat, m.location.lng, now
                if m.event == "subscribe" and contact.opted_out:
                    contact.opted_out, contact.opted_out_at = False, None
                elif m.event == "unsubscribe":
                    contact.opted_out, contact.opted_out_at = True, now

    def _locate_from_contact(self, report: Report, contact: Contact | None, now: datetime) -> None:
        """A report without a location takes the resident's recent reported position, if any."""
        if contact is None or report.location_lat is not None or report.location_address:
            return
        max_age = timedelta(seconds=self.settings.contact_location_max_age_s)
        seen = contact.last_location_at
        if seen is None or contact.last_lat is None or contact.last_lng is None or now - seen > max_age:
            return
        report.location_lat, report.location_lng = contact.last_lat, contact.last_lng
        report.location_source = str(LocationSource.GPS)

    async def _duplicate(self, s: AsyncSession, first: InboundMessage) -> _Outcome:
        row = await s.scalar(
            select(Message).where(
                Message.channel == first.channel, Message.channel_message_id == first.channel_message_id
            )
        )
        report = await s.get(Report, row.report_id) if row and row.report_id else None
        reply = replies.DUPLICATE.format(case=report.case_number) if report else None
        return _Outcome(report, duplicate=True, reply=reply)

    async def _open_draft(self, s: AsyncSession, m: InboundMessage, now: datetime) -> Report | None:
        return await s.scalar(
            select(Report)
            .where(
                Report.channel == m.channel,
                Report.sender == m.sender,
                Report.session_open.is_(True),
                Report.session_expires_at > now,
            )
            .order_by(Report.id.desc())
            .limit(1)
            .with_for_update()
        )

    async def _new_report(
        self, s: AsyncSession, m: InboundMessage, now: datetime, idempotency_key: str | None
    ) -> Report:
        case = await next_case_number(s, self.settings.case_prefix, now)
        report = Report(
            case_number=case,
            channel=m.channel,
            account=m.account,
            sender=m.sender,
            text="",
            status=Status.RECEIVED,
            priority="P3",
            urgent=False,
            idempotency_key=idempotency_key,
            created_at=now,
            updated_at=now,
        )
        s.add(report)
        await s.flush()
        s.add(
            History(
                report_id=report.id,
                at=now,
                actor=m.sender,
                action="received",
                to_status=Status.RECEIVED,
                data={"channel": m.channel},
            )
        )
        return report

    async def _append(self, s: AsyncSession, report: Report, m: InboundMessage, message_id: int) -> list[int]:
        if m.title and not report.title:
            report.title = m.title[:200]
        if m.text:
            report.text = f"{report.text}\n{m.text}".strip() if report.text else m.text
        if m.contact_phone and not report.contact_phone:
            report.contact_phone = m.contact_phone
        if m.location and (report.location_lat is None or m.location.source == LocationSource.GPS):
            loc = m.location
            if loc.lat is not None and loc.lng is not None:
                report.location_lat, report.location_lng = loc.lat, loc.lng
            report.location_address = loc.label[:500] if loc.label else report.location_address  # the column's size
            report.location_source = str(loc.source)
        pending = []
        for ref in m.media:
            row = Media(
                report_id=report.id,
                message_id=message_id,
                kind=str(ref.kind),
                provider_id=ref.provider_id,
                url=ref.url,
                sha256=ref.sha256,
                content_type=ref.content_type,
                size=ref.size,
                state="stored" if ref.sha256 else "pending",
                created_at=self.units.clock(),
            )
            s.add(row)
            await s.flush()
            if not ref.sha256:
                pending.append(row.id)
        return pending


def message_row(m: InboundMessage, report_id: int | None) -> Message:
    """The stored form of an inbound message."""
    return Message(
        report_id=report_id,
        channel=m.channel,
        channel_message_id=m.channel_message_id,
        account=m.account,
        sender=m.sender,
        kind=str(m.kind),
        text=m.text,
        received_at=m.received_at,
        raw=m.raw,
    )


def _reply_for(report: Report, outcome: _Outcome, complete: bool, fresh: Sequence[InboundMessage] = ()) -> str:
    case = report.case_number
    if complete:
        return replies.RECEIVED_WEB.format(case=case)
    if outcome.closed:
        return replies.SUBMITTED.format(case=case)
    if not report.text:
        return replies.ask_description([str(m.kind) for m in fresh], case)
    if report.location_lat is None and not report.location_address:
        return replies.ASK_LOCATION.format(case=case)
    return replies.GOT_MORE.format(case=case)
