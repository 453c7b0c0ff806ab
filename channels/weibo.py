"""Weibo fan-service platform (粉丝服务平台), developer mode: ``GET|POST /channels/weibo``.

- URL verification and every push carry ``signature``, ``timestamp`` and ``nonce`` in the
  query: ``signature = sha1("".join(sorted([app_secret, timestamp, nonce])))``; the GET answers
  ``echostr``. The JSON body itself is not signed (消息推送服务, open.weibo.com/wiki/消息推送服务).
- Pushes (接收普通消息 / 接收事件推送) are JSON: ``type`` text | position | image | voice |
  event (``data.subtype`` follow, unfollow, subscribe, unsubscribe, click, ...). They carry no
  message id, so the message id is built from sender, ``created_at`` and a hash of the content.
- Images and voice arrive as file ids (``data.tovfid`` is the receiver's copy) fetched later
  through ``mss/msget``; a passive reply (被动回复) is a JSON body on the push's response, and
  news goes through the reply API (``messages/reply.json``), which Weibo accepts only within
  48 h of the resident's last message (the API refuses otherwise; we map that to SendRejected).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

import requests
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from channels.base import (
    Account,
    BaseChannel,
    ChannelSettings,
    ProviderFormat,
    RawRequest,
    RawResponse,
    Reply,
    json_object,
    revealed,
)
from channels.errors import BadPayload, ChannelMisconfigured, InvalidSignature, SendRejected, SendRetryable
from channels.http import HTTP_TIMEOUT_S, get_capped
from channels.weibo_mentions import MentionsApi, fetch_picture, mention_message, status_id, weibo_media_allowed
from gateway.models import InboundMessage, Location, LocationSource, MediaRef, MessageKind, OutboundMessage, SendResult

_KINDS = {
    "text": MessageKind.TEXT,
    "position": MessageKind.LOCATION,
    "image": MessageKind.IMAGE,
    "voice": MessageKind.VOICE,
}
# Follow (关注) and unfollow are what "subscribe"/"unsubscribe" are on WeChat: the core records them
# on the contact (an unfollowed resident gets no news) and welcomes a new follower.
_EVENTS = {"follow": "subscribe", "unfollow": "unsubscribe"}
# Weibo API error codes that mean "later": system busy, rate limits (open.weibo.com/wiki/Error_code).
_RETRYABLE_CODES = frozenset({10001, 10009, 10022, 10023, 10024})
MAX_TEXT = 2000


def signature(secret: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([secret, timestamp, nonce])).encode("utf-8")).hexdigest()  # noqa: S324


class WeiboSettings(ChannelSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_WEIBO_")

    app_key: str | None = None
    app_secret: SecretStr | None = None
    access_token: SecretStr | None = None
    api_base: str = "https://api.weibo.com/2/"  # @-mentions (channels/weibo_mentions.py)
    timestamp_window_s: int = 300  # pushes with an older or newer timestamp are refused (0: off)
    reply_url: str = "https://m.api.weibo.com/2/messages/reply.json"  # fan-service reply API
    media_url: str = "https://upload.api.weibo.com/2/mss/msget"  # fan-service media download
    poll_interval_s: float = 0.0  # @-mention poller (gateway/tasks/mentions.py); 0 = off
    poll_max_pages: int = 5  # pages of mentions fetched per run at most
    poll_page_size: int = 50  # mentions per page (Weibo allows up to 200)
    poll_timeout_s: float = 10.0  # timeout of one mentions API call


FORMAT = ProviderFormat(
    media_type="application/json",
    payload="one Weibo fan-service push (receiver_id, sender_id, created_at, type: text | position | image |"
    " voice | event, text, data)",
    signature="`signature` = sha1 of the sorted app secret, timestamp and nonce in the query (the body is not"
    " signed, so a stale timestamp is refused). 403 when it fails",
    query={
        "signature": "sha1(sort(app_secret, timestamp, nonce))",
        "timestamp": "milliseconds since the epoch; refused outside the window",
        "nonce": "random string",
        "echostr": "GET only: echoed back once the signature checks",
    },
    docs="https://open.weibo.com/wiki/消息推送服务",
    example='{"receiver_id": 5900000001, "sender_id": 5100000002, "created_at": "Thu Nov 27 09:15:30 +0800 2026",'
    ' "type": "text", "text": "人民路公交站旁边的垃圾桶满了没人清理", "data": {}}',
    reply="a passive reply as JSON, or empty",
)


class WeiboChannel(BaseChannel):
    name: ClassVar[str] = "weibo"
    can_send: ClassVar[bool] = True
    max_body_bytes: ClassVar[int] = 64 * 1024
    settings_class: ClassVar[type[ChannelSettings]] = WeiboSettings
    provider_format: ClassVar[ProviderFormat] = FORMAT
    clock: Callable[[], float] = staticmethod(time.time)  # tests pin it

    @classmethod
    def accounts(cls, settings: Mapping[str, Any]) -> dict[str, Account]:
        own = cls.own_settings(settings)
        assert isinstance(own, WeiboSettings)
        secret = revealed(own.app_secret)
        if not secret:
            return {}
        values = {
            "app_key": own.app_key,
            "app_secret": secret,
            "access_token": revealed(own.access_token),
            "reply_url": own.reply_url,
            "media_url": own.media_url,
            "api_base": own.api_base,  # @-mentions (channels/weibo_mentions.py)
            "timestamp_window_s": own.timestamp_window_s,
            # SupportsPolling: the @-mention poller (gateway/tasks/mentions.py)
            "poll_interval_s": own.poll_interval_s,
            "poll_max_pages": own.poll_max_pages,
            "poll_page_size": own.poll_page_size,
            "poll_timeout_s": own.poll_timeout_s,
        }
        return {"default": Account("default", values, secret_fields=("app_secret", "access_token"))}

    def shortcomings(self, acct: Account) -> list[str]:
        if acct.get("access_token"):
            return []
        return [
            f"weibo account {acct.name!r} has no access token (GATEWAY_WEIBO_ACCESS_TOKEN):"
            " pictures are not fetched and status news cannot be sent"
        ]

    # ------------------------------------------------------------------ inbound

    def verify(self, req: RawRequest, acct: Account) -> None:
        secret = acct.get("app_secret")
        sig, ts, nonce = (req.query.get(k, "") for k in ("signature", "timestamp", "nonce"))
        if not secret:
            raise InvalidSignature("no Weibo app secret configured")
        if not (sig and ts and nonce):
            raise InvalidSignature("missing signature, timestamp or nonce")
        if not hmac.compare_digest(signature(secret, ts, nonce), sig.lower()):
            raise InvalidSignature("Weibo signature does not match")
        self._fresh(ts, int(acct.get("timestamp_window_s", 300)))

    def _fresh(self, ts: str, window: int) -> None:
        """Weibo signs the query, not the body: a stale timestamp bounds how long a captured
        signature can be replayed with another body. Weibo sends milliseconds."""
        if window <= 0:
            return
        if not (ts.isascii() and ts.isdigit() and len(ts) <= 15):
            raise InvalidSignature("timestamp is not a number")  # a 400-digit one overflowed a float
        sent = int(ts) / (1000 if len(ts) > 11 else 1)
        if abs(self.clock() - sent) > window:
            raise InvalidSignature("stale timestamp")

    def signed_query(self, req: RawRequest, acct: Account) -> tuple[str, int] | None:
        """``SupportsReplayGuard``: the signature covers ``timestamp`` and ``nonce``, not the body
        (twice the window: either side of now; 600 s when the window is off)."""
        window = int(acct.get("timestamp_window_s", 300))
        return f"{acct.name}:{req.query.get('timestamp', '')}:{req.query.get('nonce', '')}", 2 * window or 600

    def handshake(self, req: RawRequest, acct: Account) -> RawResponse:
        self.verify(req, acct)
        return RawResponse(status=200, body=req.query.get("echostr", "").encode("utf-8"))

    def parse(self, req: RawRequest, acct: Account) -> list[InboundMessage]:
        data = json_object(req.body)
        missing = {k: "required" for k in ("type", "sender_id", "created_at") if data.get(k) in (None, "")}
        if missing:
            raise BadPayload("Weibo push without " + ", ".join(missing), fields=missing)
        received = _created_at(str(data["created_at"]))
        payload: dict[str, Any] = data["data"] if isinstance(data.get("data"), dict) else {}
        kind = _KINDS.get(str(data["type"]), MessageKind.EVENT)
        text, location, event = "", None, None
        media: tuple[MediaRef, ...] = ()
        if kind == MessageKind.TEXT:
            text = str(data.get("text") or "")[:MAX_TEXT]
        elif kind == MessageKind.LOCATION:
            location = _position(payload)
        elif kind in (MessageKind.IMAGE, MessageKind.VOICE):
            fid = payload.get("tovfid") or payload.get("vfid")
            if fid in (None, ""):
                raise BadPayload(f"{data['type']} message without a file id", fields={"data.tovfid": "required"})
            media = (MediaRef(kind=kind, provider_id=str(fid)),)  # "发了一张图片" is Weibo's placeholder
        else:
            subtype = str(payload.get("subtype") or data["type"])
            event = _EVENTS.get(subtype, subtype)
        return [
            InboundMessage(
                channel=self.name,
                channel_message_id=message_id(data),
                sender=f"weibo:{data['sender_id']}",
                received_at=received,
                kind=kind,
                text=text,
                media=media,
                location=location,
                event=event,
                account=acct.name,
                raw=data,
            )
        ]

    def ack(self, req: RawRequest, acct: Account, msgs: Sequence[InboundMessage], reply: Reply) -> RawResponse:
        """A passive reply (JSON with url-encoded ``data``) when there is something to say."""
        if not msgs:
            return RawResponse(status=200, body=b"")
        first, text = msgs[0], reply.text
        if not text:
            return RawResponse(status=200, body=b"")
        body = {
            "result": True,
            "receiver_id": first.raw.get("sender_id"),
            "sender_id": first.raw.get("receiver_id"),
            "type": "text",
            "data": quote(json.dumps({"text": text}, ensure_ascii=False)),
        }
        return RawResponse(status=200, body=json.dumps(body).encode(), content_type="application/json")

    # ------------------------------------------------------------------ outbound (workers only)

    def send(self, msg: OutboundMessage, acct: Account) -> SendResult:
        token, url = acct.get("access_token"), acct.get("reply_url")
        if not token or not url:
            raise ChannelMisconfigured("GATEWAY_WEIBO_ACCESS_TOKEN and the reply URL are required")
        uid = msg.recipient.removeprefix("weibo:")
        if not uid.isdigit():
            raise SendRejected(f"not a Weibo uid: {msg.recipient[:40]!r}")
        form = {
            "access_token": token,
            "type": "text",
            "data": json.dumps({"text": msg.text}, ensure_ascii=False),
            "receiver_id": uid,
            "save_sender_box": "1",
        }
        try:
            resp = requests.post(url, data=form, timeout=HTTP_TIMEOUT_S)
        except requests.RequestException as exc:
            raise SendRetryable(f"Weibo unreachable: {type(exc).__name__}") from exc
        body = _json(resp)
        code = body.get("error_code")
        if resp.status_code >= 500 or resp.status_code == 429 or code in _RETRYABLE_CODES:
            raise SendRetryable(f"Weibo HTTP {resp.status_code} error {code}: {body.get('error')}")
        if resp.status_code >= 400 or code:
            raise SendRejected(f"Weibo HTTP {resp.status_code} error {code}: {body.get('error')}")
        external = body.get("id") or body.get("idstr")
        return SendResult(external_id=str(external) if external else None, status="sent")

    def fetch_media(self, ref: MediaRef, acct: Account) -> tuple[bytes, str]:
        """``SupportsMediaFetch`` (gateway/tasks/mediafetch.py): download the ``tovfid`` with ``mss/msget``,
        or an @-mention's picture by its URL (fan-service media never carry a URL)."""
        if ref.url:
            return fetch_picture(ref.url, acct)
        provider_id = ref.provider_id or ""
        token, url = acct.get("access_token"), acct.get("media_url")
        if not token or not url:
            raise ChannelMisconfigured("GATEWAY_WEIBO_ACCESS_TOKEN and the media URL are required")
        if not provider_id.isdigit():
            raise SendRejected(f"not a Weibo file id: {provider_id[:40]!r}")
        # Every hop checked, not only the configured URL: a redirect cannot reach an internal host.
        return get_capped(
            url, params={"access_token": token, "fid": provider_id}, allowed=lambda hop: weibo_media_allowed(hop, acct)
        )

    # ``SupportsPolling``: the account's @-mentions (``channels/weibo_mentions.py``).

    def poll_page(
        self, acct: Account, *, since_id: int, max_id: int | None, count: int, timeout_s: float
    ) -> list[dict[str, Any]]:
        api = MentionsApi(acct.get("api_base"), acct.get("access_token"), timeout_s)
        return api.page(since_id=since_id, max_id=max_id, count=count)

    def poll_item_id(self, item: Mapping[str, Any]) -> int | None:
        return status_id(item)

    def poll_message(self, item: Mapping[str, Any], account: str) -> InboundMessage | None:
        return mention_message(item, account)


def message_id(data: Mapping[str, Any]) -> str:
    """Weibo pushes have no id: sender + created_at + a hash of type, text and data, so a retried
    push maps to the same id and two different messages in the same second do not."""
    content = json.dumps([data.get("type"), data.get("text"), data.get("data")], sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(content.encode("utf-8")).hexdigest()[:16]
    return f"{data.get('sender_id')}:{_created_at(str(data.get('created_at'))):%Y%m%d%H%M%S}:{digest}"


def _created_at(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%a %b %d %H:%M:%S %z %Y").astimezone(UTC)
    except ValueError:
        raise BadPayload("created_at is not a Weibo date", fields={"created_at": "invalid date"}) from None


def _position(payload: Mapping[str, Any]) -> Location:
    try:
        lat, lng = float(payload["latitude"]), float(payload["longitude"])
    except (KeyError, TypeError, ValueError):
        raise BadPayload("position without latitude/longitude", fields={"data.latitude": "required"}) from None
    if not (-90 <= lat <= 90 and -180 <= lng <= 180):
        raise BadPayload("position out of range", fields={"data.latitude": "out of range"})
    return Location(lat=lat, lng=lng, source=LocationSource.GPS)


def _json(resp: requests.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
