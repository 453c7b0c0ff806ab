"""The generic channel endpoint: ``/channels/{channel}`` and ``/channels/{channel}/{account}``.

verify → parse → replay and flood checks → intake (de-duplicate, store, commit) → ack. Nothing else happens inside the
provider's request: classification, media downloads and replies run as tasks. Caller problems
are answered here (403 bad signature and nothing stored, 400 malformed, 413 too large); our own
failures propagate as 5xx so the provider retries.
"""

from __future__ import annotations

import logging

from aiohttp import web

from channels.base import (
    Account,
    RawResponse,
    Reply,
    SupportsDeliveryReports,
    SupportsHandshake,
)
from channels.errors import BadPayload, ChannelError, InvalidSignature, PayloadTooLarge
from gateway import keys
from gateway.core import replies
from gateway.http import edge
from gateway.http.edge import status_of
from gateway.http.floods import Flooded, check_senders
from gateway.http.replays import check_replay
from gateway.tasks.notify import record_delivery_report

log = logging.getLogger(__name__)
CALLER_ERRORS = (InvalidSignature, PayloadTooLarge, BadPayload)

ACCOUNTS: web.AppKey[dict[tuple[str, str], Account]] = web.AppKey("channel_accounts")  # (channel, account) -> Account


def _to_web(resp: RawResponse) -> web.Response:
    return web.Response(status=resp.status, body=resp.body, content_type=resp.content_type, headers=dict(resp.headers))


def _refused(exc: ChannelError, log_extra: dict[str, str], what: str = "channel request") -> web.HTTPException:
    """A caller error as the provider sees it (the status from the edge's one mapping)."""
    status = status_of(exc)
    if status == 403:
        log.warning(f"{what} refused: bad signature", extra={**log_extra, "reason": str(exc)})
        return web.HTTPForbidden(text="invalid signature")
    if status == 413:
        log.warning(f"{what} refused: too large", extra=log_extra)
        return web.HTTPRequestEntityTooLarge(max_size=0, actual_size=0, text=str(exc))
    log.warning(f"{what} refused: bad payload", extra={**log_extra, "reason": str(exc)})
    return web.HTTPBadRequest(text=str(exc))


async def channel_endpoint(request: web.Request) -> web.Response:
    name = request.match_info["channel"]
    acct_name = request.match_info.get("account", "default")
    channel = request.app[keys.CHANNELS].get(name)
    acct = request.app[ACCOUNTS].get((name, acct_name))
    if channel is None or acct is None or channel.own_routes:
        raise web.HTTPNotFound(text=f"no channel {name}/{acct_name}")
    log_extra = {"channel": name, "account": acct_name}
    try:
        raw = await edge.raw_request(request, channel.max_body_bytes)
        if request.method == "GET":
            if not isinstance(channel, SupportsHandshake):
                raise web.HTTPMethodNotAllowed("GET", ["POST"])
            return _to_web(channel.handshake(raw, acct))
        msgs = edge.parse(channel, raw, acct)
        await check_replay(request, channel, raw, acct, msgs)  # a signed query reused with another body
    except CALLER_ERRORS as exc:
        raise _refused(exc, log_extra) from None
    try:
        await check_senders(request, msgs)
    except Flooded:  # answered on the channel, nothing stored
        return _to_web(channel.ack(raw, acct, msgs, Reply(text=replies.FLOODED)))
    result = await edge.intake(request, msgs)
    log.info(
        "channel request",
        extra={**log_extra, "messages": len(msgs), "case": result.case_number, "duplicate": result.duplicate},
    )
    reply = Reply(text=result.reply, case_number=result.case_number)
    return _to_web(channel.ack(raw, acct, msgs, reply))


async def delivery_report_endpoint(request: web.Request) -> web.Response:
    """``POST /channels/{channel}/{account}/status``: what became of a message we sent."""
    name, acct_name = request.match_info["channel"], request.match_info["account"]
    channel = request.app[keys.CHANNELS].get(name)
    acct = request.app[ACCOUNTS].get((name, acct_name))
    if channel is None or not isinstance(channel, SupportsDeliveryReports) or acct is None:
        raise web.HTTPNotFound(text=f"no delivery reports for {name}/{acct_name}")
    reporter: SupportsDeliveryReports = channel
    log_extra = {"channel": name, "account": acct_name}
    try:
        raw = await edge.raw_request(request, channel.max_body_bytes)
        channel.verify(raw, acct)
        report = reporter.parse_delivery_report(raw, acct)
    except CALLER_ERRORS as exc:
        raise _refused(exc, log_extra, "delivery report") from None
    known = await record_delivery_report(request.app[keys.PIPELINE], name, report)
    log.info(
        "delivery report", extra={**log_extra, "state": report.state, "known": known, "error_code": report.error_code}
    )
    return web.Response(status=204)


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.route("*", "/channels/{channel}", channel_endpoint),
        web.route("*", "/channels/{channel}/{account}", channel_endpoint),
        web.post("/channels/{channel}/{account}/status", delivery_report_endpoint),
    ]
