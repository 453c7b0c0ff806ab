"""The edge every way in shares: capped body read, the channel request, the caller-error →
HTTP-status mapping, the idempotency key, and verify → parse → intake.

Each public API answers in its own format (TwiML, JSON with ``fields``, GeoReport errors, an
HTML form), so the edge raises the channel errors of ``channels/errors.py`` and ``status_of``
gives the one status for each; the API only renders the body.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict

from channels.base import Account, BaseChannel, RawRequest
from channels.errors import BadPayload, InvalidSignature, PayloadTooLarge
from gateway import keys
from gateway.core.intake import IntakeResult
from gateway.http.admission import check_messages
from gateway.models import InboundMessage, MediaRef

MAX_IDEMPOTENCY_KEY = 200
# Caller errors (DESIGN.md, channels.md): refused in the request, nothing stored.
_STATUS: tuple[tuple[type[Exception], int], ...] = ((InvalidSignature, 403), (PayloadTooLarge, 413), (BadPayload, 400))


def status_of(exc: Exception) -> int:
    """The HTTP status of a caller error; anything else is ours (500, so the provider retries)."""
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


async def read_capped(request: web.Request, limit: int) -> bytes:
    """The whole body, or ``PayloadTooLarge`` as soon as it passes ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def idempotency_key(request: web.Request) -> str | None:
    """The client's ``Idempotency-Key`` header (1-200 characters), if any."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        reason = f"must be 1-{MAX_IDEMPOTENCY_KEY} characters"
        raise BadPayload(f"Idempotency-Key {reason}", fields={"Idempotency-Key": reason})
    return key


async def raw_request(
    request: web.Request,
    limit: int,
    *,
    body: bytes | None = None,
    form: dict[str, str] | None = None,
    media: Sequence[MediaRef] = (),
) -> RawRequest:
    """The channel's view of the request; the body is read here (capped) unless given."""
    if body is None:
        body = await read_capped(request, limit)
    public = request.app[keys.SETTINGS].public_url.rstrip("/")
    if form is None:
        form = {}
        if request.content_type == "application/x-www-form-urlencoded" and body:
            form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    return RawRequest(
        method=request.method,
        url=f"{public}{request.rel_url}",
        headers=dict(request.headers),
        query=MultiDict(request.query),
        body=body,
        form=form,
        media=tuple(media),
    )


def check_sizes(msgs: Sequence[InboundMessage]) -> None:
    """Every field against its column; NUL and lone surrogates anywhere (``admission``)."""
    check_messages(msgs)


def parse(channel: BaseChannel, raw: RawRequest, acct: Account) -> list[InboundMessage]:
    """verify → parse → size check: caller errors raise, nothing is stored."""
    channel.verify(raw, acct)
    msgs = channel.parse(raw, acct)
    check_sizes(msgs)
    return msgs


async def intake(
    request: web.Request, msgs: Sequence[InboundMessage], *, idempotency_key: str | None = None
) -> IntakeResult:
    """Hand the messages to the pipeline (de-duplicate, store, commit) before anyone is answered."""
    return await request.app[keys.PIPELINE].intake(msgs, idempotency_key=idempotency_key)
