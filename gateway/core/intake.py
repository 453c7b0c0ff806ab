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

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core import replies
from gateway.core.casenumber import CaseBlocks, bump, format_case_number, local_day, next_case_number
from gateway.core.groupcommit import GroupCommit
from gateway.core.lifecycle import Status
from gateway.core.units import Units
from gateway.db import Contact, History, Media, Message, Report
from gateway.models import InboundMessage, LocationSource, MediaRef, MessageKind

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


@dataclass(frozen=True, slots=True)
class _Done:
    """What one intake stored, as plain values (the batch path has no ORM objects)."""

    report_id: int | None = None
    case_number: str | None = None
    status: str | None = None
    channel: str = ""
    session_open: bool = False
    created: bool = False
    duplicate: bool = False
    closed: bool = False
    new_media: tuple[int, ...] = ()
    reply: str | None = None

    @classmethod
    def of(cls, outcome: _Outcome) -> _Done:
        r = outcome.report
        return cls(
            report_id=r.id if r else None,
            case_number=r.case_number if r else None,
            status=r.status if r else None,
            channel=r.channel if r else "",
            session_open=bool(r.session_open) if r else False,
            created=outcome.created,
            duplicate=outcome.duplicate,
            closed=outcome.closed,
            new_media=tuple(outcome.new_media),
            reply=outcome.reply,
        )


@dataclass(frozen=True, slots=True)
class _Item:
    msgs: list[InboundMessage]
    key: str | None


class IntakeFilter(Protocol):
    """Sees inbound messages before they become a report; a result means "handled" (e.g. a rating)."""

    async def on_intake(self, msgs: Sequence[InboundMessage]) -> IntakeResult | None: ...


class Overloaded(Exception):
    """Intake is saturated (``intake_max_in_flight``): answer at once with what the provider retries."""


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
        sqlite = units.db.dialect == "sqlite"
        # SQLite has one connection per process: one batch at a time. PostgreSQL: several.
        parallel = 1 if sqlite else settings.intake_parallel_batches
        self._commit: GroupCommit[_Item, _Done] = GroupCommit(
            self._run_batch, max_batch=settings.intake_batch_max, parallel=parallel
        )
        counter = units.db.counter_engine
        self._blocks = None if counter is None else CaseBlocks(counter, settings.case_prefix)
        self.in_flight = 0
        self.retried_batches = 0  # batches that failed as a whole and were retried item by item

    async def intake(self, messages: Sequence[InboundMessage], *, idempotency_key: str | None = None) -> IntakeResult:
        msgs = [m for m in messages if m.kind != MessageKind.EVENT]
        if not msgs:
            # Events (follow, menu, location reports) make no report; they update the contact.
            events = [m for m in messages if m.kind == MessageKind.EVENT]
            if events:
                await self._note_events(events)
            channel = events[0].channel if events else "*"
            return IntakeResult(None, None, None, reply=replies.event_reply([m.event or "" for m in events], channel))
        if self.in_flight >= self.settings.intake_max_in_flight:
            if self.metrics:
                self.metrics.intake_refused.labels(channel=msgs[0].channel).inc()
            raise Overloaded(f"more than {self.settings.intake_max_in_flight} intakes in flight")
        self.in_flight += 1
        try:
            return await self._intake(msgs, idempotency_key)
        finally:
            self.in_flight -= 1

    async def _intake(self, msgs: list[InboundMessage], idempotency_key: str | None) -> IntakeResult:
        for f in self.filters:
            handled = await f.on_intake(msgs)
            if handled is not None:
                return handled
        started = time.perf_counter()
        done = await self._commit.submit(_Item(msgs, idempotency_key))
        if done.report_id is None:
            return IntakeResult(None, None, None, reply=done.reply)
        for media_id in done.new_media:
            await self.units.runner.enqueue("fetch_media", media_id)
        if not done.closed and done.created:
            await self.units.runner.enqueue("close_session", done.report_id, delay=self.settings.session_window_s + 1)
        if self.metrics and done.created:
            self.metrics.reports_created.labels(channel=done.channel).inc()
            self.metrics.pipeline_seconds.labels(stage="intake").observe(time.perf_counter() - started)
        return IntakeResult(
            done.report_id,
            done.case_number,
            done.status,
            created=done.created,
            duplicate=done.duplicate,
            session_open=done.session_open,
            reply=done.reply,
        )

    # ------------------------------------------------------------------ the batch

    async def _run_batch(self, items: Sequence[_Item]) -> list[_Done | BaseException]:
        """Store the batch, then enqueue one classification task for all its closed reports (the
        task classifies them as one batch, gateway/core/triage.py)."""
        results = await self._store_batch(items)
        closed = [d.report_id for d in results if isinstance(d, _Done) and d.closed and d.report_id is not None]
        if closed:
            await self.units.runner.enqueue("classify_report", *closed)
        return results

    async def _store_batch(self, items: Sequence[_Item]) -> list[_Done | BaseException]:
        """One transaction for the batch (set-based statements); if it fails, item by item."""
        now = self.units.clock()
        numbers: list[str] = []
        try:
            if self._blocks is not None:
                numbers = await self._blocks.take(len(items), now)
            batch = _Batch(self, items, now, numbers)
            done: list[_Done | BaseException] = list(await self.units.db.run_sync(batch.run))
            if self._blocks is not None:
                self._blocks.give_back(numbers[batch.numbers_used :], now)
            return done
        except Exception as exc:
            if self._blocks is not None and numbers:
                self._blocks.give_back(numbers, now)
            if len(items) == 1 and not isinstance(exc, IntegrityError):
                return [exc]
            self.retried_batches += 1
            log.info(
                "intake batch retried item by item",
                extra={"size": len(items), "error": type(exc).__name__},
            )
        results: list[_Done | BaseException] = []
        for item in items:
            try:
                results.append(await self._intake_one(item.msgs, item.key))
            except Exception as exc:  # this item alone fails; its batch-mates are stored
                results.append(exc)
        return results

    async def _intake_one(self, msgs: list[InboundMessage], idempotency_key: str | None) -> _Done:
        """One intake through the ORM, one statement at a time: the path of a failed batch."""
        try:
            outcome = await self._intake_tx(msgs, idempotency_key)
        except IntegrityError:
            # A concurrent retry of the same message (or key) won the race: answer with its report.
            log.info("intake race resolved as duplicate", extra={"channel": msgs[0].channel})
            outcome = await self._intake_tx(msgs, idempotency_key)
            if not outcome.duplicate:
                raise
        return _Done.of(outcome)

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
        _apply(report, m)
        pending = []
        for ref in m.media:
            row = Media(**media_values(ref, report.id, message_id, self.units.clock()))
            s.add(row)
            await s.flush()
            if not ref.sha256:
                pending.append(row.id)
        return pending


