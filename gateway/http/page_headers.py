"""Security headers on the public HTML pages (``/report``, its status and rating pages).

The console sets its own (``gateway.console.auth.HEADERS``); the media route its own sandbox.
The resident pages use only their own inline styles and one script file of ours (the form's
"use my location", ``/static/report_locate.js``): no inline script runs, and the policy forbids
framing (clickjacking of the rating form) and forms posting elsewhere
(issue 13, item 9).
"""

from __future__ import annotations

from aiohttp import web

from gateway.http.middlewares import Handler

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@web.middleware
async def page_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    page = request.path == "/report" or request.path.startswith("/report/")
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # error pages too
        if page:
            for name, value in HEADERS.items():
                exc.headers.setdefault(name, value)
        raise
    if page:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
    return response
