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

from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from channels.errors import BadPayload, ChannelMisconfigured
from channels.payload import loads
from gateway.models import DeliveryReport, InboundMessage, MediaRef, OutboundMessage, SendResult


@dataclass(frozen=True, slots=True)
class RawRequest:
    method: str
    url: str  # the public URL the provider called (from settings, not the proxied request)
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes = b""
    form: Mapping[str, str] = field(default_factory=dict)
    # Files of a multipart body, already stored by the gateway (the web form's photos).
    media: tuple[MediaRef, ...] = ()


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
class ProviderFormat:
    """A provider's callback as the OpenAPI document describes it: the format is the provider's,
    not ours, so it is described and linked (``docs``) instead of given a schema."""

    media_type: str  # of the POST body
    payload: str  # what the body carries
    signature: str  # how the request is signed, and what is refused
    query: Mapping[str, str] = field(default_factory=dict)  # query parameter -> meaning
    headers: Mapping[str, str] = field(default_factory=dict)  # header -> meaning
    docs: str = ""  # the provider's documentation
    example: str = ""  # a POST body
    reply: str = ""  # what the acknowledgement carries


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


@runtime_checkable
class SupportsMediaFetch(Protocol):
    """Channels whose media arrive as provider handles to download later (WeChat MediaId)."""

    def fetch_media(self, ref: MediaRef, acct: Account) -> tuple[bytes, str]:
        """The bytes and content type of ``ref``; worker thread only (may block).

        Raises ``SendRetryable`` for transient failures, another ``ChannelError`` for permanent ones.
        """
        ...


@runtime_checkable
class SupportsReplayGuard(Protocol):
    """Channels whose signature covers the query but not the body (WeChat plain mode, Weibo): a
    captured signed query could carry another body while its timestamp is still fresh.

    ``signed_query`` (called after ``verify``) names the signed query and how many seconds it
    stays acceptable, or ``None`` when the signature covers the body. The gateway remembers which
    messages first came with the query and refuses it with any others (403); the provider's own
    retry of the same body passes on to the usual de-duplication."""

    def signed_query(self, req: RawRequest, acct: Account) -> tuple[str, int] | None: ...


@runtime_checkable
class SupportsPolling(Protocol):
    """Channels whose provider is polled rather than calling us (Weibo @-mentions): a page of
    items newest first, walked down with ``max_id`` from the newest, never below ``since_id``.
    Run in a worker thread (may block); ``gateway/tasks/mentions.py`` keeps the cursor. The
    account says how: ``poll_interval_s`` (0 or absent: not polled), and the bounds of one run,
    ``poll_max_pages`` pages of ``poll_page_size`` items, each call limited to ``poll_timeout_s``."""

    def poll_page(
        self, acct: Account, *, since_id: int, max_id: int | None, count: int, timeout_s: float
    ) -> list[dict[str, Any]]: ...

    def poll_item_id(self, item: Mapping[str, Any]) -> int | None: ...

    def poll_message(self, item: Mapping[str, Any], account: str) -> InboundMessage | None:
        """The item as a whole-report message, ``None`` to skip it; ``BadPayload`` when malformed."""
        ...


# The key of the gateway's settings mapping (``BaseChannel.accounts``) under which channels'
# settings given in code (tests, a program embedding the gateway) are found, by channel name.
GIVEN_SETTINGS = "channel_settings"


class ChannelSettings(BaseSettings):
    """A channel's own settings: subclass it with ``env_prefix="GATEWAY_<NAME>_"`` and name the
    subclass in the channel's ``settings_class``. Read from the environment and ``.env`` like the
    gateway's settings; secrets as ``SecretStr``. ``gateway serve --check`` shows them, masked."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True)


def revealed(secret: SecretStr | None) -> str | None:
    """A secret setting's value, for the account that uses it (``Account.secret_fields`` masks it there)."""
    return None if secret is None else secret.get_secret_value()


class BaseChannel:
    """Defaults for the optional parts of the contract."""

    name: ClassVar[str] = ""
    max_body_bytes: ClassVar[int] = 1 << 20
    can_send: ClassVar[bool] = False  # True where ``send`` reaches residents
    # True where the core serves the channel at its own public API (the web form, Open311)
    # instead of the generic ``/channels/{channel}[/{account}]`` endpoint, which then answers 404.
    own_routes: ClassVar[bool] = False
    settings_class: ClassVar[type[ChannelSettings] | None] = None  # the channel's own settings
    # For the OpenAPI document (gateway/http/openapi.py): the model ``parse`` validates with where
    # the format is ours (web, Open311), or a description where it is the provider's.
    request_model: ClassVar[type[BaseModel] | None] = None
    provider_format: ClassVar[ProviderFormat | None] = None

    @classmethod
    def own_settings(cls, settings: Mapping[str, Any]) -> ChannelSettings:
        """The channel's settings (``settings_class``): the object given in code under
        ``settings[GIVEN_SETTINGS][name]`` if any, else read from ``GATEWAY_<NAME>_*`` and ``.env``.
        A bad value raises pydantic's ``ValidationError``; the gateway names the variable."""
        if cls.settings_class is None:
            raise TypeError(f"channel {cls.name!r} declares no settings_class")
        given = (settings.get(GIVEN_SETTINGS) or {}).get(cls.name)
        if given is None:
            return cls.settings_class()
        if not isinstance(given, cls.settings_class):
            raise TypeError(f"settings given for channel {cls.name!r} are not a {cls.settings_class.__name__}")
        return given

    @classmethod
    def accounts(cls, settings: Mapping[str, Any]) -> dict[str, Account]:
        """The accounts configured for this channel, from the gateway's settings as a plain mapping.

        The default is one account named ``default`` with no credentials; channels with
        credentials override this and return nothing when they are not configured.
        """
        return {"default": Account("default")}

    def shortcomings(self, acct: Account) -> list[str]:
        """What ``acct`` lacks to fetch media or send news, one sentence each naming the settings;
        logged when ``gateway serve`` starts and printed by ``gateway serve --check``."""
        return []

    def verify(self, req: RawRequest, acct: Account) -> None:
        raise NotImplementedError(f"channel {self.name!r} must check its provider's signature")

    def parse(self, req: RawRequest, acct: Account) -> list[InboundMessage]:
        raise NotImplementedError(f"channel {self.name!r} must parse its provider's payload")

    def ack(self, req: RawRequest, acct: Account, msgs: Sequence[InboundMessage], reply: Reply) -> RawResponse:
        return RawResponse(status=200, body=b"success")

    def send(self, msg: OutboundMessage, acct: Account) -> SendResult:

        raise ChannelMisconfigured(f"channel {self.name!r} cannot send messages")
