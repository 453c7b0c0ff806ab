"""WeChat Official Account (公众号) channel: callback verification, parsing, passive replies.

Protocol (https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Access_Overview.html):

- ``GET`` with ``signature``/``timestamp``/``nonce``/``echostr`` checks the URL (服务器配置);
  we answer ``echostr``. A ``msg_signature`` with an encrypted ``echostr`` (the WeCom variant)
  is checked and decrypted.
- ``POST`` carries one XML message. ``signature = sha1(sort(token, timestamp, nonce))`` in the
  query; it does not cover the body, so a stale ``timestamp`` is refused
  (``timestamp_window_s``) to bound replays. In safe mode (安全模式, ``encrypt_type=aes``) and
  compatible mode (兼容模式) the body carries ``Encrypt`` and the query ``msg_signature =
  sha1(sort(token, timestamp, nonce, Encrypt))``; we then trust only the decrypted XML and answer
  with an encrypted passive reply (被动回复).
- WeChat retries three times without an answer within 5 s; the core de-duplicates on
  ``MsgId`` (events: ``FromUserName`` + ``CreateTime``, WeChat's own advice). An empty body or
  ``success`` means "no reply".

Accounts. The channel's settings are ``WeChatSettings`` (``GATEWAY_WECHAT_*``). The ``default``
account (``/channels/wechat``) comes from ``GATEWAY_WECHAT_TOKEN``,
``GATEWAY_WECHAT_AES_KEY``, ``GATEWAY_WECHAT_APP_ID``, ``GATEWAY_WECHAT_APP_SECRET`` and
``GATEWAY_WECHAT_TEMPLATE_ID``; more accounts (``/channels/wechat/<name>``) come from
``GATEWAY_WECHAT_ACCOUNTS``, a JSON object ``{"<name>": {"token": ..., "aes_key": ...,
"app_id": ..., "app_secret": ..., "template_id": ..., "template_fields": {...},
"template_url": ...}}``; a field left out takes the default account's shared settings (API base,
timestamp window, template fields). An account without a token is not served.

Outbound calls (notifications, media downloads) live in ``channels/wechat_api.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from xml.etree.ElementTree import ParseError  # noqa: S405 - only the exception type

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from channels import wechat_api
from channels.base import (
    Account,
    BaseChannel,
    ChannelSettings,
    ProviderFormat,
    RawRequest,
    RawResponse,
    Reply,
    revealed,
)
from channels.errors import BadPayload, InvalidSignature
from gateway.models import (
    InboundMessage,
    Location,
    LocationSource,
    MediaRef,
    MessageKind,
    OutboundMessage,
    SendResult,
)

log = logging.getLogger(__name__)

SECRET_FIELDS = ("token", "aes_key", "app_secret")
_REQUIRED = ("ToUserName", "FromUserName", "CreateTime", "MsgType")
_MEDIA_KINDS = {
    "image": MessageKind.IMAGE,
    "voice": MessageKind.VOICE,
    "video": MessageKind.VIDEO,
    "shortvideo": MessageKind.VIDEO,
}


class WeChatSettings(ChannelSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_WECHAT_")

    token: SecretStr | None = None
    aes_key: SecretStr | None = None
    app_id: str | None = None
    app_secret: SecretStr | None = None
    api_base: str = wechat_api.DEFAULT_API_BASE
    timestamp_window_s: int = 300
    allow_plain: bool = False  # accept plain callbacks although an AES key is set (while switching modes)
    template_id: str | None = None  # template message for news outside the 48 h window
    template_fields: str = ""  # JSON {"template key": "text|case_number|time"}; see wechat_api.py
    template_url: str | None = None  # link of the template message; {case} is replaced
    accounts: SecretStr | None = None  # JSON {"name": {"token": ..., ...}}: extra accounts

    @model_validator(mode="after")
    def _token_with_app_id(self) -> WeChatSettings:
        if self.app_id and not self.token:
            raise ValueError("GATEWAY_WECHAT_TOKEN is required when GATEWAY_WECHAT_APP_ID is set")
        return self


def signature(*parts: str) -> str:
    """WeChat's signature: sha1 over the sorted, concatenated parts."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324 - WeChat's scheme


def _check(expected: str, given: str | None, what: str) -> None:
    if not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise InvalidSignature(f"{what} mismatch")


