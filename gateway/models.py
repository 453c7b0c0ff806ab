"""The unified message shapes every channel produces and consumes (统一采集).

Channels turn a provider request into ``InboundMessage`` objects and send ``OutboundMessage``
objects; nothing outside a channel module sees a provider's own payload shape. Senders are
``scheme:id`` strings, like courier's URNs: ``wechat:<openid>``, ``tel:+8613800000000``,
``weibo:<uid>``, ``web:<session>``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class MessageKind(enum.StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VOICE = "voice"
    VIDEO = "video"
    LOCATION = "location"
    LINK = "link"
    EVENT = "event"


class LocationSource(enum.StrEnum):
    GPS = "gps"  # a coordinate the resident's device sent
    TEXT = "text"  # an address the resident typed
    GEOCODER = "geocoder"  # resolved by a geocoder from text


@dataclass(frozen=True, slots=True)
class Location:
    lat: float | None = None
    lng: float | None = None
    label: str | None = None  # address or place name as given
    source: LocationSource = LocationSource.GPS


@dataclass(frozen=True, slots=True)
class MediaRef:
    """A piece of media attached to a message.

    ``provider_id`` is the channel's handle (WeChat MediaId, Twilio MediaUrl) used to fetch it
    later; ``sha256`` is set once the bytes are in the media store.
    """

    kind: MessageKind
    provider_id: str | None = None
    url: str | None = None
    content_type: str | None = None
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    channel: str
    channel_message_id: str
    sender: str
    received_at: datetime
    kind: MessageKind
    text: str = ""
    media: tuple[MediaRef, ...] = ()
    location: Location | None = None
    title: str | None = None
    contact_phone: str | None = None
    event: str | None = None  # subscribe, unsubscribe, CLICK, LOCATION ... for kind=event
    account: str | None = None  # the channel account (one deployment may run several)
    raw: dict[str, Any] = field(default_factory=dict)  # the provider payload, kept for audit
    complete: bool = False  # True when one message carries a whole report (web form, Open311)


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message to a resident on the channel they used."""

    channel: str
    recipient: str
    text: str
    account: str | None = None
    report_case_number: str | None = None
    reply_to: str | None = None  # channel message id, where the provider threads replies


@dataclass(frozen=True, slots=True)
class SendResult:
    external_id: str | None = None
    status: str = "sent"
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What became of a message we sent: the provider's message id, our state, its error."""

    external_id: str
    state: str  # sent | delivered | failed | undelivered
    error_code: str | None = None
    opted_out: bool = False  # the provider says the recipient has opted out (e.g. Twilio 21610)
