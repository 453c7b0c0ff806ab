"""The online complaint form (网上民声): ``POST /api/v1/reports`` as JSON or multipart.

One post is a whole report (``complete=True``). JSON and form bodies come as ``RawRequest``
bytes and form; of a multipart body the gateway stores the photos first (``RawRequest.media``)
and hands the other parts as the form.
"""

from __future__ import annotations

import contextlib
import math
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from http.cookies import CookieError, SimpleCookie
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic.json_schema import SkipJsonSchema

from channels import payload
from channels.base import Account, BaseChannel, RawRequest
from channels.errors import BadPayload
from gateway.models import InboundMessage, Location, LocationSource, MediaRef, MessageKind

MAX_TEXT = 5000
MAX_TITLE = 100
MAX_ADDRESS = 300
# Mainland mobile, landline with area code, or E.164.
_PHONE_RE = re.compile(r"^(?:\+?86[- ]?)?1[3-9]\d{9}$|^0\d{2,3}-?\d{7,8}$|^\+[1-9]\d{6,14}$")


def _string(value: Any, limit: int, *, required: bool = False) -> str | None:
    """A text field, stripped; blank is absent (``required``: an error)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise payload.field_error("required")
        return None
    if not isinstance(value, str):
        raise payload.field_error("must be a string")
    text: str = value.strip()
    if len(text) > limit:
        raise payload.field_error(f"too long ({len(text)} characters, at most {limit})")
    return text


def _coord(value: Any, bound: float) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise payload.field_error("must be a number") from None
    if isinstance(value, bool) or not math.isfinite(number) or abs(number) > bound:
        raise payload.field_error(f"must be between -{bound:g} and {bound:g}")
    return number


class LocationIn(BaseModel):
    """Where: coordinates (GPS, WGS84), an address, or both. Numbers may come as strings (forms)."""

    model_config = ConfigDict(title="ReportLocation", extra="ignore")

    lat: float | None = Field(default=None, ge=-90, le=90, validate_default=True)
    lng: float | None = Field(default=None, ge=-180, le=180, validate_default=True, description="with `lat`")
    address: str | None = Field(default=None, max_length=MAX_ADDRESS, validate_default=True)

    @field_validator("lat", "lng", mode="before")
    @classmethod
    def _number(cls, value: Any, info: ValidationInfo) -> float | None:
        number = _coord(value, 90 if info.field_name == "lat" else 180)
        # lng is checked after lat: one without the other is an error of the location.
        if info.field_name == "lng" and "lat" in info.data and (info.data["lat"] is None) != (number is None):
            raise payload.field_error("lat and lng go together", field="location")
        return number

    @field_validator("address", mode="before")
    @classmethod
    def _address(cls, value: Any, info: ValidationInfo) -> str | None:
        address = _string(value, MAX_ADDRESS)
        # Checked last; a failed lat or lng is missing from info.data and already named.
        coords = [info.data.get(k, False) for k in ("lat", "lng")]
        if address is None and coords == [None, None]:
            raise payload.field_error("give lat/lng or an address", field="location")
        return address

    def as_location(self) -> Location:
        source = LocationSource.GPS if self.lat is not None else LocationSource.TEXT
        return Location(lat=self.lat, lng=self.lng, label=self.address, source=source)


class ReportIn(BaseModel):
    """A complaint from the web (``POST /api/v1/reports``, the ``/report`` form): what the web
    channel validates every post with. Text fields are stripped; blank ones count as absent."""

    model_config = ConfigDict(title="NewReport", extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_TEXT, description="what happened, in the resident's words")
    title: str | None = Field(default=None, max_length=MAX_TITLE)
    contact_phone: str | None = Field(
        default=None, max_length=32, description="mainland mobile, landline with area code, or +E.164"
    )
    location: LocationIn | None = None
    # The HTML form's per-render token against double submits (gateway/http/webform.py) and the
    # multipart photos (stored by the gateway, not read from here): accepted, not documented.
    form_token: SkipJsonSchema[Any] = None
    photos: SkipJsonSchema[Any] = None

    @field_validator("text", "title", mode="before")
    @classmethod
    def _text(cls, value: Any, info: ValidationInfo) -> str | None:
        return _string(value, MAX_TEXT if info.field_name == "text" else MAX_TITLE, required=info.field_name == "text")

    @field_validator("contact_phone", mode="before")
    @classmethod
    def _phone(cls, value: Any) -> str | None:
        phone = _string(value, 32)
        if phone and not _PHONE_RE.match(phone.replace(" ", "")):
            raise payload.field_error("not a phone number (mainland mobile, landline with area code, or +E.164)")
        return phone.replace(" ", "") if phone else None

    @field_validator("location", mode="before")
    @classmethod
    def _location(cls, value: Any) -> Any:
        if value in (None, "", {}):
            return None
        if not isinstance(value, Mapping):
            raise payload.field_error("must be an object with lat/lng and/or address")
        return dict(value)


class WebChannel(BaseChannel):
    name: ClassVar[str] = "web"
    own_routes: ClassVar[bool] = True  # served at POST /api/v1/reports and /report (gateway/http/)
    request_model: ClassVar[type[BaseModel]] = ReportIn

    def verify(self, req: RawRequest, acct: Account) -> None:
        return None  # a public form: abuse is limited by size caps and rate limits, not signatures

    def parse(self, req: RawRequest, acct: Account) -> list[InboundMessage]:
        """A JSON, form or multipart post (the gateway stored a multipart body's photos: ``req.media``)."""
        ctype = _header(req, "Content-Type").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            data = _multipart_fields(req.form)
        elif ctype == "application/x-www-form-urlencoded":
            data = dict(req.form)
            loc = {k: data.pop(k) for k in ("lat", "lng", "address") if k in data}
            if any(loc.values()):
                data["location"] = loc
        else:
            data = _json_fields(req.body)
        key = _header(req, "Idempotency-Key") or None
        return [self.message_from_fields(data, req.media, sender=_sender(req), idempotency_key=key)]

    def message_from_fields(
        self,
        data: Mapping[str, Any],
        photos: Sequence[MediaRef],
        *,
        sender: str,
        idempotency_key: str | None = None,
        received_at: datetime | None = None,
    ) -> InboundMessage:
        try:
            report = ReportIn.model_validate(data)
        except ValidationError as exc:
            errors = payload.field_errors(exc)
            message = "invalid report: " + "; ".join(f"{k}: {v}" for k, v in errors.items())
            raise BadPayload(message, fields=errors) from None
        return InboundMessage(
            channel=self.name,
            # A client's idempotency key is a stable message id; otherwise each post is its own message.
            channel_message_id=f"key:{idempotency_key}" if idempotency_key else f"post:{secrets.token_hex(16)}",
            sender=f"web:{sender[:64]}",
            received_at=received_at or datetime.now(UTC),
            kind=MessageKind.IMAGE if photos else MessageKind.TEXT,
            text=report.text,
            title=report.title,
            contact_phone=report.contact_phone,
            location=report.location.as_location() if report.location else None,
            media=tuple(photos),
            raw={k: v for k, v in data.items() if k != "photos"},
            complete=True,
        )


def _header(req: RawRequest, name: str) -> str:
    for key, value in req.headers.items():
        if key.lower() == name.lower():
            return value
    return ""


def _sender(req: RawRequest) -> str:
    """The HTML form's browser cookie (``gw_client``) or an API client's id; else one-off."""
    cookie = SimpleCookie()
    with contextlib.suppress(CookieError):
        cookie.load(_header(req, "Cookie"))
    browser = cookie["gw_client"].value if "gw_client" in cookie else ""
    return _header(req, "X-Client-Id") or browser or secrets.token_hex(16)


def _json_fields(body: bytes) -> dict[str, Any]:
    data = payload.loads(body)  # deep nesting, huge numbers, NUL and lone surrogates: a BadPayload
    if not isinstance(data, dict):
        raise BadPayload("invalid request", fields={"body": "expected a JSON object"})
    return data


def _multipart_fields(form: Mapping[str, str]) -> dict[str, Any]:
    """Fields of a multipart post; ``lat``/``lng``/``address`` or a JSON ``location`` make the location."""
    fields: dict[str, Any] = {}
    location: dict[str, Any] = {}
    for name, text in form.items():
        if name in ("lat", "lng", "address"):
            location[name] = text
        elif name == "location":
            try:
                given = payload.loads(text)
            except BadPayload:
                given = None
            if not isinstance(given, dict):  # a JSON string or list is not a location
                raise BadPayload("invalid report", fields={"location": "must be JSON with lat/lng and/or address"})
            location.update(given)
        else:
            fields[name] = text
    if any(v not in ("", None) for v in location.values()):
        fields["location"] = location
    return fields
