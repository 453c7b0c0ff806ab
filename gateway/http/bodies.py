"""Body caps per route, enforced while the body streams in (issue 13, item 3).

aiohttp's ``request.post()`` and ``request.read()`` stop reading and raise 413 as soon as a body
passes the request's ``client_max_size``; the application's own value (big enough for six
photos) used to apply to every form, so a login or rating form buffered up to 31 MiB before any
check. ``body_caps`` gives each request the cap of its route and body type instead (a
``Content-Length`` above it is refused before reading anything), and reads small forms up front,
so that a form that is not UTF-8 or not well-formed is a 400 and not a parser's 500.

Routes that stream their bodies themselves keep their own caps: channel callbacks
(``BaseChannel.max_body_bytes``), JSON reports (``GATEWAY_MAX_JSON_BYTES``), Open311 posts and
dispatch callbacks (64 KiB). A multipart report is read part by part by ``gateway.api`` under the
cap set here; each photo and field is capped there too.
"""

from __future__ import annotations

import json

from aiohttp import web

from gateway import keys
from gateway.http.middlewares import Handler

KIB = 1024
FORM_CAP = 64 * KIB  # a report as a urlencoded form: 5,000 characters percent-encoded fit
SMALL_FORM_CAP = 8 * KIB  # console login, rating form
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
REPORT_ROUTES = frozenset({"/api/v1/reports", "/report"})
SMALL_FORM_ROUTES = frozenset({"/console/login", "/console/logout", "/report/{case}/rate"})


def multipart_report_cap(request: web.Request) -> int:
    s = request.app[keys.SETTINGS]
    return s.max_photos * s.max_photo_bytes + 256 * KIB  # photos plus the text fields and part headers


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else ""


def cap_for(request: web.Request) -> int | None:
    """The cap of a form post to this route; None where the route reads its body itself."""
    path = _route(request)
    if path in REPORT_ROUTES:
        if request.content_type == "multipart/form-data":
            return multipart_report_cap(request)
        return FORM_CAP if request.content_type in FORM_TYPES else request.app[keys.SETTINGS].max_json_bytes
    if path in SMALL_FORM_ROUTES:
        return SMALL_FORM_CAP
    if path.startswith("/console/"):
        return FORM_CAP
    return None


def too_large(request: web.Request, cap: int) -> web.HTTPRequestEntityTooLarge:
    size = request.content_length or 0
    message = f"body larger than {cap} bytes"
    if request.path.startswith(("/api/", "/open311/")):
        body = json.dumps({"error": message})
        return web.HTTPRequestEntityTooLarge(cap, size, text=body, content_type="application/json")
    return web.HTTPRequestEntityTooLarge(cap, size, text=message)


@web.middleware
async def body_caps(request: web.Request, handler: Handler) -> web.StreamResponse:
    cap = cap_for(request) if request.method in ("POST", "PUT", "PATCH") else None
    if cap is None:
        return await handler(request)
    if request.content_length is not None and request.content_length > cap:
        raise too_large(request, cap)
    request = request.clone(client_max_size=cap)
    # A multipart report is streamed part by part by gateway.api under this cap; other forms are small.
    streamed_by_route = request.content_type == "multipart/form-data" and _route(request) in REPORT_ROUTES
    if request.content_type in FORM_TYPES and not streamed_by_route:
        try:
            await request.post()  # cached on the request: the handler's post() gets this
        except web.HTTPRequestEntityTooLarge:
            raise too_large(request, cap) from None
        except UnicodeDecodeError:
            raise web.HTTPBadRequest(text="the form is not valid UTF-8") from None
        except ValueError as exc:  # a multipart part without a name, nested multipart ...
            raise web.HTTPBadRequest(text=f"malformed form: {str(exc)[:100]}") from None
    return await handler(request)