FORMAT = ProviderFormat(
    media_type="text/xml",
    payload="one WeChat message or event as XML (ToUserName, FromUserName, CreateTime, MsgType, ...);"
    " in safe mode (encrypt_type=aes) the XML carries only `Encrypt`",
    signature="`signature` = sha1 of the sorted token, timestamp and nonce (the body is not covered, so a"
    " stale timestamp is refused); in safe mode `msg_signature` also covers `Encrypt`. 403 when it fails",
    query={
        "signature": "sha1(sort(token, timestamp, nonce))",
        "timestamp": "seconds since the epoch; refused outside the window",
        "nonce": "random string",
        "echostr": "GET only: echoed back once the signature checks",
        "encrypt_type": "`aes` in safe mode (安全模式)",
        "msg_signature": "safe mode: sha1(sort(token, timestamp, nonce, Encrypt))",
    },
    docs="https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Receiving_standard_messages.html",
    example="<xml><ToUserName><![CDATA[gh_0000city0000]]></ToUserName>"
    "<FromUserName><![CDATA[oCITIZEN00000000000000000001]]></FromUserName><CreateTime>1764201600</CreateTime>"
    "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[小区门口的路灯坏了]]></Content>"
    "<MsgId>24001000000000001</MsgId></xml>",
    reply="a passive reply (被动回复) as XML, or `success`",
)


