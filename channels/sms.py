"""SMS and MMS (channel ``sms``), one account per provider account: ``/channels/sms/twilio``.

What every SMS provider shares lives here: numbers in E.164 (senders are ``tel:+...``), the
opt-out keywords (STOP/UNSUBSCRIBE/退订, START/订阅, HELP/帮助) parsed into ``event`` messages
``unsubscribe`` / ``subscribe`` / ``help``, which the core records on the resident's ``Contact``
(``Pipeline._note_events``: the ``notify`` task then sends nothing to an opted-out number), and
the choice of provider per account (``channels/sms_providers.py``). Delivery callbacks are
served by the core's ``/channels/sms/{account}/status`` (``parse_delivery_report``). Several SMS from one number
within the session window are stitched into one report by the core, as for WeChat.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

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
from channels.errors import BadPayload, ChannelMisconfigured, SendRejected
from channels.sms_providers import PROVIDERS, SmsProvider, media_kind
from gateway.models import DeliveryReport, InboundMessage, MediaRef, MessageKind, OutboundMessage, SendResult

# Twilio's default opt-out keywords plus the Chinese ones residents use.
# https://help.twilio.com/articles/223134027 (Twilio support for opt-out keywords)
KEYWORDS: dict[str, str] = {
    **dict.fromkeys(
        ("stop", "stopall", "unsubscribe", "cancel", "end", "quit", "退订", "td", "取消订阅"), "unsubscribe"
    ),
    **dict.fromkeys(("start", "yes", "unstop", "订阅", "恢复"), "subscribe"),
    **dict.fromkeys(("help", "info", "帮助"), "help"),
}
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_CN_MOBILE = re.compile(r"^1[3-9]\d{9}$")


def e164(number: str) -> str | None:
    """A phone number in E.164, or None; bare mainland mobiles get +86."""
    cleaned = re.sub(r"[\s\-().]", "", number or "")
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    if _CN_MOBILE.match(cleaned):
        cleaned = "+86" + cleaned
    return cleaned if _E164.match(cleaned) else None


def keyword_event(text: str) -> str | None:
    return KEYWORDS.get(text.strip().strip("。.!！").lower())


class TwilioSettings(ChannelSettings):
    """The Twilio account (``GATEWAY_TWILIO_*``); a mainland provider adds its own class and prefix."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_TWILIO_", populate_by_name=True)

    account_sid: str | None = None
    auth_token: SecretStr | None = None
    from_: str | None = Field(None, validation_alias="GATEWAY_TWILIO_FROM")  # the sender number (`from` is a keyword)
    api_base: str | None = None
    trust_forwarded: bool = False  # also check signatures against X-Forwarded-Proto/Host
    media_hosts: str = ""  # media download hosts beyond Twilio's own, comma-separated ("*.example.com")


FORMAT = ProviderFormat(
    media_type="application/x-www-form-urlencoded",
    payload="Twilio's messaging webhook form (From, To, Body, MessageSid, NumMedia, MediaUrl0...);"
    " the delivery reports at `/status` carry MessageSid and MessageStatus",
    signature="`X-Twilio-Signature`: HMAC-SHA1 (base64) of the public URL and the sorted form fields under the"
    " account's auth token. 403 when it fails",
    headers={"X-Twilio-Signature": "Twilio's request signature"},
    docs="https://www.twilio.com/docs/messaging/guides/webhook-request",
    example="MessageSid=SM11111111111111111111111111111111&AccountSid=AC00000000000000000000000000000000"
    "&From=%2B8613800000001&To=%2B8610690000000&NumMedia=0&Body=%E8%B7%AF%E7%81%AF%E4%B8%8D%E4%BA%AE",
    reply="TwiML (`<Response>`, with a `<Message>` when there is a reply)",
)


