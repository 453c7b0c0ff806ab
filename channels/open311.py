"""Open311 GeoReport v2 as a channel: a ``POST requests`` form becomes a whole-report message.

The GeoReport API around it (services, request look-ups, JSON and XML answers) is served by
``gateway/http/open311.py`` with the format of ``adapters/georeport.py``.

The ``service_code`` a client gives is a hint, not a decision: it is kept in the message's raw
payload and becomes the report's title (the service name), which the classifier reads with the
text; the category is then set like for any other report.
"""

from __future__ import annotations

import hmac
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar
from urllib.parse import parse_qsl

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_settings import SettingsConfigDict

from channels import payload
from channels.base import Account, BaseChannel, ChannelSettings, RawRequest
from channels.errors import BadPayload, InvalidSignature
from gateway.models import InboundMessage, Location, LocationSource, MediaRef, MessageKind

MAX_DESCRIPTION = 4000  # the spec's limit for description
MAX_FIELD = 300
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_ATTRIBUTE = re.compile(r"^attribute\[([A-Za-z0-9_\-]{1,64})\]$")
_LIMITS = {
    "address_string": MAX_FIELD,
    "address_id": 100,
    "description": MAX_DESCRIPTION,
    "phone": 32,
    "email": 255,
    "media_url": 1000,
}


def _text(value: Any, limit: int) -> str | None:
    value = (value or "").strip()
    if len(value) > limit:
        raise payload.field_error(f"too long (at most {limit} characters)")
    return value or None


def _number(description: str) -> WithJsonSchema:
    """A form field that carries a decimal number (validated with its pair, as a string)."""
    return WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "null"}], "description": description})


class ServiceRequestIn(BaseModel):
    """A GeoReport v2 ``POST requests`` form, as the Open311 channel validates it (the spec's
    fields; ``attribute[CODE]`` and other fields are kept with the report's raw payload).
    Validated with ``context={"services": {code: name}}``; a repeated field keeps its first value."""

    model_config = ConfigDict(title="ServiceRequestForm", extra="allow")

    api_key: str | None = Field(default=None, description="required: a key of GATEWAY_OPEN311_API_KEYS (else 403)")
    service_code: str = Field(description="a `service_code` of services.json (a hint for the classifier)")
    # Checked in this order: the location rule (on `long`) sees the address fields and `lat`.
    address_string: str | None = Field(default=None, max_length=MAX_FIELD)
    address_id: str | None = Field(default=None, max_length=100)
    lat: Annotated[str | None, _number("latitude (WGS84), with `long`")] = None
    long: Annotated[str | None, _number("longitude (WGS84), with `lat`")] = Field(default=None, validate_default=True)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    phone: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=255)
    media_url: str | None = Field(default=None, max_length=1000, description="an http(s) URL of a photo")
    account_id: str | None = None
    device_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None

    @field_validator("service_code", mode="before")
    @classmethod
    def _service(cls, value: Any, info: ValidationInfo) -> str:
        code = (value or "").strip()
        if not code:
            raise payload.field_error("required")
        services = (info.context or {}).get("services")
        if services is not None and code not in services:
            raise payload.field_error(f"unknown service_code {code[:20]!r}; see services.json")
        return str(code)

    @field_validator("address_string", "address_id", "description", "phone", "email", "media_url", mode="before")
    @classmethod
    def _field(cls, value: Any, info: ValidationInfo) -> str | None:
        text = _text(value, _LIMITS[str(info.field_name)])
        if info.field_name == "email" and text and not _EMAIL.match(text):
            raise payload.field_error("not an email address")
        if info.field_name == "media_url" and text and not text.startswith(("http://", "https://")):
            raise payload.field_error("must be an http(s) URL")
        return text

    @field_validator("lat", mode="before")
    @classmethod
    def _lat(cls, value: Any) -> str:
        return (value or "").strip()

    @field_validator("long", mode="before")
    @classmethod
    def _long(cls, value: Any, info: ValidationInfo) -> str:
        lng_s, lat_s = (value or "").strip(), info.data.get("lat") or ""
        if lat_s or lng_s:
            try:
                lat, lng = float(lat_s), float(lng_s)
            except ValueError:
                raise payload.field_error("lat and long must both be numbers", field="lat") from None
            if not (math.isfinite(lat) and math.isfinite(lng) and abs(lat) <= 90 and abs(lng) <= 180):
                raise payload.field_error("lat/long out of range", field="lat")
        elif not (info.data.get("address_string") or info.data.get("address_id")):
            raise payload.field_error("give lat and long, address_string or address_id", field="location")
        return lng_s

    def location(self) -> Location:
        if self.lat or self.long:
            lat, lng = float(self.lat or ""), float(self.long or "")
            return Location(lat=lat, lng=lng, label=self.address_string, source=LocationSource.GPS)
        label = self.address_string or f"address_id {self.address_id}"
        return Location(label=label, source=LocationSource.TEXT)