def message_row(m: InboundMessage, report_id: int | None) -> Message:
    """The stored form of an inbound message."""
    return Message(**message_values(m, report_id))


def message_values(m: InboundMessage, report_id: int | None) -> dict[str, Any]:
    """A ``messages`` row's columns for ``m`` (the ORM row and the batch's INSERT alike)."""
    return {
        "report_id": report_id,
        "channel": m.channel,
        "channel_message_id": m.channel_message_id,
        "account": m.account,
        "sender": m.sender,
        "kind": str(m.kind),
        "text": m.text,
        "received_at": m.received_at,
        "raw": m.raw,
    }


def media_values(ref: MediaRef, report_id: int | None, message_id: int | None, now: datetime) -> dict[str, Any]:
    """A ``media`` row's columns: stored when the bytes came with the message, else pending a fetch."""
    return {
        "report_id": report_id,
        "message_id": message_id,
        "kind": str(ref.kind),
        "provider_id": ref.provider_id,
        "url": ref.url,
        "sha256": ref.sha256,
        "content_type": ref.content_type,
        "size": ref.size,
        "state": "stored" if ref.sha256 else "pending",
        "attempts": 0,
        "created_at": now,
    }


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


# ---------------------------------------------------------------------- the set-based batch

_REPORTS = cast(Table, Report.__table__)
_MESSAGES = cast(Table, Message.__table__)
_MEDIA = cast(Table, Media.__table__)
_HISTORY = cast(Table, History.__table__)
_CONTACTS = cast(Table, Contact.__table__)
_DRAFT_COLUMNS = (
    "id",
    "case_number",
    "status",
    "channel",
    "sender",
    "title",
    "text",
    "contact_phone",
    "location_lat",
    "location_lng",
    "location_address",
    "location_source",
    "session_open",
    "session_expires_at",
)


