"""Weibo @-mentions of the city's account (提到我的微博), read by the poller in ``gateway/tasks/mentions.py``.

- ``GET {api_base}statuses/mentions.json`` with ``access_token``, ``since_id`` (ids greater than
  it), ``max_id`` (ids less than or equal to it), ``count`` (at most 200) and ``page``; statuses
  come newest first (open.weibo.com/wiki/2/statuses/mentions). Pages may hold fewer than
  ``count`` statuses (Weibo drops deleted and hidden posts after paging), so only an empty page
  means "no more". Errors are JSON ``{"error", "error_code", "request"}`` with a 4xx/5xx status
  (open.weibo.com/wiki/Error_code).
- A status: ``id`` (int64; ``idstr`` is the same as a string), ``text`` (the first 140
  characters of a long post), ``created_at`` (``Tue Nov 27 09:15:30 +0800 2026``), ``user.id``,
  ``geo`` ``{"type": "Point", "coordinates": [lat, lng]}`` (latitude first, unlike GeoJSON),
  ``pic_ids`` and ``pic_urls`` ``[{"thumbnail_pic": url}]`` (``thumbnail_pic`` /
  ``original_pic`` alone on older posts).
- A mention is a whole report (``complete=True``) with the id ``mention:<status id>``.
- Pictures are referenced by URL (the large size: ``/thumbnail/`` becomes ``/large/``) and
  downloaded by ``WeiboChannel.fetch_media`` through ``fetch_picture``, only from Weibo's image
  hosts (``*.sinaimg.cn``, over https) or from the configured API's own origin (a proxy, or the
  fake in tests). The access token is never sent with a picture request.

Everything here blocks (``requests``): call it from a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

import requests

from channels.base import Account
from channels.errors import BadPayload, ChannelMisconfigured, SendRejected, SendRetryable
from channels.http import get_capped, host_allowed
from gateway.models import InboundMessage, Location, LocationSource, MediaRef, MessageKind

MAX_TEXT = 2000
MAX_PICTURES = 9
MAX_COUNT = 200  # Weibo's cap on count
MAX_BODY_BYTES = 4 << 20  # 200 statuses with their users are well under 1 MB
# System busy and rate limits (open.weibo.com/wiki/Error_code), as in channels/weibo.py.
_RETRYABLE_CODES = frozenset({10001, 10009, 10022, 10023, 10024})
# Token missing, invalid, expired or revoked: the deployment must fix its access token.
_TOKEN_CODES = frozenset({21314, 21315, 21316, 21317, 21327, 21332})
_IMAGE_HOST = ".sinaimg.cn"
WEIBO_MEDIA_HOSTS = ("*.sinaimg.cn", "*.weibo.com", "*.weibo.cn")


@dataclass(frozen=True, slots=True)
class MentionsApi:
    """The mentions endpoint of one account; ``timeout`` bounds each call (connect and read)."""

    base: str
    token: str
    timeout: float

    def page(self, *, since_id: int, max_id: int | None, count: int) -> list[dict[str, Any]]:
        """Mentions with ``since_id < id <= max_id``, newest first; raises ``SendRetryable``
        (network, timeout, 5xx, rate limit), ``ChannelMisconfigured`` (token), ``SendRejected``
        (other refusals) or ``BadPayload`` (not the documented shape)."""
        count = max(1, min(count, MAX_COUNT))
        params = {"access_token": self.token, "since_id": str(since_id), "count": str(count), "page": "1"}
        if max_id is not None:
            params["max_id"] = str(max_id)
        url = urljoin(self.base, "statuses/mentions.json")
        try:
            with requests.get(url, params=params, timeout=self.timeout, stream=True) as resp:
                status, body = resp.status_code, _read_json(resp)
        except requests.RequestException as exc:
            raise SendRetryable(f"Weibo mentions unreachable: {type(exc).__name__}") from exc
        code = body.get("error_code")
        detail = f"Weibo mentions HTTP {status} error {code}: {str(body.get('error'))[:200]}"
        if status >= 500 or status == 429 or code in _RETRYABLE_CODES:
            raise SendRetryable(detail)
        if code in _TOKEN_CODES:
            raise ChannelMisconfigured(detail)
        if status >= 400 or code:
            raise SendRejected(detail)
        statuses = body.get("statuses")
        if not isinstance(statuses, list):
            raise BadPayload("Weibo mentions answer without a statuses list", fields={"statuses": "required"})
        return [s for s in statuses if isinstance(s, dict)]


def status_id(status: Mapping[str, Any]) -> int | None:
    """The status id as an int (``idstr`` first: JavaScript clients lose int64 precision)."""
    value = status.get("idstr") or status.get("id")
    try:
        number = int(str(value))
    except ValueError:
        return None
    return number if number > 0 else None


def mention_message(status: Mapping[str, Any], account: str) -> InboundMessage | None:
    """The report a mention carries; None for a deleted post. Raises ``BadPayload`` when malformed."""
    if str(status.get("deleted") or "") == "1":
        return None
    sid = status_id(status)
    user = status.get("user")
    uid = str(user.get("idstr") or user.get("id") or "") if isinstance(user, dict) else ""
    if sid is None or not uid.isdigit():
        raise BadPayload("mention without id or user.id", fields={"id": "required", "user.id": "required"})
    media = _pictures(status)
    return InboundMessage(
        channel="weibo",
        channel_message_id=f"mention:{sid}",
        sender=f"weibo:{uid}",
        received_at=_created_at(status.get("created_at")),
        kind=MessageKind.IMAGE if media else MessageKind.TEXT,
        text=str(status.get("text") or "")[:MAX_TEXT],
        media=media,
        location=_geo(status.get("geo")),
        account=account,
        raw=_raw(status),
        complete=True,
    )


def fetch_picture(url: str, acct: Account) -> tuple[bytes, str]:
    """Download a mention's picture; refuses any host but Weibo's image hosts and the API's origin."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme in ("http", "https") and host.endswith(_IMAGE_HOST):
        url = urlunsplit(("https", *parts[1:]))  # the API still hands out http:// picture URLs
    elif not _same_origin(parts, urlsplit(str(acct.get("api_base") or ""))):
        raise SendRejected(f"not a Weibo picture URL: {host[:60]!r}")
    return get_capped(url, allowed=lambda hop: weibo_media_allowed(hop, acct))  # every redirect too


