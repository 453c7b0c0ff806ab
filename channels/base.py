"""The channel contract.

A channel turns a provider's HTTP request into ``InboundMessage`` objects and answers the
provider in its own protocol; it never touches storage or aiohttp. The gateway builds a
``RawRequest`` from the aiohttp request, calls ``verify`` then ``parse``, hands the messages to
the pipeline, and returns what ``ack`` builds. ``send`` runs in a worker only: SDKs such as
wechatpy and twilio block.

Error contract: problems of the caller (bad signature, malformed payload, oversize body) are
raised as the ``channels.errors`` caller errors and answered 403/400/413 by the gateway; an
unknown event is parsed into an ``event`` message or an empty list and acknowledged, never a 5xx.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from channels.errors import BadPayload
from channels.payload import loads
from gateway.models import DeliveryReport, InboundMessage, OutboundMessage, SendResult


@dataclass(frozen=True, slots=True)
class RawRequest:
    method: str
    url: str  # the public URL the provider called (from settings, not the proxied request)
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes = b""
    form: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply:
    """What the core wants to tell the resident in the passive reply (被动回复), if anything."""

    text: str | None = None
    case_number: str | None = None


@dataclass(frozen=True, slots=True)
class Account:
    """One configured account of a channel (credentials are data, not code)."""

    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    secret_fields: tuple[str, ...] = ()

    def get(self, key: str, default: Any = None) -> Any:
        value = self.settings.get(key, default)
        return default if value in (None, "") else value

    def redacted(self) -> dict[str, Any]:
        return {k: ("***" if k in self.secret_fields and v else v) for k, v in self.settings.items()}


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or ``BadPayload`` saying why not."""
    data = loads(body)  # depth, huge numbers, NUL and lone surrogates are a BadPayload too
    if not isinstance(data, dict):
        raise BadPayload("body must be a JSON object", fields={"body": "expected an object"})
    return data


@runtime_checkable
class Channel(Protocol):
    name: ClassVar[str]

    def verify(self, req: RawRequest, acct: Account) -> None:
        """Raise ``InvalidSignature`` unless the request comes from the provider."""

    def parse(self, req: RawRequest, acct: Account) -> list[InboundMessage]:
        """Turn the payload into messages; raise ``BadPayload`` when it cannot."""

    def ack(self, req: RawRequest, acct: Account, msgs: Sequence[InboundMessage], reply: Reply) -> RawResponse:
        """The provider's "got it", carrying ``reply`` where the protocol allows a passive reply."""

    def send(self, msg: OutboundMessage, acct: Account) -> SendResult:
        """Send to a resident; worker only. Raises ``SendRetryable`` / ``SendRejected``."""


@runtime_checkable
class SupportsHandshake(Protocol):
    """Channels whose provider checks the callback URL with a GET (WeChat/Weibo ``echostr``)."""

    def handshake(self, req: RawRequest, acct: Account) -> RawResponse: ...


@runtime_checkable
class SupportsDeliveryReports(Protocol):
    """Channels whose provider reports what became of a sent message (Twilio ``StatusCallback``),
    served at ``POST /channels/{channel}/{account}/status`` after ``verify``."""

    def parse_delivery_report(self, req: RawRequest, acct: Account) -> DeliveryReport: ...


class BaseChannel:
    """Defaults for the optional parts of the contract."""

    name: ClassVar[str] = ""
    max_body_bytes: ClassVar[int] = 1 << 20
    can_send: ClassVar[bool] = False  # True where ``send`` reaches residents

    @classmethod
    def accounts(cls, settings: Mapping[str, Any]) -> dict[str, Account]:
        """The accounts configured for this channel, from the gateway's settings as a plain mapping.

        The default is one account named ``default`` with no credentials; channels with
        credentials override this and return nothing when they are not configured.
        """
        return {"default": Account("default")}

    def verify(self, req: RawRequest, acct: Account) -> None:
        raise NotImplementedError(f"channel {self.name!r} must check its provider's signature")

    def parse(self, req: RawRequest, acct: Account) -> list[InboundMessage]:
        raise NotImplementedError(f"channel {self.name!r} must parse its provider's payload")

    def ack(self, req: RawRequest, acct: Account, msgs: Sequence[InboundMessage], reply: Reply) -> RawResponse:
        return RawResponse(status=200, body=b"success")

    def send(self, msg: OutboundMessage, acct: Account) -> SendResult:
        from channels.errors import ChannelMisconfigured

        raise ChannelMisconfigured(f"channel {self.name!r} cannot send messages")