# What messages change on a report (``_apply``) and the session: written for new and changed drafts.
_DRAFT_FIELDS = (
    "title",
    "text",
    "contact_phone",
    "location_lat",
    "location_lng",
    "location_address",
    "location_source",
    "session_open",
    "session_expires_at",
)


@dataclass(eq=False)
class _Draft:
    """A report the batch makes or adds to, as the statements will leave it."""

    channel: str
    sender: str
    account: str | None = None
    id: int | None = None
    case_number: str | None = None
    status: str = Status.RECEIVED
    title: str | None = None
    text: str = ""
    contact_phone: str | None = None
    location_lat: float | None = None
    location_lng: float | None = None
    location_address: str | None = None
    location_source: str | None = None
    session_open: bool = True
    session_expires_at: datetime | None = None
    idempotency_key: str | None = None
    new: bool = False
    changed: bool = False

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _DRAFT_FIELDS}


@dataclass(eq=False)
class _NewMessage:
    m: InboundMessage
    draft: _Draft | None
    media: list[MediaRef]
    id: int | None = None


@dataclass(eq=False)
class _Answer:
    """One item's outcome; the reply is written once the case number is known."""

    draft: _Draft | None
    created: bool = False
    duplicate: bool = False
    closed: bool = False
    reply: Callable[[str], str] | None = None
    fixed_reply: str | None = None
    session_open: bool = False
    messages: list[_NewMessage] = field(default_factory=list)
    known: tuple[int, str, str, bool] | None = None  # (id, case, status, session_open) of a stored report


