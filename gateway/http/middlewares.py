"""Request id, access log with metrics, and errors as JSON."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway import keys
from gateway.logs import request_id

log = logging.getLogger("gateway.access")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_RID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if _RID_RE.match(incoming) else secrets.token_hex(16)
    token = request_id.set(rid)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = rid
        return response
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-Id"] = rid
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = _route_name(request)
        metrics = request.app[keys.METRICS]
        metrics.http_requests.labels(method=request.method, route=route, status=str(status)).inc()
        metrics.http_seconds.labels(route=route).observe(elapsed)
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": status,
                "ms": round(elapsed * 1000, 2),
            },
        )
        request_id.reset(token)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """API routes answer errors as JSON; channel routes keep their own protocol's answers."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.content_type == "application/json" or exc.status < 400:
            raise
        # A new response, not ``type(exc)(...)``: some exceptions (413, 405) need more arguments.
        return web.Response(
            status=exc.status,
            text=_json({"error": exc.reason, "detail": exc.text}),
            content_type="application/json",
            headers={k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")},
        )
    except Exception:
        log.exception("unhandled error", extra={"path": request.path})
        if request.path.startswith("/api/"):
            return web.json_response({"error": "internal error", "request_id": request_id.get()}, status=500)
        raise


def _json(obj: object) -> str:

    return json.dumps(obj, ensure_ascii=False)
