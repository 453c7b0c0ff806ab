"""The generic channel endpoint: ``/channels/{channel}`` and ``/channels/{channel}/{account}``.

verify → parse → intake (de-duplicate, store, commit) → ack. Nothing else happens inside the
provider's request: classification, media downloads and replies run as tasks. Caller problems
are answered here (403 bad signature and nothing stored, 400 malformed, 413 too large); our own
failures propagate as 5xx so the provider retries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from aiohttp import web
from multidict import MultiDict

from channels.base import (
    Account,
    BaseChannel,
    RawRequest,
    RawResponse,
    Reply,
    SupportsDeliveryReports,
    SupportsHandshake,
)
from channels.errors import BadPayload, InvalidSignature, PayloadTooLarge
from gateway import keys
from gateway.admission import check_messages
from gateway.models import InboundMessage
from gateway.notify import record_delivery_report

log = logging.getLogger(__name__)

ACCOUNTS: web.AppKey[dict[tuple[str, str], Account]] = web.AppKey("channel_accounts")  # (channel, account) -> Account


def load_accounts(channels: dict[str, BaseChannel], settings: Mapping[str, object]) -> dict[tuple[str, str], Account]:
    found: dict[tuple[str, str], Account] = {}
    for name, channel in channels.items():
        for acct_name, acct in type(channel).accounts(settings).items():
            found[(name, acct_name)] = acct
    return found


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _to_web(resp: RawResponse) -> web.Response:
    return web.Response(status=resp.status, body=resp.body, content_type=resp.content_type, headers=dict(resp.headers))


async def raw_request(request: web.Request, limit: int) -> RawRequest:
    body = await _read_body(request, limit)
    public = request.app[keys.SETTINGS].public_url.rstrip("/")
    form: dict[str, str] = {}
    if request.content_type == "application/x-www-form-urlencoded" and body:
        from urllib.parse import parse_qsl

        form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    return RawRequest(
        method=request.method,
        url=f"{public}{request.rel_url}",
        headers=dict(request.headers),
        query=MultiDict(request.query),
        body=body,
        form=form,
    )


# Column sizes of what identifies a message (gateway/db.py): longer is a bad payload, not a 500.
_LIMITS = {"sender": 255, "channel_message_id": 255, "account": 64}


def _check_sizes(msgs: Sequence[InboundMessage]) -> None:
    for m in msgs:
        for name, limit in _LIMITS.items():
            value = getattr(m, name) or ""
            if len(value) > limit:
                raise BadPayload(f"{name} longer than {limit} characters", fields={name: "too long"})
    check_messages(msgs)  # every field against its column; NUL and lone surrogates anywhere


async def channel_endpoint(request: web.Request) -> web.Response:
    name = request.match_info["channel"]
    acct_name = request.match_info.get("account", "default")
    channel = request.app[keys.CHANNELS].get(name)
    acct = request.app[ACCOUNTS].get((name, acct_name))
    if channel is None or acct is None or name == "web":
        raise web.HTTPNotFound(text=f"no channel {name}/{acct_name}")
    log_extra = {"channel": name, "account": acct_name}
    try:
        raw = await raw_request(request, channel.max_body_bytes)
        if request.method == "GET":
            if not isinstance(channel, SupportsHandshake):
                raise web.HTTPMethodNotAllowed("GET", ["POST"])
            return _to_web(channel.handshake(raw, acct))
        channel.verify(raw, acct)
        msgs = channel.parse(raw, acct)
        _check_sizes(msgs)
    except InvalidSignature as exc:
        log.warning("channel request refused: bad signature", extra={**log_extra, "reason": str(exc)})
        raise web.HTTPForbidden(text="invalid signature") from None
    except PayloadTooLarge as exc:
        log.warning("channel request refused: too large", extra=log_extra)
        raise web.HTTPRequestEntityTooLarge(max_size=channel.max_body_bytes, actual_size=0, text=str(exc)) from None
    except BadPayload as exc:
        log.warning("channel request refused: bad payload", extra={**log_extra, "reason": str(exc)})
        raise web.HTTPBadRequest(text=str(exc)) from None
    result = await request.app[keys.PIPELINE].intake(msgs)
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
        raw = await raw_request(request, channel.max_body_bytes)
        channel.verify(raw, acct)
        report = reporter.parse_delivery_report(raw, acct)
    except InvalidSignature as exc:
        log.warning("delivery report refused: bad signature", extra={**log_extra, "reason": str(exc)})
        raise web.HTTPForbidden(text="invalid signature") from None
    except PayloadTooLarge as exc:
        raise web.HTTPRequestEntityTooLarge(max_size=channel.max_body_bytes, actual_size=0, text=str(exc)) from None
    except BadPayload as exc:
        log.warning("delivery report refused: bad payload", extra={**log_extra, "reason": str(exc)})
        raise web.HTTPBadRequest(text=str(exc)) from None
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
