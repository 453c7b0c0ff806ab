"""Telling residents what happened, on the channel they used (the ``notify`` task).

A notification row is written in the same transaction as the status change that causes it;
this task sends it through the channel's ``send`` in a worker thread (SDKs block) and records
the outcome. Opted-out residents get nothing; transient failures are retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from channels.errors import ChannelMisconfigured, SendRejected, SendRetryable
from gateway.core.leases import boot_id, held
from gateway.db import Contact, Notification
from gateway.models import DeliveryReport, OutboundMessage
from gateway.tasks.runners import Retry, TaskContext

if TYPE_CHECKING:
    from gateway.core.pipeline import Pipeline

log = logging.getLogger(__name__)
MAX_SEND_ATTEMPTS = 8


async def is_opted_out(session: object, channel: str, address: str) -> bool:
    contact = await session.scalar(  # type: ignore[attr-defined]
        select(Contact).where(Contact.channel == channel, Contact.address == address)
    )
    return bool(contact and contact.opted_out)


async def notify(ctx: TaskContext, notification_id: int) -> None:
    pipeline = ctx.pipeline
    async with pipeline.unit() as s:
        n = await s.get(Notification, notification_id, with_for_update=True)
        if n is None or n.state != "pending":
            return  # already handled: the task is idempotent
        if await held(s, n.claimed_by):
            return  # another copy is sending it now (gateway/core/leases.py)
        if await is_opted_out(s, n.channel, n.recipient):
            n.state, n.error = "skipped", "recipient opted out"
            return
        n.attempts += 1
        n.claimed_by = boot_id()
        msg = OutboundMessage(channel=n.channel, recipient=n.recipient, text=n.text, account=n.account)
    try:
        await _send(ctx, pipeline, notification_id, msg, n.attempts)  # ``_record`` releases the claim
    except Exception:
        await _release(pipeline, notification_id)
        raise


async def _send(
    ctx: TaskContext, pipeline: Pipeline, notification_id: int, msg: OutboundMessage, attempts: int
) -> None:
    channel = ctx.services["channels"].get(msg.channel)
    acct = ctx.services["accounts"].get((msg.channel, msg.account or "default"))
    try:
        if channel is None or acct is None:
            raise ChannelMisconfigured(f"no channel account {msg.channel}/{msg.account or 'default'}")
        result = await asyncio.to_thread(channel.send, msg, acct)
    except SendRetryable as exc:
        give_up = attempts >= MAX_SEND_ATTEMPTS
        await _record(pipeline, notification_id, "failed" if give_up else "pending", error=str(exc))
        if not give_up:
            raise Retry(str(exc)) from exc
        return
    except (SendRejected, ChannelMisconfigured) as exc:
        log.warning("notification not sent", extra={"notification": notification_id, "error": str(exc)})
        await _record(pipeline, notification_id, "failed", error=str(exc))
        return
    await _record(pipeline, notification_id, result.status or "sent", external_id=result.external_id)


async def _record(
    pipeline: object, notification_id: int, state: str, *, error: str | None = None, external_id: str | None = None
) -> None:
    async with pipeline.unit() as s:  # type: ignore[attr-defined]
        n = await s.get(Notification, notification_id, with_for_update=True)
        if n is None:
            return
        n.state = state
        n.error = error
        n.claimed_by = None
        if external_id:
            n.external_id = external_id


async def _release(pipeline: Pipeline, notification_id: int) -> None:
    async with pipeline.unit() as s:
        await s.execute(
            update(Notification)
            .where(Notification.id == notification_id, Notification.claimed_by == boot_id())
            .values(claimed_by=None)
        )


# A late report never moves a notification back (Twilio may post "sent" after "delivered").
_RANK = {"pending": 0, "sent": 1, "undelivered": 2, "failed": 2, "delivered": 3}


async def record_delivery_report(pipeline: Pipeline, channel: str, report: DeliveryReport) -> bool:
    """Record a provider's delivery report on its notification; False when no notification has that id.

    A report that the recipient opted out at the provider (they replied STOP there) marks the
    contact, so nothing more is sent.
    """
    now = pipeline.clock()
    async with pipeline.unit() as s:
        n = await s.scalar(
            select(Notification)
            .where(Notification.channel == channel, Notification.external_id == report.external_id)
            .with_for_update()
        )
        if n is None:
            return False
        if _RANK.get(report.state, 0) >= _RANK.get(n.state, 0):
            n.state = report.state
            if report.error_code:
                n.error = f"provider error {report.error_code}"
            n.updated_at = now
        if report.opted_out:
            contact = await s.scalar(
                select(Contact).where(Contact.channel == channel, Contact.address == n.recipient).with_for_update()
            )
            if contact is None:
                contact = Contact(channel=channel, address=n.recipient, created_at=now)
                s.add(contact)
            contact.opted_out, contact.opted_out_at = True, now
    return True
