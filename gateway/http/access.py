"""Who may read the operational endpoints, ``/metrics`` and ``/api/v1/stats`` (issue 13, item 9).

``GATEWAY_METRICS_PUBLIC`` decides; unset, they are open in development and test and closed in
production. Closed, they answer a direct loopback client (Prometheus on the same host; a request
that came through a proxy carries ``X-Forwarded-For`` or ``Forwarded`` and does not count as
local) and a client with ``Authorization: Bearer GATEWAY_METRICS_TOKEN``; anyone else gets 403.
"""

from __future__ import annotations

import hmac
import ipaddress

from aiohttp import web

from gateway import keys


def check_ops_access(request: web.Request) -> None:
    """Nothing when the client may read them; else ``HTTPForbidden``."""
    settings = request.app[keys.SETTINGS]
    if settings.metrics_open:
        return
    proxied = "X-Forwarded-For" in request.headers or "Forwarded" in request.headers
    if not proxied and _loopback(request.remote):
        return
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return
    raise web.HTTPForbidden(text="metrics are not public: use GATEWAY_METRICS_TOKEN or ask from localhost")


def _loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False