class SmsChannel(BaseChannel):
    name: ClassVar[str] = "sms"
    can_send: ClassVar[bool] = True
    max_body_bytes: ClassVar[int] = 64 * 1024  # Twilio form posts are a few KB even with 10 media
    settings_class: ClassVar[type[ChannelSettings]] = TwilioSettings
    provider_format: ClassVar[ProviderFormat] = FORMAT

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    def accounts(cls, settings: Mapping[str, Any]) -> dict[str, Account]:
        """The Twilio account from ``GATEWAY_TWILIO_*``; a mainland provider adds its own here."""
        own = cls.own_settings(settings)
        assert isinstance(own, TwilioSettings)
        found: dict[str, Account] = {}
        if own.account_sid and revealed(own.auth_token):
            public = str(settings.get("public_url") or "").rstrip("/")
            found["twilio"] = Account(
                "twilio",
                {
                    "provider": "twilio",
                    "account_sid": own.account_sid,
                    "auth_token": revealed(own.auth_token),
                    "from_number": own.from_,
                    "api_base": own.api_base,
                    "media_hosts": own.media_hosts,  # beyond Twilio's own (sms_providers.py)
                    "trust_forwarded": own.trust_forwarded,
                    "status_callback": f"{public}/channels/sms/twilio/status" if public else None,
                },
                secret_fields=("auth_token",),
            )
        return found

    def shortcomings(self, acct: Account) -> list[str]:
        if acct.get("from_number"):
            return []
        return [f"sms account {acct.name!r} has no sender number (GATEWAY_TWILIO_FROM): status news cannot be sent"]

    def provider(self, acct: Account) -> SmsProvider:
        provider = PROVIDERS.get(acct.get("provider", acct.name))
        if provider is None:
            raise ChannelMisconfigured(f"unknown SMS provider for account {acct.name!r}")
        return provider

    def verify(self, req: RawRequest, acct: Account) -> None:
        self.provider(acct).verify(req, acct)

    def parse(self, req: RawRequest, acct: Account) -> list[InboundMessage]:
        inbound = self.provider(acct).parse_inbound(req, acct)
        sender = e164(inbound.sender)
        if sender is None:
            raise BadPayload("sender is not a phone number", fields={"From": "not an E.164 number"})
        event = keyword_event(inbound.text) if not inbound.media else None
        media = tuple(
            MediaRef(kind=media_kind(m.content_type), provider_id=m.url, url=m.url, content_type=m.content_type)
            for m in inbound.media
        )
        if event:
            kind = MessageKind.EVENT
        elif media:
            kind = media[0].kind
        else:
            kind = MessageKind.TEXT
        return [
            InboundMessage(
                channel=self.name,
                channel_message_id=inbound.message_id,
                sender=f"tel:{sender}",
                received_at=self.clock(),
                kind=kind,
                text="" if event else inbound.text,
                media=media,
                event=event,
                account=acct.name,
                raw=inbound.raw,
            )
        ]

    def parse_delivery_report(self, req: RawRequest, acct: Account) -> DeliveryReport:
        """``SupportsDeliveryReports``: the provider's status callback (delivered, failed, ...)."""
        return self.provider(acct).parse_delivery_report(req, acct)

    def ack(self, req: RawRequest, acct: Account, msgs: Sequence[InboundMessage], reply: Reply) -> RawResponse:
        """TwiML (or the provider's equivalent) carrying the core's reply (keyword answers included)."""
        return self.provider(acct).ack(reply.text)

    def send(self, msg: OutboundMessage, acct: Account) -> SendResult:
        to = e164(msg.recipient.removeprefix("tel:"))
        if to is None:
            raise SendRejected(f"not a phone number: {msg.recipient[:40]!r}")
        return self.provider(acct).send(to, msg.text, acct)

    def fetch_media(self, ref: MediaRef, acct: Account) -> tuple[bytes, str]:
        """``SupportsMediaFetch`` (gateway/tasks/mediafetch.py): the MediaUrl, with the account's credentials."""
        url = ref.provider_id or ref.url
        if not url:
            raise SendRejected("media without a URL")
        return self.provider(acct).fetch_media(url, acct)