class _Batch:
    """The intake of a batch in a handful of statements, run in one transaction by
    ``Database.run_sync``: look up the messages seen before, the idempotency keys, the contacts
    (upserted, which on PostgreSQL also locks each sender's row until commit, so two processes
    stitch one resident's messages in turn) and the open drafts, all with one statement each;
    then decide every item in order in Python, exactly as the one-message path does; then
    write the new reports, the drafts' changes, history, messages and media with one
    multi-row statement each. The result per item is what the one-message path returns."""

    def __init__(self, intake: Intake, items: Sequence[_Item], now: datetime, numbers: list[str]) -> None:
        self.items = items
        self.now = now
        self.numbers = numbers  # case numbers taken for the batch (PostgreSQL); SQLite bumps in the transaction
        self.numbers_used = 0
        self.prefix = intake.settings.case_prefix
        self.window = timedelta(seconds=intake.settings.session_window_s)
        self.location_max_age = timedelta(seconds=intake.settings.contact_location_max_age_s)
        self.outbound = intake.outbound_channels
        self.pending: dict[int, list[int]] = {}  # id(new message) -> its media still to fetch

    def run(self, conn: Connection) -> list[_Done]:
        seen = self._seen(conn)
        keyed = self._keyed(conn)
        contacts = self._contacts(conn)
        drafts = self._drafts(conn)
        claimed: dict[tuple[str, str], _Answer] = {}
        batch_keys: dict[tuple[str, str], _Answer] = {}
        answers: list[_Answer] = []
        for item in self.items:
            answer = self._decide(item, seen, keyed, contacts, drafts, claimed, batch_keys)
            answers.append(answer)
        self._write(conn, answers)
        return [self._done(a) for a in answers]

    # -------------------------------------------------------------- reads

    def _seen(self, conn: Connection) -> dict[tuple[str, str], tuple[int, str, str, bool] | None]:
        """(channel, message id) of messages stored before → their report, if they have one."""
        wanted: dict[str, set[str]] = {}
        for item in self.items:
            wanted.setdefault(item.msgs[0].channel, set()).update(m.channel_message_id for m in item.msgs)
        seen: dict[tuple[str, str], tuple[int, str, str, bool] | None] = {}
        for channel, ids in wanted.items():
            rows = conn.execute(
                select(
                    _MESSAGES.c.channel_message_id,
                    _REPORTS.c.id,
                    _REPORTS.c.case_number,
                    _REPORTS.c.status,
                    _REPORTS.c.session_open,
                )
                .select_from(_MESSAGES.outerjoin(_REPORTS, _REPORTS.c.id == _MESSAGES.c.report_id))
                .where(_MESSAGES.c.channel == channel, _MESSAGES.c.channel_message_id.in_(sorted(ids)))
            )
            for cmid, rid, case, status, open_ in rows:
                seen[(channel, cmid)] = None if rid is None else (rid, case, status, bool(open_))
        return seen

    def _keyed(self, conn: Connection) -> dict[tuple[str, str], tuple[int, str, str, bool]]:
        wanted: dict[str, set[str]] = {}
        for item in self.items:
            if item.key:
                wanted.setdefault(item.msgs[0].channel, set()).add(item.key)
        found: dict[tuple[str, str], tuple[int, str, str, bool]] = {}
        for channel, keys in wanted.items():
            rows = conn.execute(
                select(
                    _REPORTS.c.idempotency_key,
                    _REPORTS.c.id,
                    _REPORTS.c.case_number,
                    _REPORTS.c.status,
                    _REPORTS.c.session_open,
                ).where(_REPORTS.c.channel == channel, _REPORTS.c.idempotency_key.in_(sorted(keys)))
            )
            for key, rid, case, status, open_ in rows:
                found[(channel, key)] = (rid, case, status, bool(open_))
        return found

    def _contacts(self, conn: Connection) -> dict[tuple[str, str], tuple[float | None, float | None, datetime | None]]:
        """Upsert the senders' contacts (stamping the inbound time) → their last position."""
        senders = sorted(
            {(i.msgs[0].channel, i.msgs[0].sender) for i in self.items if i.msgs[0].channel in self.outbound}
        )
        if not senders:
            return {}
        # One statement for every sender, compiled once (executemany: SQLAlchemy's insertmanyvalues
        # sends it as multi-row INSERTs), so a batch of any size reuses the cached statement.
        stmt = _contact_upsert(conn.dialect.name)
        rows = conn.execute(
            stmt,
            [
                {"channel": c, "address": a, "opted_out": False, "created_at": self.now, "last_inbound_at": self.now}
                for c, a in senders
            ],
        )
        return {(c, a): (lat, lng, at) for c, a, lat, lng, at in rows}

    def _drafts(self, conn: Connection) -> dict[tuple[str, str], _Draft]:
        """Each sender's open draft (the newest), locked on PostgreSQL until commit."""
        wanted: dict[str, set[str]] = {}
        for item in self.items:
            first = item.msgs[0]
            if not any(m.complete for m in item.msgs):
                wanted.setdefault(first.channel, set()).add(first.sender)
        drafts: dict[tuple[str, str], _Draft] = {}
        for channel, senders in wanted.items():
            rows = conn.execute(
                select(*(_REPORTS.c[name] for name in _DRAFT_COLUMNS))
                .where(
                    _REPORTS.c.channel == channel,
                    _REPORTS.c.sender.in_(sorted(senders)),
                    _REPORTS.c.session_open.is_(True),
                    _REPORTS.c.session_expires_at > self.now,
                )
                .order_by(_REPORTS.c.id)
                .with_for_update()
            )
            for row in rows.mappings():
                draft = _Draft(**{k: row[k] for k in _DRAFT_COLUMNS})
                drafts[(draft.channel, draft.sender)] = draft  # ordered by id: the newest wins
        return drafts

    # -------------------------------------------------------------- decisions

    def _decide(
        self,
        item: _Item,
        seen: dict[tuple[str, str], tuple[int, str, str, bool] | None],
        keyed: dict[tuple[str, str], tuple[int, str, str, bool]],
        contacts: dict[tuple[str, str], tuple[float | None, float | None, datetime | None]],
        drafts: dict[tuple[str, str], _Draft],
        claimed: dict[tuple[str, str], _Answer],
        batch_keys: dict[tuple[str, str], _Answer],
    ) -> _Answer:
        msgs, first = item.msgs, item.msgs[0]
        channel = first.channel
        if item.key:
            if (channel, item.key) in keyed:
                return self._stored_duplicate(keyed[(channel, item.key)])
            if (channel, item.key) in batch_keys:
                return _Answer(batch_keys[(channel, item.key)].draft, duplicate=True, reply=_fmt(replies.DUPLICATE))
        fresh = [
            m
            for m in msgs
            if (channel, m.channel_message_id) not in seen and (channel, m.channel_message_id) not in claimed
        ]
        if not fresh:
            key = (channel, first.channel_message_id)
            if key in claimed:  # the same message twice in this batch (a provider retry racing itself)
                twin = claimed[key]
                return _Answer(twin.draft, duplicate=True, reply=_fmt(replies.DUPLICATE) if twin.draft else None)
            stored = seen.get(key)
            return self._stored_duplicate(stored) if stored else _Answer(None, duplicate=True)
        complete = any(m.complete for m in fresh)
        closing = not complete and all(m.kind == MessageKind.TEXT and replies.is_close_word(m.text) for m in fresh)
        draft = None if complete else drafts.get((channel, first.sender))
        if draft is None and closing:
            answer = _Answer(None, fixed_reply=replies.NOTHING_OPEN)
            answer.messages = [_NewMessage(m, None, []) for m in fresh]
            for m in fresh:
                claimed[(channel, m.channel_message_id)] = answer
            return answer
        created = draft is None
        if draft is None:
            draft = _Draft(channel=channel, sender=first.sender, account=first.account, new=True)
            draft.idempotency_key = item.key
        answer = _Answer(draft, created=created)
        if item.key:
            batch_keys[(channel, item.key)] = answer
        for m in fresh:
            claimed[(channel, m.channel_message_id)] = answer
            close_word = closing and replies.is_close_word(m.text)
            answer.messages.append(_NewMessage(m, draft, [] if close_word else list(m.media)))
            if not close_word:
                _apply(draft, m)
        self._locate_from_contact(draft, contacts.get((channel, first.sender)))
        draft.changed = True
        if complete or closing:
            draft.session_open, draft.session_expires_at = False, None
            answer.closed = True
            drafts.pop((channel, first.sender), None)
        else:
            draft.session_open, draft.session_expires_at = True, self.now + self.window
            drafts[(channel, first.sender)] = draft
        answer.session_open = draft.session_open
        answer.reply = _reply_template(draft, answer.closed, complete, fresh)
        return answer

    def _stored_duplicate(self, stored: tuple[int, str, str, bool]) -> _Answer:
        return _Answer(None, duplicate=True, known=stored, reply=_fmt(replies.DUPLICATE))

    def _locate_from_contact(
        self, draft: _Draft, contact: tuple[float | None, float | None, datetime | None] | None
    ) -> None:
        """A report without a location takes the resident's recent reported position, if any."""
        if contact is None or draft.location_lat is not None or draft.location_address:
            return
        lat, lng, seen = contact
        if seen is None or lat is None or lng is None or self.now - seen > self.location_max_age:
            return
        draft.location_lat, draft.location_lng = lat, lng
        draft.location_source = str(LocationSource.GPS)

    # -------------------------------------------------------------- writes

    def _write(self, conn: Connection, answers: list[_Answer]) -> None:
        new = [a.draft for a in answers if a.created and a.draft is not None]
        self._number(conn, new)
        if new:
            rows = conn.execute(
                insert(_REPORTS).returning(_REPORTS.c.id, sort_by_parameter_order=True),
                [
                    {
                        **d.fields(),
                        "case_number": d.case_number,
                        "channel": d.channel,
                        "account": d.account,
                        "sender": d.sender,
                        "status": str(Status.RECEIVED),
                        "priority": "P3",
                        "urgent": False,
                        "idempotency_key": d.idempotency_key,
                        "created_at": self.now,
                        "updated_at": self.now,
                    }
                    for d in new
                ],
            )
            for d, (rid,) in zip(new, rows, strict=True):
                d.id = rid
            conn.execute(
                insert(_HISTORY),
                [
                    {
                        "report_id": d.id,
                        "at": self.now,
                        "actor": d.sender,
                        "action": "received",
                        "to_status": str(Status.RECEIVED),
                        "data": {"channel": d.channel},
                    }
                    for d in new
                ],
            )
        changed = {id(a.draft): a.draft for a in answers if a.draft is not None and not a.draft.new and a.draft.changed}
        if changed:
            conn.execute(
                update(_REPORTS).where(_REPORTS.c.id == bindparam("rid")),
                [{**d.fields(), "rid": d.id, "updated_at": self.now} for d in changed.values()],
            )
        stored = [nm for a in answers for nm in a.messages]
        if stored:
            rows = conn.execute(
                insert(_MESSAGES).returning(_MESSAGES.c.id, sort_by_parameter_order=True),
                [message_values(nm.m, nm.draft.id if nm.draft else None) for nm in stored],
            )
            for nm, (mid,) in zip(stored, rows, strict=True):
                nm.id = mid
        media = [(nm, ref) for nm in stored for ref in nm.media]
        if media:
            rows = conn.execute(
                insert(_MEDIA).returning(_MEDIA.c.id, sort_by_parameter_order=True),
                [media_values(ref, nm.draft.id if nm.draft else None, nm.id, self.now) for nm, ref in media],
            )
            for (nm, ref), (media_id,) in zip(media, rows, strict=True):
                if not ref.sha256:
                    self.pending.setdefault(id(nm), []).append(media_id)

    def _number(self, conn: Connection, new: list[_Draft]) -> None:
        """Case numbers for the new reports: taken before the batch (PostgreSQL) or bumped here."""
        if not new:
            return
        if self.numbers:
            for d, case in zip(new, self.numbers, strict=False):
                d.case_number = case
            self.numbers_used = len(new)
            if len(new) > len(self.numbers):
                raise RuntimeError("fewer case numbers taken than reports made")
            return
        day = local_day(self.now)
        last = conn.execute(bump(conn.dialect.name, self.prefix, day, len(new))).scalar_one()
        for offset, d in enumerate(new):
            d.case_number = format_case_number(self.prefix, day, last - len(new) + 1 + offset)

    def _done(self, a: _Answer) -> _Done:
        if a.known is not None:
            rid, case, status, open_ = a.known
            return _Done(rid, case, status, "", open_, duplicate=True, reply=a.reply(case) if a.reply else None)
        d = a.draft
        if d is None:
            return _Done(duplicate=a.duplicate, reply=a.fixed_reply)
        case = d.case_number or ""
        return _Done(
            report_id=d.id,
            case_number=d.case_number,
            status=d.status,
            channel=d.channel,
            session_open=a.session_open if not a.duplicate else d.session_open,
            created=a.created,
            duplicate=a.duplicate,
            closed=a.closed,
            new_media=tuple(mid for nm in a.messages for mid in self.pending.get(id(nm), [])),
            reply=a.reply(case) if a.reply else a.fixed_reply,
        )


