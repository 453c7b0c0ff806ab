"""Open311 GeoReport v2 endpoints under ``/open311/v2`` (http://wiki.open311.org/GeoReport_v2).

``discovery``, ``services``, ``services/{code}``, ``requests`` (GET list with filters, POST
create) and ``requests/{id}``, each as ``.json`` or ``.xml``. Services are the taxonomy's
subcategories (``service_code`` = the 4-digit code). ``POST requests`` needs an ``api_key``
from ``GATEWAY_OPEN311_API_KEYS`` and makes a report like any other channel through
the Open311 channel (``channels/open311.py``) and the shared edge (one post is a whole
report); its case number is the ``service_request_id``.
An ``Idempotency-Key`` header makes a retried post answer with the first report. Errors are
GeoReport errors (JSON list of ``{code, description}``, XML ``<errors><error>``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from adapters import georeport as open311
from adapters.georeport import FORMATS, GeoReportError, Service
from channels.base import Account
from channels.errors import BadPayload, InvalidSignature, PayloadTooLarge
from gateway import keys
from gateway.core.casenumber import is_case_number
from gateway.core.replies import FLOODED
from gateway.core.schema import coarse, public_address
from gateway.db import Report
from gateway.http import edge
from gateway.http.channels import ACCOUNTS
from gateway.http.floods import Flooded, check_address
from nlp.pii import mask_pii
from nlp.taxonomy import load_taxonomy

log = logging.getLogger(__name__)
PREFIX = "/open311/v2"
# The spec suggests at most 1000. 200 keeps one anonymous GET cheap: fuzzing (issue 13) showed
# lists of 1000 reports with their messages starving the database under load.
MAX_RESULTS = 200
DEFAULT_WINDOW = timedelta(days=90)  # the spec's default range when no dates are given
_FMT = "{fmt:json|xml}"
CHANGESET = "2026-11-28T00:00:00+00:00"  # of the discovery document


@lru_cache(maxsize=4)
def load_services(taxonomy_path: str | None) -> dict[str, Service]:
    """The taxonomy's subcategories as services (``nlp.taxonomy``, the bundled file by default)."""

    taxonomy = load_taxonomy(Path(taxonomy_path) if taxonomy_path else None)
    services: dict[str, Service] = {}
    for cat in taxonomy.categories:
        for sub in cat.subcategories:
            services[sub.code] = Service(sub.code, sub.name, sub.name_en, cat.name, sub.keywords)
    return services


def _services(request: web.Request) -> dict[str, Service]:
    path = request.app[keys.SETTINGS].taxonomy
    return load_services(str(path) if path else None)


def _respond(fmt: str, body: Any, root: str, item: str | None, status: int = 200) -> web.Response:
    if fmt == "xml":
        return web.Response(
            status=status, body=open311.to_xml(root, item, body), content_type=FORMATS["xml"], charset="utf-8"
        )
    return web.Response(status=status, text=json.dumps(body, ensure_ascii=False), content_type=FORMATS["json"])


def _error(fmt: str, status: int, *descriptions: str) -> web.Response:
    errors = open311.errors_json([(status, d) for d in descriptions])
    return _respond(fmt, errors, "errors", "error", status)


async def discovery(request: web.Request) -> web.Response:
    base = request.app[keys.SETTINGS].public_url.rstrip("/") + PREFIX
    endpoint = open311.EndpointOut(
        specification=open311.SPEC_URL,
        url=base,
        changeset=CHANGESET,
        type="production",
        formats=list(FORMATS.values()),
    )
    body = open311.DiscoveryOut(changeset=CHANGESET, contact="", key_service="", endpoints=[endpoint])
    return _respond(request.match_info["fmt"], body.model_dump(), "discovery", None)


async def services_list(request: web.Request) -> web.Response:
    body = [open311.service_json(s) for s in _services(request).values()]
    return _respond(request.match_info["fmt"], body, "services", "service")


async def service_definition(request: web.Request) -> web.Response:
    fmt, code = request.match_info["fmt"], request.match_info["code"]
    service = _services(request).get(code)
    if service is None:
        return _error(fmt, 404, f"service_code {code[:20]} not found")
    return _respond(fmt, open311.definition_json(service), "service_definition", None)


async def create_request(request: web.Request) -> web.Response:
    """``POST requests`` through the Open311 channel: verify (api_key) → parse → intake."""
    fmt = request.match_info["fmt"]
    channel = request.app[keys.CHANNELS]["open311"]
    acct = request.app[ACCOUNTS][("open311", "default")]
    acct = Account(acct.name, {**acct.settings, "services": _service_names(request)}, acct.secret_fields)
    try:
        await check_address(request)
    except Flooded as exc:
        resp = _error(fmt, 429, FLOODED)
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    try:
        raw = await edge.raw_request(request, channel.max_body_bytes, form={})
        channel.verify(raw, acct)
        key = edge.idempotency_key(request)
        msgs = edge.parse(channel, raw, acct)
    except PayloadTooLarge:
        return _error(
            fmt, edge.status_of(PayloadTooLarge()), f"request body larger than {channel.max_body_bytes} bytes"
        )
    except InvalidSignature as exc:
        log.warning("open311 post refused: invalid api_key")
        return _error(fmt, edge.status_of(exc), "Invalid api_key received -- can't proceed with create_request.")
    except BadPayload as exc:
        described = [f"{k}: {v}" for k, v in exc.fields.items() if k != "Idempotency-Key"] or [str(exc)]
        return _error(fmt, edge.status_of(exc), *described)
    result = await edge.intake(request, msgs, idempotency_key=key)
    assert result.case_number is not None
    log.info("open311 request", extra={"case": result.case_number, "duplicate": result.duplicate})
    body = [open311.created_json(result.case_number, result.reply)]
    return _respond(fmt, body, "service_requests", "request", 200 if result.duplicate else 201)


