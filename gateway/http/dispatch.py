"""The dispatch side of the loop: signed status callbacks in, handling figures out.

``POST /api/v1/dispatch/callback`` (DESIGN.md, "Dispatch webhook"): signed like the webhook
(``adapters.dispatch.verify``: HMAC-SHA256 of ``"{timestamp}.{body}"``, timestamp window,
constant-time compare) under any configured target's secret. The JSON body is
``{"id", "case_number", "status", "note"}``; ``status`` is one of accepted, in_progress,
resolved, closed, rejected (a note, the reason, is required) or returned (back to
``needs_review`` for reclassification). A callback id seen before is answered as it was and
changes nothing; a move the lifecycle forbids is a 409 naming the allowed moves; a bad
signature is a 403 and changes nothing. Moves are written to the history with actor
``dispatch``; the resident hears of them through the pipeline's status news.

``GET /api/v1/stats``: per category and per department (the routing target's department),
the count of cases handed to dispatch, the median time from hand-off to acceptance, the median
time from receipt to resolution, the on-time rate against the priority's deadline
(``gateway.dispatch.outbox.DEADLINES``) and the mean resident rating (统一评价).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping
from typing import Any, Literal, get_args

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from adapters import dispatch
from channels import payload
from channels.errors import BadPayload, PayloadTooLarge
from gateway import keys
from gateway.core.lifecycle import IllegalTransition, Status
from gateway.core.pipeline import SYSTEM, Pipeline, ReportNotFound
from gateway.db import Delivery, DispatchCallback, Report
from gateway.dispatch.outbox import routing_for
from gateway.dispatch.stats import GRID_LEVELS, compute_stats
from gateway.http import edge
from gateway.http.access import check_ops_access

log = logging.getLogger(__name__)

ACTOR = "dispatch"
MAX_CALLBACK_BYTES = 64 * 1024
MAX_NOTE = 2000
CALLBACK_STATUSES: dict[str, Status] = {
    "accepted": Status.ACCEPTED,
    "in_progress": Status.IN_PROGRESS,
    "resolved": Status.RESOLVED,
    "closed": Status.CLOSED,
    "rejected": Status.REJECTED,
    "returned": Status.NEEDS_REVIEW,
}


class BadCallback(ValueError):
    """The callback body is not the documented JSON; ``fields`` names what is wrong."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("invalid callback: " + "; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


CallbackStatus = Literal["accepted", "in_progress", "resolved", "closed", "rejected", "returned"]
assert set(get_args(CallbackStatus)) == set(CALLBACK_STATUSES)