class WeChatChannel(BaseChannel):
    name: ClassVar[str] = "wechat"
    max_body_bytes: ClassVar[int] = 64 * 1024  # a callback is one small XML message
    can_send: ClassVar[bool] = True
    settings_class: ClassVar[type[ChannelSettings]] = WeChatSettings
    provider_format: ClassVar[ProviderFormat] = FORMAT

    def __init__(self, *, clock: Callable[[], float] = time.time, tokens: Any = None) -> None:
        self.clock = clock  # injected in tests: the conformance captures carry old timestamps
        self.api = wechat_api.WeChatApi(tokens=tokens)

    # ------------------------------------------------------------------ accounts

    @classmethod
    def accounts(cls, settings: Mapping[str, Any]) -> dict[str, Account]:
        own = cls.own_settings(settings)
        assert isinstance(own, WeChatSettings)
        shared = {
            "api_base": own.api_base or wechat_api.DEFAULT_API_BASE,
            "timestamp_window_s": own.timestamp_window_s,
            "template_fields": _json(own.template_fields) or None,
            "template_url": own.template_url,
            "redis_url": settings.get("redis_url"),
            "media_max_bytes": settings.get("media_fetch_max_bytes"),
            "allow_plain": own.allow_plain,
        }
        default = {
            "token": revealed(own.token),
            "aes_key": revealed(own.aes_key),
            "app_id": own.app_id,
            "app_secret": revealed(own.app_secret),
            "template_id": own.template_id,
        }
        configs: dict[str, Mapping[str, Any]] = {"default": default}
        extra = _json(revealed(own.accounts))
        if not isinstance(extra, dict):
            raise ValueError("GATEWAY_WECHAT_ACCOUNTS must be a JSON object of accounts")
        configs.update(extra)
        found = {}
        for name, conf in configs.items():
            merged = {**shared, **{k: v for k, v in conf.items() if v not in (None, "")}}
            if merged.get("token"):
                found[name] = Account(name, merged, secret_fields=SECRET_FIELDS)
        return found

    def shortcomings(self, acct: Account) -> list[str]:
        if wechat_api.has_api_credentials(acct):
            return []
        return [
            f"wechat account {acct.name!r} has no app_id/app_secret (GATEWAY_WECHAT_APP_ID, GATEWAY_WECHAT_APP_SECRET):"
            " photos are fetched from PicUrl only, voice notes and videos are not fetched, status news cannot be sent"
        ]

    # ------------------------------------------------------------------ inbound

    def handshake(self, req: RawRequest, acct: Account) -> RawResponse:
        q = req.query
        timestamp, nonce, echostr = q.get("timestamp", ""), q.get("nonce", ""), q.get("echostr", "")
        self._fresh(timestamp, acct)
        if q.get("msg_signature"):
            _check(signature(acct.get("token"), timestamp, nonce, echostr), q.get("msg_signature"), "msg_signature")
            echostr = self._crypto(acct).decrypt(echostr)
        else:
            _check(signature(acct.get("token"), timestamp, nonce), q.get("signature"), "signature")
        return RawResponse(status=200, body=echostr.encode())

    def verify(self, req: RawRequest, acct: Account) -> None:
        q = req.query
        timestamp, nonce = q.get("timestamp", ""), q.get("nonce", "")
        token = acct.get("token")
        encrypted = _encrypted_part(req)
        if encrypted is not None:
            _check(signature(token, timestamp, nonce, encrypted), q.get("msg_signature"), "msg_signature")
        else:
            if q.get("encrypt_type", "raw") != "raw" or q.get("msg_signature"):
                raise InvalidSignature("encrypted callback without Encrypt")
            # With an AES key the account is in safe or compatible mode, where WeChat always sends
            # the encrypted form. A plain callback's signature does not cover its body, so taking
            # one would let anyone who saw a callback URL post any message as any resident.
            if acct.get("aes_key") and not acct.get("allow_plain"):
                raise InvalidSignature("plain callback to an account in safe mode")
            _check(signature(token, timestamp, nonce), q.get("signature"), "signature")
        self._fresh(timestamp, acct)

    def parse(self, req: RawRequest, acct: Account) -> list[InboundMessage]:
        fields = xml_fields(req.body)
        encrypted = fields.get("Encrypt") if req.query.get("msg_signature") else None
        if encrypted:
            fields = xml_fields(self._crypto(acct).decrypt(encrypted).encode())
        return [to_message(fields, acct.name)]

    def ack(self, req: RawRequest, acct: Account, msgs: Sequence[InboundMessage], reply: Reply) -> RawResponse:
        if not reply.text or not msgs:
            return RawResponse(status=200, body=b"success")
        openid = msgs[0].sender.removeprefix("wechat:")
        ours = str(msgs[0].raw.get("ToUserName", ""))
        xml = text_reply(openid, ours, reply.text, int(self.clock()))
        if req.query.get("msg_signature"):
            nonce = str(secrets.randbelow(10**10))
            xml = self._crypto(acct).encrypt_reply(xml, nonce, str(int(self.clock())))
        return RawResponse(status=200, body=xml.encode(), content_type="application/xml")

    # ------------------------------------------------------------------ outbound (worker only)

    def send(self, msg: OutboundMessage, acct: Account) -> SendResult:
        return self.api.send(msg, acct)

    def fetch_media(self, ref: MediaRef, acct: Account) -> tuple[bytes, str]:
        return self.api.fetch_media(ref, acct)

    def signed_query(self, req: RawRequest, acct: Account) -> tuple[str, int] | None:
        """``SupportsReplayGuard``: a plain callback's ``signature`` covers ``timestamp`` and
        ``nonce`` only, so one captured query could carry any body while it is fresh (either side
        of now: twice the window). WeChat's own retries (no answer within 5 s) repeat the query
        with the same body, hence the same ``MsgId``. ``msg_signature`` covers the ciphertext."""
        if req.query.get("msg_signature"):  # verify checked it against the Encrypt it carries
            return None
        window = int(acct.get("timestamp_window_s", 300))
        return f"{acct.name}:{req.query.get('timestamp', '')}:{req.query.get('nonce', '')}", 2 * window or 600

    # ------------------------------------------------------------------ helpers

    def _fresh(self, timestamp: str, acct: Account) -> None:
        window = int(acct.get("timestamp_window_s", 300))
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise InvalidSignature("timestamp missing or not a number")  # a 400-digit one overflowed a float
        sent = int(timestamp)
        if window > 0 and abs(self.clock() - sent) > window:
            raise InvalidSignature("stale timestamp")

    @staticmethod
    def _crypto(acct: Account) -> wechat_api.Crypto:
        if not acct.get("aes_key"):
            raise InvalidSignature("encrypted callback but no EncodingAESKey configured")
        return wechat_api.Crypto(acct.get("token"), acct.get("aes_key"), acct.get("app_id", ""))


def _json(value: Any) -> Any:
    if value in (None, ""):
        return {}
    if isinstance(value, dict):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON in WeChat settings: {exc}") from None


def _encrypted_part(req: RawRequest) -> str | None:
    if not req.query.get("msg_signature"):
        return None
    encrypted = xml_fields(req.body).get("Encrypt")
    if not encrypted:
        raise InvalidSignature("msg_signature without Encrypt")
    return encrypted


def xml_fields(body: bytes) -> dict[str, str]:
    """The flat ``<xml>`` children, parsed without DTDs or entities (defusedxml)."""
    try:
        root = fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise BadPayload(f"invalid XML: {exc}") from None
    if root.tag != "xml":
        raise BadPayload("root element is not <xml>")
    return {child.tag: (child.text or "").strip() for child in root if len(child) == 0}


