"""REST API for the online complaint channel (网上民声) and report look-up."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import json
import logging
from typing import Any

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from channels.errors import BadPayload, PayloadTooLarge
from gateway import keys
from gateway.core.casenumber import is_case_number
from gateway.core.pipeline import IntakeResult
from gateway.core.schema import report_json
from gateway.db import Report
from gateway.http import edge
from gateway.http.channels import ACCOUNTS
from gateway.http.floods import Flooded, check_address, too_many
from gateway.media import sniff_image_type, strip_metadata
from gateway.models import InboundMessage, MediaRef, MessageKind
from gateway.settings import Settings, signing_key

log = logging.getLogger(__name__)
# The photos of the post being read: sha256 -> (bytes, type), stored once the report is valid.
_pending_photos: contextvars.ContextVar[dict[str, tuple[bytes, str]]] = contextvars.ContextVar("pending_photos")


class ApiError(BaseModel):
    """A refused API request: what is wrong, and for invalid fields which (field -> reason)."""

    model_config = ConfigDict(title="Error")

    error: str
    fields: dict[str, str] | None = Field(default=None, description="present when fields are invalid")


class ReportCreated(BaseModel):
    """The answer to ``POST /api/v1/reports`` (201, or 200 for a retry with the same Idempotency-Key)."""

    case_number: str
    status: str | None = Field(description="the report's status when answered (usually `received`)")
    status_url: str = Field(
        description="the reporter's signed link to the report in this API (`?t=`: shown in full, exact location"
        " included); the Location header is its public view"
    )
    message: str | None = Field(description="what to tell the resident (Chinese)")
    duplicate: bool = Field(description="true: a retry; this is the first post's report")


def bad_request(fields: dict[str, str], message: str = "invalid request") -> web.HTTPBadRequest:
    body = json.dumps({"error": message, "fields": fields}, ensure_ascii=False)
    return web.HTTPBadRequest(text=body, content_type="application/json")


def too_large(limit: int) -> web.HTTPRequestEntityTooLarge:
    body = json.dumps({"error": f"body larger than {limit} bytes"})
    return web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=0, text=body, content_type="application/json")


async def read_report_post(request: web.Request, keep: dict[str, str] | None = None) -> InboundMessage:
    """Parse a JSON, form or multipart complaint into one message that the database can store;
    a multipart post's text fields are copied into ``keep`` (the HTML form shows them again)."""
    pending: dict[str, tuple[bytes, str]] = {}
    token = _pending_photos.set(pending)
    try:
        msg = await _read_report_post(request, keep)
    finally:
        _pending_photos.reset(token)
    # edge.parse checked every field against its column. Photos are stored only now that the
    # report is valid: a refused post leaves nothing on disk (issue 13, item 4). A report that
    # fails later leaves an orphan for gateway/http/media_gc.py.
    store = request.app[keys.MEDIA]
    for data, kind in pending.values():
        await store.put(data, kind)
    return msg


async def _read_report_post(request: web.Request, keep: dict[str, str] | None) -> InboundMessage:
    """Parse a JSON, form or multipart complaint through the web channel."""
    settings = request.app[keys.SETTINGS]
    channel = request.app[keys.CHANNELS]["web"]
    acct = request.app[ACCOUNTS][("web", "default")]
    try:
        edge.idempotency_key(request)
    except BadPayload as exc:
        raise bad_request(exc.fields) from None
    ctype = request.content_type
    limit = settings.max_json_bytes
    try:
        if ctype == "multipart/form-data":
            limit = request.client_max_size
            try:
                fields, photos = await _read_multipart(request, {} if keep is None else keep)
            except ValueError as exc:  # aiohttp's multipart reader: no boundary, a broken part (was a 500)
                raise bad_request({"body": f"malformed multipart body: {str(exc)[:100]}"}) from None
            raw = await edge.raw_request(request, limit, body=b"", form=fields, media=photos)
        elif ctype == "application/x-www-form-urlencoded":
            form = {k: str(v) for k, v in (await request.post()).items()}
            raw = await edge.raw_request(request, limit, body=b"", form=form)
        elif ctype in ("application/json", "") or ctype.endswith("+json"):
            raw = await edge.raw_request(request, limit)
        else:
            raise web.HTTPUnsupportedMediaType(
                text=json.dumps({"error": "use application/json or multipart/form-data"}),
                content_type="application/json",
            )
        return edge.parse(channel, raw, acct)[0]
    except PayloadTooLarge:
        raise too_large(limit) from None
    except BadPayload as exc:
        raise bad_request(exc.fields, str(exc)) from None


