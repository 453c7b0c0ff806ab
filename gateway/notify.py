"""Telling residents what happened, on the channel they used (the ``notify`` task).

A notification row is written in the same transaction as the status change that causes it;
this task sends it through the channel's ``send`` in a worker thread (SDKs block) and records
the outcome. Opted-out residents get nothing; transient failures are retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select

from channels.errors import ChannelMisconfigured, SendRejected, SendRetryable
from gateway.db import Contact, Notification
from gateway.models import OutboundMessage
from gateway.tasks import Retry, TaskContext

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
        if await is_opted_out(s, n.channel, n.recipient):
            n.state, n.error = "skipped", "recipient opted out"
            return
        n.attempts += 1
        msg = OutboundMessage(channel=n.channel, recipient=n.recipient, text=n.text, account=n.account)
    channel = ctx.services["channels"].get(msg.channel)
    acct = ctx.services["accounts"].get((msg.channel, msg.account or "default"))
    try:
        if channel is None or acct is None:
            raise ChannelMisconfigured(f"no channel account {msg.channel}/{msg.account or 'default'}")
        result = await asyncio.to_thread(channel.send, msg, acct)
    except SendRetryable as exc:
        give_up = n.attempts >= MAX_SEND_ATTEMPTS
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
        if external_id:
            n.external_id = external_id