class Open311Settings(ChannelSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_OPEN311_")

    api_keys: SecretStr = SecretStr("")  # comma-separated keys accepted by ``POST requests``

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip())


class Open311Channel(BaseChannel):
    """Served at the GeoReport API (``gateway/http/open311.py``), not the generic endpoint.

    The account carries the API keys (``GATEWAY_OPEN311_API_KEYS``) and, given by the gateway at
    request time, the services as ``{service_code: service_name}`` (the taxonomy's subcategories).
    """

    name: ClassVar[str] = "open311"
    own_routes: ClassVar[bool] = True
    max_body_bytes: ClassVar[int] = 64 * 1024
    settings_class: ClassVar[type[ChannelSettings]] = Open311Settings
    request_model: ClassVar[type[BaseModel]] = ServiceRequestIn

    @classmethod
    def accounts(cls, settings: Mapping[str, Any]) -> dict[str, Account]:
        own = cls.own_settings(settings)
        assert isinstance(own, Open311Settings)
        return {"default": Account("default", {"api_keys": own.keys}, secret_fields=("api_keys",))}

    def verify(self, req: RawRequest, acct: Account) -> None:
        check_api_key(form_of(req).get("api_key"), acct.get("api_keys", ()))

    def parse(self, req: RawRequest, acct: Account) -> list[InboundMessage]:
        key = next((v for k, v in req.headers.items() if k.lower() == "idempotency-key"), None)
        services = acct.get("services", {})
        msg = parse_request(form_of(req), services, now=datetime.now(UTC), message_id=f"key:{key}" if key else None)
        return [msg]


def form_of(req: RawRequest) -> dict[str, str]:
    """The ``POST requests`` form; a repeated field keeps its first value."""
    ctype = next((v for k, v in req.headers.items() if k.lower() == "content-type"), "")
    if ctype.split(";")[0].strip().lower() not in ("application/x-www-form-urlencoded", ""):
        raise BadPayload("use application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl(req.body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise BadPayload("the body is not UTF-8") from None
    form: dict[str, str] = {}
    for k, v in pairs:
        form.setdefault(k, v)
    return form


def check_api_key(given: str | None, keys: Iterable[str]) -> None:
    ok = False
    for key in keys:  # every key is compared, in constant time each
        ok |= bool(given) and hmac.compare_digest(key.encode(), (given or "").encode())
    if not ok:
        raise InvalidSignature("invalid api_key")


def parse_request(
    form: Mapping[str, str], services: Mapping[str, str], *, now: datetime, message_id: str | None = None
) -> InboundMessage:
    """A ``POST requests`` form as a whole-report message; ``BadPayload`` names each bad field."""
    try:
        req = ServiceRequestIn.model_validate(form, context={"services": services})
    except ValidationError as exc:
        errors = payload.field_errors(exc)
        raise BadPayload("; ".join(f"{k}: {v}" for k, v in errors.items()), fields=errors) from None
    service_name = services[req.service_code]
    raw: dict[str, Any] = {k: v for k, v in form.items() if k != "api_key" and not _ATTRIBUTE.match(k)}
    raw["attributes"] = {m.group(1): v for k, v in form.items() if (m := _ATTRIBUTE.match(k))}
    who = form.get("account_id") or form.get("device_id") or req.email or "anonymous"
    return InboundMessage(
        channel="open311",
        channel_message_id=message_id or f"post:{uuid.uuid4().hex}",
        sender=f"open311:{who[:64]}",
        received_at=now,
        kind=MessageKind.IMAGE if req.media_url else MessageKind.TEXT,
        text=req.description or service_name,
        title=service_name,
        contact_phone=req.phone,
        location=req.location(),
        media=(MediaRef(kind=MessageKind.IMAGE, url=req.media_url),) if req.media_url else (),
        raw=raw,
        complete=True,
    )