async def _read_multipart(request: web.Request, fields: dict[str, str]) -> tuple[dict[str, str], list[MediaRef]]:
    settings = request.app[keys.SETTINGS]
    pending = _pending_photos.get()
    # The parts are capped one by one; the body as a whole gets the app's request cap.
    budget = request.client_max_size
    if request.content_length is not None and request.content_length > budget:
        raise PayloadTooLarge(f"body larger than {budget} bytes")
    reader = await request.multipart()
    photos: list[MediaRef] = []
    errors: dict[str, str] = {}
    async for part in reader:
        if not isinstance(part, BodyPartReader) or not part.name:
            continue
        if part.name == "photos":
            if len(photos) >= settings.max_photos:
                errors["photos"] = f"at most {settings.max_photos} photos"
                await part.release()
                continue
            data = await _read_part(part, settings.max_photo_bytes)
            budget -= len(data or b"")
            if budget < 0:
                raise PayloadTooLarge(f"body larger than {request.client_max_size} bytes")
            if data is None:
                errors["photos"] = f"each photo at most {settings.max_photo_bytes} bytes"
                continue
            if not data:
                continue  # an empty file input posts an empty part
            kind = sniff_image_type(data)
            if kind is None:
                errors["photos"] = "only JPEG, PNG, GIF or WebP images"
                continue
            data = await asyncio.to_thread(strip_metadata, data)  # no GPS position or device stored or served
            digest = hashlib.sha256(data).hexdigest()
            pending[digest] = (data, kind)
            photos.append(MediaRef(kind=MessageKind.IMAGE, sha256=digest, size=len(data), content_type=kind))
            continue
        value = await _read_part(part, 64 * 1024)
        budget -= len(value or b"")
        if budget < 0:
            raise PayloadTooLarge(f"body larger than {request.client_max_size} bytes")
        if value is None:
            errors[part.name] = "field too long"
            continue
        fields[part.name] = value.decode("utf-8", errors="replace")  # the web channel reads them
    if errors:
        raise BadPayload("invalid report", fields=errors)
    return fields, photos


async def _read_part(part: BodyPartReader, limit: int) -> bytes | None:
    chunks, size = [], 0
    while chunk := await part.read_chunk(65536):
        size += len(chunk)
        if size > limit:
            await part.release()
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def status_url(request: web.Request, case: str) -> str:
    return f"{request.app[keys.SETTINGS].public_url.rstrip('/')}/api/v1/reports/{case}"


def report_token(settings: Settings, case: str, sender: str) -> str:
    """Bound to the case and to who reported it: the link that shows the reporter their own report
    in full (exact location, their text and phone unmasked)."""
    message = f"{case}\n{sender}".encode("utf-8", "surrogatepass")
    return hmac.new(signing_key(settings, "report-link"), message, hashlib.sha256).hexdigest()[:32]


def owner_url(request: web.Request, case: str, sender: str) -> str:
    return f"{status_url(request, case)}?t={report_token(request.app[keys.SETTINGS], case, sender)}"


async def create_report(request: web.Request) -> web.Response:
    try:
        await check_address(request)
    except Flooded as exc:
        return too_many(exc)
    msg = await read_report_post(request)
    result: IntakeResult = await edge.intake(request, [msg], idempotency_key=request.headers.get("Idempotency-Key"))
    assert result.case_number is not None
    body = ReportCreated(
        case_number=result.case_number,
        status=result.status,
        # The reporter's signed link. A retry (same Idempotency-Key, which only the first client
        # knows) gets the first report's link: its sender may differ (a one-off id per post).
        status_url=owner_url(request, result.case_number, await _reporter(request, result, msg)),
        message=result.reply,
        duplicate=result.duplicate,
    )
    return web.json_response(
        body.model_dump(),
        status=200 if result.duplicate else 201,
        headers={"Location": status_url(request, result.case_number)},
        dumps=_dumps,
    )


async def _reporter(request: web.Request, result: IntakeResult, msg: InboundMessage) -> str:
    if not result.duplicate:
        return msg.sender
    async with request.app[keys.DB].session() as s:
        sender = await s.scalar(select(Report.sender).where(Report.case_number == result.case_number))
    return sender or msg.sender


async def load_report(request: web.Request, case: str) -> Report | None:
    if not is_case_number(case):
        return None
    async with request.app[keys.DB].session() as s:
        return await s.scalar(
            select(Report)
            .where(Report.case_number == case)
            .options(selectinload(Report.media), selectinload(Report.history))
        )


async def get_report(request: web.Request) -> web.Response:
    case = request.match_info["case"]
    report = await load_report(request, case)
    if report is None:
        raise web.HTTPNotFound(text=json.dumps({"error": f"no report {case}"}), content_type="application/json")
    settings = request.app[keys.SETTINGS]
    token = request.query.get("t")
    owner = False
    if token is not None:  # the reporter's signed link; a wrong one is refused, not shown the public view
        owner = hmac.compare_digest(token.encode(), report_token(settings, case, report.sender).encode())
        if not owner:
            raise web.HTTPForbidden(text=json.dumps({"error": "invalid link"}), content_type="application/json")
    body = report_json(report, public_url=settings.public_url, private=False, owner=owner)
    return web.json_response(body, dumps=_dumps, headers={"Cache-Control": "private, no-store"} if owner else None)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.post("/api/v1/reports", create_report),
        web.get("/api/v1/reports/{case}", get_report),
    ]
