"""SMS delivery callbacks: ``POST /channels/sms/{account}/status``.

The provider (Twilio ``StatusCallback``) reports what became of a message the ``notify`` task
sent: delivered, failed, undelivered. The callback is signature-checked like the inbound
webhook (403 and nothing stored when it fails) and recorded on the ``Notification`` whose
``external_id`` is the provider's message id. Error 21610 means the resident has opted out at
the provider (replied STOP there): the contact is marked so, and nothing more is sent.
Inbound messages, opt-out keywords included, go through the generic channel endpoint.
"""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy import select

from channels.errors import BadPayload, InvalidSignature, PayloadTooLarge
from channels.sms import SmsChannel
from channels.sms_providers import SmsStatus
from gateway import keys
from gateway.channel_routes import ACCOUNTS, raw_request
from gateway.db import Contact, Notification
from gateway.pipeline import Pipeline

log = logging.getLogger(__name__)

# A late callback never moves a notification back (Twilio may post "sent" after "delivered").
_RANK = {"pending": 0, "sent": 1, "undelivered": 2, "failed": 2, "delivered": 3}


async def sms_status(request: web.Request) -> web.Response:
    name = request.match_info["account"]
    channel = request.app[keys.CHANNELS].get(SmsChannel.name)
    acct = request.app[ACCOUNTS].get((SmsChannel.name, name))
    if not isinstance(channel, SmsChannel) or acct is None:
        raise web.HTTPNotFound(text=f"no channel sms/{name}")
    extra = {"channel": "sms", "account": name}
    try:
        raw = await raw_request(request, channel.max_body_bytes)
        channel.verify(raw, acct)
        status = channel.parse_status(raw, acct)
    except InvalidSignature as exc:
        log.warning("sms status refused: bad signature", extra={**extra, "reason": str(exc)})
        raise web.HTTPForbidden(text="invalid signature") from None
    except PayloadTooLarge:
        raise web.HTTPRequestEntityTooLarge(max_size=channel.max_body_bytes, actual_size=0) from None
    except BadPayload as exc:
        log.warning("sms status refused: bad payload", extra={**extra, "reason": str(exc)})
        raise web.HTTPBadRequest(text=str(exc)) from None
    known = await record_status(request.app[keys.PIPELINE], status)
    log.info("sms status", extra={**extra, "state": status.state, "known": known, "error_code": status.error_code})
    return web.Response(status=204)


async def record_status(pipeline: Pipeline, status: SmsStatus) -> bool:
    """Record a delivery report on its notification; False when no notification has that id."""
    now = pipeline.clock()
    async with pipeline.unit() as s:
        n = await s.scalar(
            select(Notification)
            .where(Notification.channel == "sms", Notification.external_id == status.external_id)
            .with_for_update()
        )
        if n is None:
            return False
        if _RANK.get(status.state, 0) >= _RANK.get(n.state, 0):
            n.state = status.state
            if status.error_code:
                n.error = f"provider error {status.error_code}"
            n.updated_at = now
        if status.opted_out:
            contact = await s.scalar(
                select(Contact).where(Contact.channel == "sms", Contact.address == n.recipient).with_for_update()
            )
            if contact is None:
                contact = Contact(channel="sms", address=n.recipient, created_at=now)
                s.add(contact)
            contact.opted_out, contact.opted_out_at = True, now
    return True


def routes() -> list[web.AbstractRouteDef]:
    return [web.post("/channels/sms/{account}/status", sms_status)]
