"""Flood limits at the edge (issue 13): per sender on the chat channels, per address on the
public forms.

- **Per sender** (``GATEWAY_FLOOD_SENDER_LIMIT`` messages per ``GATEWAY_FLOOD_WINDOW_S``): the
  chat channels' senders are identities the provider vouches for (WeChat openid, phone number,
  Weibo uid), checked after the signature. Their callbacks all come from the provider's few
  addresses, so an address limit there would throttle the provider itself. A limited message is
  answered on its channel with ``replies.FLOODED`` (WeChat passive reply, TwiML, Weibo passive
  reply) and not stored.
- **Per address** (``GATEWAY_FLOOD_IP_LIMIT`` posts per window) on the web form, the JSON API
  and Open311 ``POST requests``, whose sender is whatever the client says. Checked before the
  body is read; answered 429 with ``Retry-After``. Loopback is exempt by default
  (``GATEWAY_FLOOD_EXEMPT_LOOPBACK``): behind a reverse proxy on the same host every client has
  the proxy's address, which must not share one allowance (the proxy limits per client there),
  and the load benchmarks post from 127.0.0.1.

The defaults are far above what a resident does (a WeChat report is a few photos, a sentence and
a location). Counters are fixed windows in ``WindowStore`` (Redis when configured); keys are
digests, so no phone number or openid is written to Redis.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import logging
from collections.abc import Sequence

from aiohttp import web
from pydantic import BaseModel, Field

from gateway import keys
from gateway.core import replies
from gateway.http.windows import STORE
from gateway.models import InboundMessage

log = logging.getLogger(__name__)


class Flooded(Exception):
    """Too many messages from one sender or address; ``retry_after`` seconds until the window ends."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited for {retry_after} s")
        self.retry_after = retry_after


async def check_senders(request: web.Request, msgs: Sequence[InboundMessage]) -> None:
    """Count the messages of each sender; ``Flooded`` once one is over the limit."""
    settings = request.app[keys.SETTINGS]
    if settings.flood_sender_limit <= 0:
        return
    for sender in sorted({m.sender for m in msgs}):
        count, left = await request.app[STORE].hit("flood:sender:" + _digest(sender), settings.flood_window_s)
        if count > settings.flood_sender_limit:
            log.warning("flood limit: sender", extra={"channel": msgs[0].channel, "count": count})
            raise Flooded(left)


async def check_address(request: web.Request) -> None:
    """Count one post from the client's address; ``Flooded`` once it is over the limit."""
    settings = request.app[keys.SETTINGS]
    remote = request.remote or "unknown"
    if settings.flood_ip_limit <= 0 or (settings.flood_exempt_loopback and _loopback(remote)):
        return
    count, left = await request.app[STORE].hit("flood:ip:" + _digest(remote), settings.flood_window_s)
    if count > settings.flood_ip_limit:
        log.warning("flood limit: address", extra={"path": request.path, "count": count})
        raise Flooded(left)


class TooManyPosts(BaseModel):
    """The JSON API's 429: too many posts from this address within the window."""

    error: str = Field(description="what to tell the resident (Chinese)")
    retry_after: int = Field(description="seconds until the window ends (also the Retry-After header)")


def too_many(exc: Flooded) -> web.Response:
    """The JSON API's answer: 429, ``Retry-After`` and the resident-facing sentence."""
    body = json.dumps(TooManyPosts(error=replies.FLOODED, retry_after=exc.retry_after).model_dump(), ensure_ascii=False)
    return web.Response(
        status=429, text=body, content_type="application/json", headers={"Retry-After": str(exc.retry_after)}
    )


@functools.lru_cache(maxsize=4096)  # parsed once per address, not once per post
def _loopback(remote: str) -> bool:
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