def weibo_media_allowed(url: str, acct: Account) -> bool:
    """Weibo's hosts over https (pictures on ``*.sinaimg.cn``, files behind ``*.weibo.com``/``.cn``)
    and the origins of the configured API and media URL (a proxy, a local fake)."""
    parts = urlsplit(url)
    origins = (urlsplit(str(acct.get("api_base") or "")), urlsplit(str(acct.get("media_url") or "")))
    return any(_same_origin(parts, o) for o in origins) or host_allowed(url, WEIBO_MEDIA_HOSTS)


def _read_json(resp: requests.Response) -> dict[str, Any]:
    chunks, size = [], 0
    for chunk in resp.iter_content(65536):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadPayload(f"Weibo mentions answer larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks) or b"null")
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {}


def _created_at(value: Any) -> datetime:
    try:
        return datetime.strptime(str(value), "%a %b %d %H:%M:%S %z %Y").astimezone(UTC)
    except ValueError:
        raise BadPayload("created_at is not a Weibo date", fields={"created_at": "invalid date"}) from None


def _geo(geo: Any) -> Location | None:
    coords = geo.get("coordinates") if isinstance(geo, dict) else None
    if not isinstance(coords, list) or len(coords) != 2:
        return None
    try:
        lat, lng = float(coords[0]), float(coords[1])
    except (TypeError, ValueError):
        return None
    if not (-90 <= lat <= 90 and -180 <= lng <= 180) or (lat, lng) == (0.0, 0.0):
        return None
    return Location(lat=lat, lng=lng, source=LocationSource.GPS)


def _pictures(status: Mapping[str, Any]) -> tuple[MediaRef, ...]:
    urls = [p.get("thumbnail_pic") for p in status.get("pic_urls") or () if isinstance(p, dict)]
    if not urls and status.get("thumbnail_pic"):
        urls = [status.get("original_pic") or status.get("thumbnail_pic")]
    ids = [i for i in status.get("pic_ids") or () if isinstance(i, str)]
    refs = []
    for n, url in enumerate(urls[:MAX_PICTURES]):
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            pid = ids[n] if n < len(ids) else None
            refs.append(MediaRef(kind=MessageKind.IMAGE, provider_id=pid, url=url.replace("/thumbnail/", "/large/", 1)))
    return tuple(refs)


def _raw(status: Mapping[str, Any]) -> dict[str, Any]:
    """What is kept for audit: the post, without the embedded author profile and reposted post."""
    keep = ("idstr", "id", "created_at", "text", "source", "geo", "pic_ids", "pic_urls", "thumbnail_pic")
    raw = {k: status[k] for k in keep if k in status}
    user = status.get("user")
    if isinstance(user, dict):
        raw["user"] = {k: user[k] for k in ("id", "idstr", "screen_name") if k in user}
    return raw


def _same_origin(a: SplitResult, b: SplitResult) -> bool:
    try:
        return bool(a.hostname) and (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
    except ValueError:  # a port that is not a number
        return False