@functools.cache
def _contact_upsert(dialect: str) -> Any:
    """Insert-or-touch a contact: a new one, or ``last_inbound_at`` of the known one; → its position."""
    insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert_(_CONTACTS)
    return stmt.on_conflict_do_update(
        index_elements=["channel", "address"], set_={"last_inbound_at": stmt.excluded.last_inbound_at}
    ).returning(
        _CONTACTS.c.channel,
        _CONTACTS.c.address,
        _CONTACTS.c.last_lat,
        _CONTACTS.c.last_lng,
        _CONTACTS.c.last_location_at,
    )


def _apply(draft: _Draft | Report, m: InboundMessage) -> None:
    """One message's contribution to its report (both paths: the batch's draft, the ORM row)."""
    if m.title and not draft.title:
        draft.title = m.title[:200]
    if m.text:
        draft.text = f"{draft.text}\n{m.text}".strip() if draft.text else m.text
    if m.contact_phone and not draft.contact_phone:
        draft.contact_phone = m.contact_phone
    if m.location and (draft.location_lat is None or m.location.source == LocationSource.GPS):
        loc = m.location
        if loc.lat is not None and loc.lng is not None:
            draft.location_lat, draft.location_lng = loc.lat, loc.lng
        draft.location_address = loc.label[:500] if loc.label else draft.location_address  # the column's size
        draft.location_source = str(loc.source)


def _reply_template(
    draft: _Draft, closed: bool, complete: bool, fresh: Sequence[InboundMessage]
) -> Callable[[str], str]:
    """``_reply_for`` of the batch path: the reply as it stands after this item, given the case."""
    if complete:
        return _fmt(replies.RECEIVED_WEB)
    if closed:
        return _fmt(replies.SUBMITTED)
    if not draft.text:
        kinds = [str(m.kind) for m in fresh]
        return lambda case: replies.ask_description(kinds, case)
    if draft.location_lat is None and not draft.location_address:
        return _fmt(replies.ASK_LOCATION)
    return _fmt(replies.GOT_MORE)


def _fmt(template: str) -> Callable[[str], str]:
    return lambda case: template.format(case=case)
