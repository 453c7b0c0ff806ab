"""The pipeline: messages in, reports out (intake → session stitching → store → classify → route).

``intake`` is idempotent on (channel, channel message id) and on a client's idempotency key, so
a retried webhook never makes a second report. The report is committed before ``intake``
returns, so a channel answers only after nothing can be lost. Messages of one resident that
arrive within the session window build one draft report (photo, then text, then location);
the draft is closed by a close word (提交/完成), a message that carries a whole report, or the
idle timeout, and only then classified. Background work (classification, media, notifications)
is enqueued after commit through the task runner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core import replies
from gateway.core.casenumber import next_case_number
from gateway.core.duplicates import near_duplicates
from gateway.core.lifecycle import Status, check
from gateway.db import Contact, Database, History, Media, Message, Notification, Report, utcnow
from gateway.models import InboundMessage, LocationSource, MessageKind

if TYPE_CHECKING:
    from gateway.core.classify import ReportClassifier
    from gateway.metrics import Metrics
    from gateway.settings import Settings
    from gateway.tasks.runners import TaskRunner

log = logging.getLogger(__name__)

SYSTEM = "system"
# A new report this similar to an open one goes to moderators as a possible duplicate (nlp.dedupe
# scores: cosine of character bigrams, nudged up for nearby coordinates).
DUPLICATE_ROUTE_SCORE = 0.8
# Moves a resident hears about on their channel; the first answer (case number) is the intake reply.
NOTIFY_ON = frozenset({Status.ACCEPTED, Status.IN_PROGRESS, Status.RESOLVED, Status.REJECTED, Status.MERGED})
TransitionHook = Callable[[AsyncSession, Report, str, str], Any]
# Sees inbound messages before they become a report; a result means "handled" (e.g. a rating reply).
IntakeHook = Callable[[Sequence[InboundMessage]], Awaitable["IntakeResult | None"]]


class ReportNotFound(LookupError):
    """No report with that case number or id."""


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


class Pipeline:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        runner: TaskRunner,
        classifier: ReportClassifier,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.settings = settings
        self.runner = runner
        self.classifier = classifier
        self.metrics = metrics
        self.clock = clock
        # Called inside the transaction of every status change (the dispatch outbox hooks here).
        self.transition_hooks: list[TransitionHook] = []
        # Tried in order before session stitching (gateway/dispatch/ratings.py registers one).
        self.intake_hooks: list[IntakeHook] = []
        # Extra sweeps run by ``sweep`` (the dispatch outbox registers one); each returns a count.
        self.sweepers: list[Callable[[], Awaitable[int]]] = []
        # Channels that can send to residents (set by the app from the channel registry).
        self.outbound_channels: frozenset[str] = frozenset()

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[AsyncSession]:
        """A transaction whose ``after_commit`` tasks are enqueued once it has committed."""
        async with self.db.session() as s:
            async with s.begin():
                yield s
            for name, args, delay in s.info.pop("enqueue", []):
                await self.runner.enqueue(name, *args, delay=delay)

    # ------------------------------------------------------------------ intake

    async def intake(self, messages: Sequence[InboundMessage], *, idempotency_key: str | None = None) -> IntakeResult:
        msgs = [m for m in messages if m.kind != MessageKind.EVENT]
        if not msgs:
            # Events (follow, menu, location reports) make no report; they update the contact.
            events = [m for m in messages if m.kind == MessageKind.EVENT]
            if events:
                await self._note_events(events)
            channel = events[0].channel if events else "*"
            return IntakeResult(None, None, None, reply=replies.event_reply([m.event or "" for m in events], channel))
        for hook in self.intake_hooks:
            handled = await hook(msgs)
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
            await self.runner.enqueue("fetch_media", media_id)
        if outcome.closed:
            await self.runner.enqueue("classify_report", report.id)
        elif outcome.created:
            await self.runner.enqueue("close_session", report.id, delay=self.settings.session_window_s + 1)
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
        now = self.clock()
        async with self.unit() as s:
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
        insert = sqlite_insert if self.db.dialect == "sqlite" else pg_insert
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
        now = self.clock()
        async with self.unit() as s:
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
                created_at=self.clock(),
            )
            s.add(row)
            await s.flush()
            if not ref.sha256:
                pending.append(row.id)
        return pending

    # ------------------------------------------------------------------ sessions

    async def close_session(self, report_id: int, *, force: bool = False) -> bool:
        """Close a draft whose window has passed (or any draft when ``force``); True if closed."""
        now = self.clock()
        async with self.unit() as s:
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
        await self.runner.enqueue("classify_report", report_id)
        return True

    async def sweep(self) -> int:
        """Re-enqueue what a crash or restart may have dropped: expired drafts, unclassified reports,
        unsent notifications, media not yet downloaded. Tasks are idempotent, so a second copy of a
        live task is harmless."""
        now = self.clock()
        stuck_before = now - timedelta(seconds=self.settings.stuck_after_s)
        async with self.db.session() as s:
            expired = (
                await s.scalars(
                    select(Report.id).where(Report.session_open.is_(True), Report.session_expires_at <= now)
                )
            ).all()
            stuck = (
                await s.scalars(
                    select(Report.id).where(
                        Report.status == Status.RECEIVED,
                        Report.session_open.is_(False),
                        Report.updated_at <= stuck_before,
                    )
                )
            ).all()
            unfetched = (
                await s.scalars(select(Media.id).where(Media.state == "pending", Media.created_at <= stuck_before))
            ).all()
            unsent = (
                await s.scalars(
                    select(Notification.id).where(
                        Notification.state == "pending", Notification.updated_at <= stuck_before
                    )
                )
            ).all()
        for rid in expired:
            await self.runner.enqueue("close_session", rid)
        for rid in stuck:
            await self.runner.enqueue("classify_report", rid)
        for nid in unsent:
            await self.runner.enqueue("notify", nid)
        for mid in unfetched:
            await self.runner.enqueue("fetch_media", mid)
        extra = 0
        for sweeper in self.sweepers:
            extra += await sweeper()
        return len(expired) + len(stuck) + len(unsent) + len(unfetched) + extra

    # ------------------------------------------------------------------ classification

    async def classify_report(self, report_id: int) -> str | None:
        """Classify a closed report and route it to ``ready`` or ``needs_review``. Idempotent."""
        async with self.db.session() as s:
            report = await s.get(Report, report_id)
            if report is None or report.session_open or report.status != Status.RECEIVED:
                return None
            text = "\n".join(p for p in (report.title, report.text) if p)
        started = time.perf_counter()
        result = await self.classifier.classify(text)
        # Only a report that would go straight to dispatch needs the (costlier) twin check.
        will_dispatch = bool(result.code) and not result.needs_review and not result.urgent
        twins = await self._likely_duplicates(report, result.parent or result.code) if will_dispatch else []
        if self.metrics:
            self.metrics.pipeline_seconds.labels(stage="classify").observe(time.perf_counter() - started)
        async with self.unit() as s:
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
            data = {
                "code": result.code,
                "confidence": result.confidence,
                "model": result.model_version,
                "candidates": result.candidates,
            }
            await self.transition(s, report, Status.CLASSIFIED, SYSTEM, note=result.explanation or None, data=data)
            # Urgent (P1) cases skip the moderation queue: a person must act now, not triage. A likely
            # twin of an open case goes to moderators to merge rather than being dispatched twice.
            confident = (result.urgent or not result.needs_review) and result.code
            target = Status.READY if confident and (result.urgent or not twins) else Status.NEEDS_REVIEW
            if result.urgent:
                reason = "urgent"
            elif twins:
                reason = "possible duplicate of " + ", ".join(case for case, _ in twins[:3])
            else:
                reason = "low confidence" if result.needs_review else "confident"
            dup_data = (
                {"possible_duplicates": [{"case_number": c, "score": v} for c, v in twins[:5]]} if twins else None
            )
            await self.transition(s, report, target, SYSTEM, note=reason, data=dup_data)
            return report.status

    async def _likely_duplicates(self, report: Report, parent: str | None) -> list[tuple[str, float]]:
        """Open reports of the same top-level category this one very likely repeats (score at
        least ``DUPLICATE_ROUTE_SCORE``)."""
        try:
            scored, _ = await near_duplicates(self.db, [report], parent=parent)
        except ImportError:  # nlp is part of this distribution; only a broken install lacks it
            return []
        return [(case, value) for case, value in scored.get(report.case_number, []) if value >= DUPLICATE_ROUTE_SCORE]

    # ------------------------------------------------------------------ lifecycle

    async def transition(
        self,
        s: AsyncSession,
        report: Report,
        target: str,
        actor: str,
        *,
        note: str | None = None,
        data: dict[str, Any] | None = None,
        action: str = "status",
    ) -> None:
        """Move a report (inside the caller's transaction); refuses what the lifecycle forbids."""
        current = report.status
        check(report.case_number, current, target)
        now = self.clock()
        report.status = str(target)
        report.updated_at = now
        s.add(
            History(
                report_id=report.id,
                at=now,
                actor=actor,
                action=action,
                from_status=current,
                to_status=str(target),
                note=note,
                data=data,
            )
        )
        await self._status_news(s, report, str(target), note)
        for hook in self.transition_hooks:
            result = hook(s, report, current, str(target))
            if hasattr(result, "__await__"):
                await result
        if self.metrics:
            self.metrics.report_transitions.labels(channel=report.channel, status=str(target)).inc()

    async def _status_news(self, s: AsyncSession, report: Report, target: str, note: str | None) -> None:
        """Queue news for the resident on their own channel (the web status page shows every move)."""
        if target not in NOTIFY_ON or report.channel not in self.outbound_channels:
            return
        extra = report.duplicate_of if target == Status.MERGED else note
        text = replies.status_news(target, report.case_number, extra)
        if text:
            notification = Notification(
                report_id=report.id,
                channel=report.channel,
                account=report.account,
                recipient=report.sender,
                kind="status",
                text=text,
                state="pending",
            )
            s.add(notification)
            await s.flush()
            after_commit(s, "notify", notification.id)

    async def change_status(self, case_number: str, target: str, actor: str, *, note: str | None = None) -> Report:
        async with self.unit() as s:
            report = await s.scalar(select(Report).where(Report.case_number == case_number).with_for_update())
            if report is None:
                raise ReportNotFound(case_number)
            await self.transition(s, report, target, actor, note=note)
            return report


def after_commit(s: AsyncSession, task: str, *args: Any, delay: float = 0) -> None:
    """Enqueue ``task`` once the transaction of ``s`` (opened by ``Pipeline.unit``) commits."""
    s.info.setdefault("enqueue", []).append((task, args, delay))


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
        return replies.ask_description([str(m.kind) for m in fresh])
    if report.location_lat is None and not report.location_address:
        return replies.ASK_LOCATION.format(case=case)
    return replies.GOT_MORE.format(case=case)
