"""SMS providers behind one small interface, so a mainland provider can sit beside Twilio.

``SmsChannel`` (``channels/sms.py``) owns what every SMS provider shares (opt-out keywords,
E.164 numbers, the ``sms`` channel name); a provider only speaks its wire protocol:

- ``verify`` / ``parse_inbound`` / ``ack`` for the inbound webhook,
- ``parse_delivery_report`` for delivery callbacks,
- ``send`` and ``fetch_media``, which block (SDK, HTTP) and so run in workers or threads only.

A new provider is one class here (or in a plugin) plus one entry in ``PROVIDERS``; an account
names its provider in ``Account.settings["provider"]``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

import requests
from multidict import MultiDict
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import SIGNATURE_SETTINGS_HEADER, RequestValidator, get_signature_algorithm
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from channels.base import Account, RawRequest, RawResponse
from channels.errors import BadPayload, ChannelMisconfigured, InvalidSignature, SendRejected, SendRetryable
from channels.http import HTTP_TIMEOUT_S, get_capped, host_allowed
from gateway.models import DeliveryReport, MessageKind, SendResult

TWILIO_API = "https://api.twilio.com"
MAX_MEDIA = 10


@dataclass(frozen=True, slots=True)
class SmsMedia:
    url: str
    content_type: str | None


@dataclass(frozen=True, slots=True)
class SmsInbound:
    """One inbound SMS/MMS in provider-neutral terms (numbers as the provider sent them)."""

    message_id: str
    sender: str
    recipient: str
    text: str
    media: tuple[SmsMedia, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)


class SmsProvider(Protocol):
    name: ClassVar[str]

    def verify(self, req: RawRequest, acct: Account) -> None: ...

    def parse_inbound(self, req: RawRequest, acct: Account) -> SmsInbound: ...

    def parse_delivery_report(self, req: RawRequest, acct: Account) -> DeliveryReport: ...

    def ack(self, text: str | None) -> RawResponse: ...

    def send(self, to: str, text: str, acct: Account) -> SendResult: ...

    def fetch_media(self, url: str, acct: Account) -> tuple[bytes, str]: ...


def form_params(body: bytes) -> MultiDict[str]:
    """The form as Twilio signed it: every value of a repeated key is kept."""
    return MultiDict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def decode_possible_base64(text: str) -> str:
    """Twilio sometimes delivers a concatenated SMS with a base64 body (courier's
    ``DecodePossibleBase64``); decode only what cannot plausibly be a resident's own words."""
    stripped = text.replace("\r", "").replace("\n", "").strip()
    if len(stripped) < 60 or len(stripped) % 4 or " " in stripped:
        return text
    try:
        raw = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        return text
    decoded = raw.decode("utf-8", errors="ignore")
    # A multi-part message may be cut inside its last character: allow up to 3 dropped bytes.
    if len(raw) - len(decoded.encode("utf-8")) > 3 or not all(c.isprintable() or c.isspace() for c in decoded):
        return text
    return decoded


class _RebasedHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no types
    """twilio's own HTTP client, sending what it would send to api.twilio.com to ``api_base``
    instead (a local fake in tests, a regional edge or proxy in deployments)."""

    def __init__(self, api_base: str | None, timeout: float = HTTP_TIMEOUT_S) -> None:
        super().__init__(timeout=timeout)
        self.api_base = api_base

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        return super().request(method, rebase(url, self.api_base), *args, **kwargs)


def rebase(url: str, api_base: str | None) -> str:
    if api_base and url.startswith(TWILIO_API):
        return api_base.rstrip("/") + url[len(TWILIO_API) :]
    return url


_STATUS = {
    "delivered": "delivered",
    "failed": "failed",
    "undelivered": "undelivered",
    "sent": "sent",
    "queued": "sent",
    "sending": "sent",
    "accepted": "sent",
}
OPTED_OUT_ERRORS = frozenset({"21610"})  # "Attempt to send to unsubscribed recipient"