def to_message(f: Mapping[str, str], account: str) -> InboundMessage:
    """One callback's fields as an ``InboundMessage`` (every MsgType; unknown ones as an event)."""
    missing = [k for k in _REQUIRED if not f.get(k)]
    if missing:
        raise BadPayload(f"missing fields: {', '.join(missing)}", fields={k: "required" for k in missing})
    try:
        received = datetime.fromtimestamp(int(f["CreateTime"]), UTC)
    except (ValueError, OverflowError, OSError):
        raise BadPayload("CreateTime is not a unix time", fields={"CreateTime": "invalid"}) from None
    msg_type, sender = f["MsgType"], f["FromUserName"]
    base: dict[str, Any] = {
        "channel": "wechat",
        "sender": f"wechat:{sender}",
        "received_at": received,
        "account": account,
        "raw": dict(f),
        "channel_message_id": f.get("MsgId") or f"event:{sender}:{f['CreateTime']}",
    }
    if msg_type == "event":
        return _event(f, base)
    if msg_type == "text":
        return InboundMessage(kind=MessageKind.TEXT, text=f.get("Content", ""), **base)
    if msg_type in _MEDIA_KINDS:
        return _media(f, msg_type, base)
    if msg_type == "location":
        loc = Location(_coord(f, "Location_X"), _coord(f, "Location_Y"), f.get("Label") or None, LocationSource.GPS)
        return InboundMessage(kind=MessageKind.LOCATION, location=loc, **base)
    if msg_type == "link":
        text = "\n".join(p for p in (f.get("Title"), f.get("Description"), f.get("Url")) if p)
        return InboundMessage(kind=MessageKind.LINK, text=text, **base)
    log.info("wechat message kind not supported", extra={"msg_type": msg_type[:32], "account": account})
    return InboundMessage(kind=MessageKind.EVENT, event="unsupported", **base)


def _media(f: Mapping[str, str], msg_type: str, base: dict[str, Any]) -> InboundMessage:
    if not f.get("MediaId"):
        raise BadPayload("missing fields: MediaId", fields={"MediaId": "required"})
    kind = _MEDIA_KINDS[msg_type]
    ctype = {"image": "image/jpeg", "voice": f"audio/{(f.get('Format') or 'amr').lower()}"}.get(msg_type, "video/mp4")
    ref = MediaRef(kind=kind, provider_id=f["MediaId"], url=f.get("PicUrl") or None, content_type=ctype)
    # Voice: WeChat's speech recognition (语音识别结果) when the account turned it on.
    return InboundMessage(kind=kind, text=f.get("Recognition", ""), media=(ref,), **base)


def _event(f: Mapping[str, str], base: dict[str, Any]) -> InboundMessage:
    event = f.get("Event") or "unknown"
    location = None
    if event.upper() == "LOCATION":  # periodic location report (上报地理位置)
        event = "LOCATION"
        location = Location(_coord(f, "Latitude"), _coord(f, "Longitude"), None, LocationSource.GPS)
    elif event not in {"subscribe", "unsubscribe", "CLICK", "VIEW", "SCAN"}:
        log.info("wechat event not handled", extra={"event": event[:64]})
    return InboundMessage(kind=MessageKind.EVENT, event=event, location=location, text=f.get("EventKey", ""), **base)


def _coord(f: Mapping[str, str], key: str) -> float:
    bound = 90 if key in ("Location_X", "Latitude") else 180  # X and Latitude are latitudes
    try:
        value = float(f[key])
    except (KeyError, ValueError):
        raise BadPayload(f"missing or invalid {key}", fields={key: "a number is required"}) from None
    if not -bound <= value <= bound:  # also false for NaN
        raise BadPayload(f"{key} out of range", fields={key: f"a number from -{bound} to {bound}"})
    return value


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply(to_user: str, from_user: str, text: str, now: int) -> str:
    """A passive text reply (被动回复用户消息, MsgType text)."""
    return (
        f"<xml><ToUserName>{_cdata(to_user)}</ToUserName><FromUserName>{_cdata(from_user)}</FromUserName>"
        f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{_cdata(text)}</Content></xml>"
    )


__all__ = ["WeChatChannel", "signature", "text_reply", "to_message", "xml_fields"]
