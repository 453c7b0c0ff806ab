"""Slow clients (issue 13, item 9): a client that sends its request a byte at a time must not
hold a connection, a handler and its memory for ever.

- **The request head.** aiohttp closes a connection whose request has not arrived when its
  keep-alive timer runs out; the timer starts when the connection opens, so ``keepalive_timeout``
  (``GATEWAY_HEADER_TIMEOUT_S``, given to the server by ``server_options``) bounds partial headers
  as well as idle keep-alive connections.
- **The body.** ``read_deadline`` watches a request whose body is still arriving when its handler
  starts: no byte for ``GATEWAY_READ_TIMEOUT_S``, or not complete after
  ``GATEWAY_BODY_TIMEOUT_S`` (room for six photos on a slow mobile link), and the connection is
  closed; the handler's pending read fails and nothing is stored. Bodies that came with their
  headers (nearly all) start no watcher.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from gateway import keys
from gateway.http.middlewares import Handler
from gateway.settings import Settings

log = logging.getLogger(__name__)


def server_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``web.run_app`` / ``web.AppRunner`` (passed on to the request handler)."""
    return {"keepalive_timeout": settings.header_timeout_s}


@web.middleware
async def read_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.body_exists or request.content.is_eof():
        return await handler(request)
    settings = request.app[keys.SETTINGS]
    watcher = asyncio.create_task(_watch(request, settings.read_timeout_s, settings.body_timeout_s))
    try:
        return await handler(request)
    finally:
        watcher.cancel()


async def _watch(request: web.Request, idle_s: float, total_s: float) -> None:
    loop = asyncio.get_running_loop()
    content = request.content
    started = seen_at = loop.time()
    seen = content.total_bytes
    while not content.is_eof():
        await asyncio.sleep(min(1.0, idle_s / 4))
        now = loop.time()
        if content.total_bytes != seen:
            seen, seen_at = content.total_bytes, now
        if now - seen_at > idle_s or now - started > total_s:
            log.warning(
                "slow client cut off",
                extra={"path": request.path, "received": seen, "seconds": round(now - started, 1)},
            )
            if request.transport is not None:
                request.transport.close()
            return