class TwilioProvider:
    """Twilio Programmable Messaging: webhooks signed with ``X-Twilio-Signature``, TwiML answers.

    Docs: https://www.twilio.com/docs/usage/webhooks/webhooks-security and
    https://www.twilio.com/docs/messaging/guides/webhook-request
    """

    name: ClassVar[str] = "twilio"

    def verify(self, req: RawRequest, acct: Account) -> None:
        token = acct.get("auth_token")
        signature = _header(req.headers, "X-Twilio-Signature")
        if not token:
            raise InvalidSignature("no Twilio auth token configured")
        if not signature:
            raise InvalidSignature("missing X-Twilio-Signature")
        validator = RequestValidator(token)
        algorithm = get_signature_algorithm(_header(req.headers, SIGNATURE_SETTINGS_HEADER))
        # JSON webhooks are signed over the URL only, with the body's hash in ``bodySHA256``.
        json_body = "bodySHA256" in parse_qs(urlsplit(req.url).query)  # as the validator itself decides
        params: Any = req.body.decode("utf-8", "replace") if json_body else form_params(req.body)
        # RequestValidator tries each URL with and without the default port, as Twilio documents.
        for url in _candidate_urls(req, acct):
            if validator.validate(url, params, signature, algorithm):
                return
        raise InvalidSignature("X-Twilio-Signature does not match")

    def parse_inbound(self, req: RawRequest, acct: Account) -> SmsInbound:
        form = form_params(req.body)
        sid = form.get("MessageSid") or form.get("SmsSid") or form.get("SmsMessageSid")
        sender = form.get("From")
        missing = {k: "required" for k, v in (("MessageSid", sid), ("From", sender)) if not v}
        if missing:
            raise BadPayload("Twilio message without " + ", ".join(missing), fields=missing)
        assert sid is not None and sender is not None
        media = []
        for i in range(min(_int(form.get("NumMedia")), MAX_MEDIA)):
            url = form.get(f"MediaUrl{i}")
            if url:
                media.append(SmsMedia(url, form.get(f"MediaContentType{i}") or None))
        return SmsInbound(
            message_id=sid,
            sender=sender,
            recipient=form.get("To", ""),
            text=decode_possible_base64(form.get("Body", "")).strip(),
            media=tuple(media),
            raw=dict(form),
        )

    def parse_delivery_report(self, req: RawRequest, acct: Account) -> DeliveryReport:
        form = form_params(req.body)
        sid, status = (
            form.get("MessageSid") or form.get("SmsSid"),
            form.get("MessageStatus") or form.get("DeliveryReport"),
        )
        if not sid or not status:
            raise BadPayload("status callback without MessageSid/MessageStatus", fields={"MessageSid": "required"})
        error = form.get("ErrorCode") or None
        return DeliveryReport(sid, _STATUS.get(status.lower(), "sent"), error, opted_out=error in OPTED_OUT_ERRORS)

    def ack(self, text: str | None) -> RawResponse:
        twiml = MessagingResponse()
        if text:
            twiml.message(text)
        return RawResponse(status=200, body=str(twiml).encode("utf-8"), content_type="text/xml")

    def client(self, acct: Account) -> Client:
        sid, token = acct.get("account_sid"), acct.get("auth_token")
        if not sid or not token:
            raise ChannelMisconfigured("Twilio account SID and auth token are required")
        return Client(sid, token, http_client=_RebasedHttpClient(acct.get("api_base")))

    def send(self, to: str, text: str, acct: Account) -> SendResult:
        sender = acct.get("from_number")
        if not sender:
            raise ChannelMisconfigured("GATEWAY_TWILIO_FROM is not set")
        options: dict[str, Any] = {"to": to, "from_": sender, "body": text}
        if acct.get("status_callback"):
            options["status_callback"] = acct.get("status_callback")
        try:
            message = self.client(acct).messages.create(**options)
        except TwilioRestException as exc:
            # 429 and 5xx are Twilio's "try later"; other 4xx (bad number, 21610 opted out) are final.
            if exc.status == 429 or exc.status >= 500:
                raise SendRetryable(f"Twilio {exc.status}: {exc.msg}") from exc
            raise SendRejected(f"Twilio {exc.status} error {exc.code}: {exc.msg}") from exc
        except (requests.RequestException, TwilioException) as exc:
            raise SendRetryable(f"Twilio unreachable: {type(exc).__name__}") from exc
        return SendResult(external_id=message.sid, status="sent", detail={"twilio_status": message.status})

    def fetch_media(self, url: str, acct: Account) -> tuple[bytes, str]:
        """Download a ``MediaUrlN`` with the account's credentials (HTTP basic auth, needed when
        "Enforce HTTP Auth on Media URLs" is on). Twilio answers with a redirect to its media
        host; requests drops the credentials when a redirect leaves the original host."""
        target = rebase(url, acct.get("api_base"))
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SendRejected(f"media URL is not absolute: {url[:100]!r}")
        api_host = urlsplit(acct.get("api_base") or TWILIO_API).netloc
        auth = (acct.get("account_sid"), acct.get("auth_token")) if parts.netloc == api_host else None
        return get_capped(urlunsplit(parts), auth=auth, allowed=lambda hop: twilio_media_allowed(hop, acct))


# Where Twilio serves media: the API, which answers with a redirect to its media storage
# (https://www.twilio.com/docs/messaging/api/media-resource). Every hop is checked, so neither a
# MediaUrl nor a redirect can make the worker fetch an internal address (SSRF).
TWILIO_MEDIA_HOSTS = ("api.twilio.com", "*.twilio.com", "*.twiliocdn.com", "s3-external-1.amazonaws.com")


def twilio_media_allowed(url: str, acct: Account) -> bool:
    """Twilio's media hosts over https, the configured API's own origin (a regional edge, a
    proxy, a local fake) and the account's extra ``media_hosts`` (``GATEWAY_TWILIO_MEDIA_HOSTS``)."""
    api = urlsplit(acct.get("api_base") or TWILIO_API)
    parts = urlsplit(url)
    if (parts.scheme, parts.netloc) == (api.scheme, api.netloc):
        return True
    extra = [h.strip().lower() for h in str(acct.get("media_hosts") or "").split(",") if h.strip()]
    return host_allowed(url, TWILIO_MEDIA_HOSTS) or host_allowed(url, extra, schemes=("http", "https"))


def _candidate_urls(req: RawRequest, acct: Account) -> list[str]:
    """The configured public URL, and, where the account trusts its proxy, the URL rebuilt from
    ``X-Forwarded-Proto``/``X-Forwarded-Host`` (Twilio's note on SSL-terminating proxies). The
    signature still needs the auth token, so the forwarded headers only pick which URL to check."""
    urls = [req.url]
    if acct.get("trust_forwarded"):
        proto = _header(req.headers, "X-Forwarded-Proto")
        host = _header(req.headers, "X-Forwarded-Host")
        if proto or host:
            parts = urlsplit(req.url)
            scheme = (proto or parts.scheme).split(",")[0].strip()
            netloc = (host or parts.netloc).split(",")[0].strip()
            urls.append(urlunsplit((scheme, netloc, parts.path, parts.query, "")))
    return urls


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


def media_kind(content_type: str | None) -> MessageKind:
    major = (content_type or "image/").split("/")[0]
    return {"audio": MessageKind.VOICE, "video": MessageKind.VIDEO}.get(major, MessageKind.IMAGE)


PROVIDERS: dict[str, SmsProvider] = {"twilio": TwilioProvider()}
