"""Caller errors raised below a route's own handling, answered as 4xx in the route's dialect.

A route checks what it can name (fields, signatures, sizes). What is found deeper, a value the
database cannot store (``gateway.db.UnstorableValue``), a ``BadPayload`` from a shared check,
or PostgreSQL's "data exception" class (SQLSTATE 22: value too long, invalid byte sequence, out of
range), is the caller's value all the same: a 400 naming the problem, never a 500 (issue 13).
Answers are JSON under ``/api/``, GeoReport errors under ``/open311/``, plain text elsewhere.
Failures of ours are answered here too, as a 503 with ``Retry-After`` rather than a 500 with a
traceback or a hang: intake saturated (``Overloaded``), a database pool exhausted under load, and
a full media disk (nothing is stored and nothing acknowledged; the client or provider sends it again).
"""

from __future__ import annotations

import errno
import json
import logging

from aiohttp import web
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from adapters import georeport as open311
from channels.errors import BadPayload
from gateway.core.intake import Overloaded
from gateway.db import UnstorableValue
from gateway.http.middlewares import Handler

log = logging.getLogger(__name__)

_DATA_EXCEPTION = "22"  # SQLSTATE class: data exception


def _sqlstate(exc: DBAPIError) -> str:
    orig = exc.orig
    return str(getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", "") or "")


@web.middleware
async def caller_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except UnstorableValue as exc:
        return _answer(request, str(exc), {})
    except BadPayload as exc:
        return _answer(request, str(exc), exc.fields)
    except (SQLAlchemyTimeoutError, Overloaded):
        # Our failure, not the caller's: intake is saturated, or no database connection came free
        # in time. A 503 with Retry-After at once tells providers (WeChat and Twilio retry on an
        # error status) and clients to come back, instead of a hang until their time-out; nothing
        # was stored, so nothing was acknowledged.
        log.warning("request refused: busy", extra={"path": request.path})
        return _busy(request, 5)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        log.error("request refused: no space left for media", extra={"path": request.path})
        return _busy(request, 60)
    except DBAPIError as exc:
        state = _sqlstate(exc)
        if not state.startswith(_DATA_EXCEPTION):
            raise
        # Only the SQLSTATE is logged: the driver's message may quote the value (resident data).
        log.warning("request refused: the database cannot store a value", extra={"sqlstate": state})
        return _answer(request, f"a value cannot be stored (SQLSTATE {state}: too long or invalid)", {})


def _busy(request: web.Request, retry_after_s: int) -> web.Response:
    headers = {"Retry-After": str(retry_after_s)}
    if request.path.startswith("/api/"):
        return web.json_response({"error": "busy, retry later"}, status=503, headers=headers)
    return web.Response(status=503, text="busy, retry later", headers=headers)


def _answer(request: web.Request, message: str, fields: dict[str, str]) -> web.Response:
    path = request.path
    if path.startswith("/open311/"):
        errors = open311.errors_json([(400, message)])
        if path.endswith(".xml"):
            return web.Response(status=400, body=open311.to_xml("errors", "error", errors), content_type="text/xml")
        return web.Response(status=400, text=json.dumps(errors, ensure_ascii=False), content_type="application/json")
    if path.startswith("/api/"):
        body = {"error": message, "fields": fields}
        return web.Response(status=400, text=json.dumps(body, ensure_ascii=False), content_type="application/json")
    return web.Response(status=400, text=message)