def _bounded(value: Any, limit: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise payload.field_error(f"required string of 1-{limit} characters")
    return value


class Callback(BaseModel):
    """A status change from dispatch (``POST /api/v1/dispatch/callback``); other fields are ignored."""

    model_config = ConfigDict(title="DispatchCallback", frozen=True, extra="ignore")

    id: str = Field(min_length=1, max_length=128, description="the callback's own id: a repeat changes nothing")
    case_number: str = Field(min_length=1, max_length=32)
    status: CallbackStatus = Field(description="`returned`: back to moderators for reclassification")
    note: str | None = Field(default=None, max_length=MAX_NOTE, description="required with `rejected`: the reason")

    @model_validator(mode="before")
    @classmethod
    def _absent_is_null(cls, data: Any) -> Any:
        """A missing field gets the message of a wrong one (``required string of ...``)."""
        return dict.fromkeys(("id", "case_number", "status", "note")) | data if isinstance(data, dict) else data

    @field_validator("id", "case_number", mode="before")
    @classmethod
    def _ids(cls, value: Any, info: ValidationInfo) -> str:
        return _bounded(value, 128 if info.field_name == "id" else 32)

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> str:
        if not isinstance(value, str) or value not in CALLBACK_STATUSES:
            raise payload.field_error("one of " + ", ".join(CALLBACK_STATUSES))
        return value

    @field_validator("note", mode="before")
    @classmethod
    def _note(cls, value: Any, info: ValidationInfo) -> str | None:
        if info.data.get("status") == "rejected" and not (isinstance(value, str) and value.strip()):
            raise payload.field_error("a rejection needs the reason in `note`")
        if value is not None and (not isinstance(value, str) or len(value) > MAX_NOTE):
            raise payload.field_error(f"string of at most {MAX_NOTE} characters")
        return value.strip() if value else None


def parse_callback(body: bytes) -> Callback:
    try:
        data = payload.loads(body)  # deep nesting, huge numbers, NUL and lone surrogates included
    except BadPayload as exc:
        raise BadCallback(exc.fields) from None
    if not isinstance(data, dict):
        raise BadCallback({"body": "expected a JSON object"})
    try:
        return Callback.model_validate(data)
    except ValidationError as exc:
        raise BadCallback(payload.field_errors(exc)) from None


class CallbackResult(BaseModel):
    """What a callback did: ``duplicate`` for a callback id seen before, ``changed`` when the status moved."""

    case_number: str
    status: str = Field(description="the report's status now")
    duplicate: bool
    changed: bool


class CallbackConflict(BaseModel):
    """409: the lifecycle does not allow the move (``error`` names the allowed ones)."""

    error: str
    current: str
    requested: str


class Figures(BaseModel):
    """Handling figures of a group of cases; ``Stats.counts`` says what each counts."""

    count: int
    delivered: int
    waiting: int
    median_accept_s: float | None
    median_resolve_s: float | None
    on_time_rate: float | None = Field(ge=0, le=1)
    ratings: int
    mean_rating: float | None = Field(ge=1, le=5)


class CategoryFigures(Figures):
    code: str | None
    name: str | None


class DepartmentFigures(Figures):
    department: str


class GridFigures(Figures):
    code: str | None = Field(description="null: cases not placed this deep")
    name: str | None


class Stats(BaseModel):
    """``GET /api/v1/stats`` (``gateway.dispatch.stats.compute_stats``)."""

    generated_at: str
    counts: dict[str, str]
    total: Figures
    by_category: list[CategoryFigures]
    by_department: list[DepartmentFigures]
    grid_level: Literal["市", "区", "街道", "社区", "网格"]
    by_grid: list[GridFigures]


class NotDeliveredToSigner(LookupError):
    """The callback's signer (a dispatch target) was never handed this case (issue 13, item 7)."""


async def apply_callback(pipeline: Pipeline, cb: Callback, signers: Collection[str] | None = None) -> dict[str, Any]:
    """Apply one callback in one transaction; a callback id already applied changes nothing.

    ``signers``: the routing targets whose secret signed the callback; the case must have a
    delivery to one of them (None: not checked, for callers that are not a target).
    """
    async with pipeline.unit() as s:
        prior = await s.scalar(select(DispatchCallback).where(DispatchCallback.callback_id == cb.id))
        report = await s.scalar(select(Report).where(Report.case_number == cb.case_number).with_for_update())
        if report is None:
            raise ReportNotFound(cb.case_number)
        if signers is not None:
            to_signer = select(Delivery.id).where(Delivery.report_id == report.id, Delivery.target.in_(list(signers)))
            if await s.scalar(to_signer.limit(1)) is None:
                raise NotDeliveredToSigner(cb.case_number)
        if prior is not None:
            return {"case_number": report.case_number, "status": report.status, "duplicate": True, "changed": False}
        target = CALLBACK_STATUSES[cb.status]
        changed = report.status != target
        if changed:
            handed_over = await s.scalar(select(Delivery.id).where(Delivery.report_id == report.id).limit(1))
            if report.status == Status.READY and target != Status.NEEDS_REVIEW and handed_over is not None:
                # Dispatch answered before our record of the delivery committed: the hand-off happened.
                await pipeline.transition(s, report, Status.DISPATCHED, SYSTEM, note=None, data={"via": "callback"})
            data = {"callback_id": cb.id, "callback_status": cb.status}
            await pipeline.transition(s, report, target, ACTOR, note=cb.note, data=data)
        s.add(
            DispatchCallback(
                callback_id=cb.id, report_id=report.id, status=cb.status, note=cb.note, received_at=pipeline.clock()
            )
        )
        return {"case_number": report.case_number, "status": report.status, "duplicate": False, "changed": changed}


def _error(status: type[web.HTTPException], message: str, **extra: Any) -> web.HTTPException:
    body = json.dumps({"error": message, **extra}, ensure_ascii=False)
    if status is web.HTTPRequestEntityTooLarge:  # it needs max_size (a TypeError, so a 500, without)
        return web.HTTPRequestEntityTooLarge(MAX_CALLBACK_BYTES, 0, text=body, content_type="application/json")
    return status(text=body, content_type="application/json")


async def _read_body(request: web.Request) -> bytes:
    try:
        return await edge.read_capped(request, MAX_CALLBACK_BYTES)
    except PayloadTooLarge:
        raise _error(web.HTTPRequestEntityTooLarge, f"body larger than {MAX_CALLBACK_BYTES} bytes") from None


async def callback(request: web.Request) -> web.Response:
    body = await _read_body(request)
    settings = request.app[keys.SETTINGS]
    table = routing_for(settings)
    try:
        dispatch.verify(table.secrets(), request.headers, body, window_s=settings.dispatch_callback_window_s)
    except dispatch.SignatureError as exc:
        log.warning("dispatch callback refused: bad signature", extra={"reason": str(exc)})
        raise _error(web.HTTPForbidden, "invalid signature") from None
    signers = _signers(table, request.headers, body, settings.dispatch_callback_window_s)
    try:
        cb = parse_callback(body)
    except BadCallback as exc:
        raise _error(web.HTTPBadRequest, "invalid callback", fields=exc.fields) from None
    pipeline = request.app[keys.PIPELINE]
    try:
        result = await apply_callback(pipeline, cb, signers)
    except IntegrityError:
        result = await apply_callback(pipeline, cb, signers)  # the same callback id raced us: a duplicate
    except ReportNotFound:
        raise _error(web.HTTPNotFound, f"no report {cb.case_number}") from None
    except NotDeliveredToSigner:
        log.warning("dispatch callback refused: case not delivered to the signer", extra={"case": cb.case_number})
        raise _error(web.HTTPForbidden, f"report {cb.case_number} was not delivered to this dispatch target") from None
    except IllegalTransition as exc:
        log.warning("dispatch callback refused: illegal move", extra={"case": cb.case_number, "status": cb.status})
        raise _error(web.HTTPConflict, str(exc), current=str(exc.current), requested=cb.status) from None
    log.info("dispatch callback", extra={"case": cb.case_number, "status": cb.status, **result})
    return web.json_response(CallbackResult.model_validate(result).model_dump())


def _signers(table: Any, headers: Mapping[str, str], body: bytes, window_s: int) -> frozenset[str]:
    """The names of the targets whose secret signed ``body`` (targets may share a secret)."""
    found = set()
    for name, target in table.targets.items():
        try:
            dispatch.verify([target.secret], headers, body, window_s=window_s)
        except dispatch.SignatureError:
            continue
        found.add(name)
    return frozenset(found)


async def stats(request: web.Request) -> web.Response:
    check_ops_access(request)  # closed by default in production
    level = request.query.get("grid_level", "街道")  # 市 区 街道 社区 网格: the level of `by_grid`
    if level not in GRID_LEVELS:
        raise _error(web.HTTPBadRequest, f"grid_level must be one of {' '.join(GRID_LEVELS)}")
    data = await compute_stats(request.app[keys.DB], grid_level=level)
    return web.json_response(data, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def routes() -> list[web.AbstractRouteDef]:
    return [web.post("/api/v1/dispatch/callback", callback), web.get("/api/v1/stats", stats)]