def _service_names(request: web.Request) -> dict[str, str]:
    return {code: service.name for code, service in _services(request).items()}


async def list_requests(request: web.Request) -> web.Response:
    fmt = request.match_info["fmt"]
    try:
        query = _filters(request.query, request.app[keys.PIPELINE].clock())
    except GeoReportError as exc:
        return _error(fmt, exc.status, exc.description)
    async with request.app[keys.DB].session() as s:
        reports = (await s.scalars(query)).all()
    return _requests_response(request, fmt, reports)


async def get_request(request: web.Request) -> web.Response:
    fmt, case = request.match_info["fmt"], request.match_info["id"]
    if not is_case_number(case):
        return _error(fmt, 404, f"service_request_id {case[:40]} not found")
    async with request.app[keys.DB].session() as s:
        report = await s.scalar(_with_children(select(Report).where(Report.case_number == case)))
    if report is None or report.session_open or report.status == "spam":
        return _error(fmt, 404, f"service_request_id {case} not found")
    return _requests_response(request, fmt, [report])


def _with_children(query: Any) -> Any:
    return query.options(selectinload(Report.media), selectinload(Report.messages))


def _filters(params: Mapping[str, str], now: Any) -> Any:
    query = _with_children(select(Report).where(Report.session_open.is_(False), Report.status != "spam"))
    ids = [i.strip() for i in params.get("service_request_id", "").split(",") if i.strip()]
    if ids:  # the spec: with service_request_id, the other filters are ignored
        return query.where(Report.case_number.in_(ids[:MAX_RESULTS])).order_by(Report.id)
    try:
        start = open311.parse_date(params["start_date"]) if params.get("start_date") else None
        end = open311.parse_date(params["end_date"]) if params.get("end_date") else None
    except ValueError:
        raise GeoReportError(400, "start_date/end_date must be ISO 8601 (w3c) datetimes") from None
    try:  # 0001-01-01 minus the window, or a date whose UTC form leaves the calendar, overflowed (a 500)
        end = (end or now).astimezone(UTC)
        start = (start or end - DEFAULT_WINDOW).astimezone(UTC)
    except OverflowError:
        raise GeoReportError(400, "start_date/end_date out of range") from None
    query = query.where(Report.created_at >= start, Report.created_at <= end)
    codes = [c.strip() for c in params.get("service_code", "").split(",") if c.strip()]
    if codes:
        query = query.where(Report.category_code.in_(codes))
    status = params.get("status", "").strip().lower()
    if status and status not in ("open", "closed"):
        raise GeoReportError(400, "status must be open or closed")
    if status:
        closed = Report.status.in_(sorted(open311.CLOSED))
        query = query.where(closed if status == "closed" else ~closed)
    return query.order_by(Report.created_at.desc()).limit(MAX_RESULTS)


def _requests_response(request: web.Request, fmt: str, reports: Sequence[Report]) -> web.Response:

    services = _services(request)
    public = request.app[keys.SETTINGS].public_url
    extensions = request.query.get("extensions", "").lower() == "true"
    body = []
    for report in reports:
        hint = _hint(report)
        service = services.get(report.category_code or "") or services.get(hint or "")
        item = open311.request_json(report, service, hint, public, extensions=extensions)
        item["description"] = mask_pii(item["description"] or "")  # a public list: no phone numbers
        # and no exact position (the resident's own, when WeChat's LOCATION report located it)
        item["lat"], item["long"] = coarse(report.location_lat), coarse(report.location_lng)
        item["address"] = public_address(report)
        body.append(item)
    return _respond(fmt, body, "service_requests", "request")


def _hint(report: Report) -> str | None:
    if report.channel != "open311" or not report.messages:
        return None
    code = report.messages[0].raw.get("service_code")
    return str(code) if code else None


def routes() -> list[web.AbstractRouteDef]:
    return [
        web.get(f"{PREFIX}/discovery.{_FMT}", discovery),
        web.get(f"{PREFIX}/services.{_FMT}", services_list),
        web.get(PREFIX + "/services/{code}." + _FMT, service_definition),
        web.get(f"{PREFIX}/requests.{_FMT}", list_requests),
        web.post(f"{PREFIX}/requests.{_FMT}", create_request),
        web.get(PREFIX + "/requests/{id}." + _FMT, get_request),
    ]
