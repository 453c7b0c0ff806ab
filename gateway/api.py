"""REST API for the online complaint channel (网上民声) and report look-up."""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import uuid
from typing import Any

from aiohttp import BodyPartReader, web
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from channels import payload
from channels.errors import BadPayload
from channels.web import WebChannel
from gateway import keys
from gateway.admission import check_message
from gateway.casenumber import is_case_number
from gateway.db import Report
from gateway.media import sniff_image_type
from gateway.models import InboundMessage, MediaRef, MessageKind
from gateway.pipeline import IntakeResult
from gateway.schema import report_json

log = logging.getLogger(__name__)
_web = WebChannel()
MAX_KEY = 200
# The photos of the post being read: sha256 -> (bytes, type), stored once the report is valid.
_pending_photos: contextvars.ContextVar[dict[str, tuple[bytes, str]]] = contextvars.ContextVar("pending_photos")


def bad_request(fields: dict[str, str], message: str = "invalid request") -> web.HTTPBadRequest:
    body = json.dumps({"error": message, "fields": fields}, ensure_ascii=False)
    return web.HTTPBadRequest(text=body, content_type="application/json")


def too_large(limit: int) -> web.HTTPRequestEntityTooLarge:
    body = json.dumps({"error": f"body larger than {limit} bytes"})
    return web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=0, text=body, content_type="application/json")


async def read_report_post(request: web.Request) -> InboundMessage:
    """Parse a JSON or multipart complaint into one message that the database can store."""
    pending: dict[str, tuple[bytes, str]] = {}
    token = _pending_photos.set(pending)
    try:
        msg = await _read_report_post(request)
    finally:
        _pending_photos.reset(token)
    try:
        check_message(msg)
    except BadPayload as exc:
        raise bad_request(exc.fields, str(exc)) from None
    # Photos are stored only now that the report is valid: a refused post leaves nothing on disk
    # (issue 13, item 4). A report that fails later leaves an orphan for gateway/media_gc.py.
    store = request.app[keys.MEDIA]
    for data, kind in pending.values():
        await store.put(data, kind)
    return msg


async def _read_report_post(request: web.Request) -> InboundMessage:
    """Parse a JSON or multipart complaint into one message (photos stored first)."""
    settings = request.app[keys.SETTINGS]
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_KEY):
        raise bad_request({"Idempotency-Key": f"must be 1-{MAX_KEY} characters"})
    # The HTML form's browser cookie (gateway/webform.py) or an API client's id; else one-off.
    sender = request.headers.get("X-Client-Id") or request.cookies.get("gw_client") or uuid.uuid4().hex
    ctype = request.content_type
    try:
        if ctype == "multipart/form-data":
            try:
                fields, photos = await _read_multipart(request)
            except ValueError as exc:  # aiohttp's multipart reader: no boundary, a broken part (was a 500)
                raise bad_request({"body": f"malformed multipart body: {str(exc)[:100]}"}) from None
            return _web.message_from_fields(fields, photos, sender=sender, idempotency_key=key)
        if ctype == "application/x-www-form-urlencoded":
            form: dict[str, Any] = dict(await request.post())
            loc = {k: form.pop(k) for k in ("lat", "lng", "address") if k in form}
            if any(loc.values()):
                form["location"] = loc
            return _web.message_from_fields(form, (), sender=sender, idempotency_key=key)
        if ctype in ("application/json", "") or ctype.endswith("+json"):
            limit = settings.max_json_bytes
            if request.content_length is not None and request.content_length > limit:
                raise too_large(limit)
            body = await _read_limited(request, limit)
            data = payload.loads(body)  # a BadPayload (400) for deep nesting, huge numbers, NUL, surrogates
            if not isinstance(data, dict):
                raise bad_request({"body": "expected a JSON object"})
            return _web.message_from_fields(data, (), sender=sender, idempotency_key=key)
    except BadPayload as exc:
        raise bad_request(exc.fields, str(exc)) from None
    raise web.HTTPUnsupportedMediaType(
        text=json.dumps({"error": "use application/json or multipart/form-data"}), content_type="application/json"
    )


async def _read_limited(request: web.Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_multipart(request: web.Request) -> tuple[dict[str, Any], list[MediaRef]]:
    settings = request.app[keys.SETTINGS]
    pending = _pending_photos.get()
    # The parts are capped one by one; the body as a whole gets the app's request cap.
    budget = request.client_max_size
    if request.content_length is not None and request.content_length > budget:
        raise too_large(budget)
    reader = await request.multipart()
    fields: dict[str, Any] = {}
    location: dict[str, Any] = {}
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
                raise too_large(request.client_max_size)
            if data is None:
                errors["photos"] = f"each photo at most {settings.max_photo_bytes} bytes"
                continue
            if not data:
                continue  # an empty file input posts an empty part
            kind = sniff_image_type(data)
            if kind is None:
                errors["photos"] = "only JPEG, PNG, GIF or WebP images"
                continue
            digest = hashlib.sha256(data).hexdigest()
            pending[digest] = (data, kind)
            photos.append(MediaRef(kind=MessageKind.IMAGE, sha256=digest, size=len(data), content_type=kind))
            continue
        value = await _read_part(part, 64 * 1024)
        budget -= len(value or b"")
        if budget < 0:
            raise too_large(request.client_max_size)
        if value is None:
            errors[part.name] = "field too long"
            continue
        text = value.decode("utf-8", errors="replace")
        if part.name in ("lat", "lng", "address"):
            location[part.name] = text
        elif part.name == "location":
            try:
                given = payload.loads(text)
            except BadPayload:
                given = None
            if isinstance(given, dict):
                location.update(given)
            else:  # a JSON string or list is not a location (it was a 500: dict.update of a str)
                errors["location"] = "must be JSON with lat/lng and/or address"
        else:
            fields[part.name] = text
    if errors:
        raise bad_request(errors, "invalid report")
    if any(v not in ("", None) for v in location.values()):
        fields["location"] = location
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


async def create_report(request: web.Request) -> web.Response:
    msg = await read_report_post(request)
    result: IntakeResult = await request.app[keys.PIPELINE].intake(
        [msg], idempotency_key=request.headers.get("Idempotency-Key")
    )
    assert result.case_number is not None
    body = {
        "case_number": result.case_number,
        "status": result.status,
        "status_url": status_url(request, result.case_number),
        "message": result.reply,
        "duplicate": result.duplicate,
    }
    return web.json_response(
        body,
        status=200 if result.duplicate else 201,
        headers={"Location": status_url(request, result.case_number)},
        dumps=_dumps,
    )


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
    public = request.app[keys.SETTINGS].public_url
    return web.json_response(report_json(report, public_url=public, private=False), dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.post("/api/v1/reports", create_report),
        web.get("/api/v1/reports/{case}", get_report),
    ]
