"""The online complaint form (网上民声): ``POST /api/v1/reports`` as JSON or multipart.

One post is a whole report (``complete=True``). JSON and form bodies come as ``RawRequest``
bytes and form; of a multipart body the gateway stores the photos first (``RawRequest.media``)
and hands the other parts as the form.
"""

from __future__ import annotations

import contextlib
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from http.cookies import CookieError, SimpleCookie
from typing import Any, ClassVar

from channels import payload
from channels.base import Account, BaseChannel, RawRequest
from channels.errors import BadPayload
from gateway.models import InboundMessage, Location, LocationSource, MediaRef, MessageKind

MAX_TEXT = 5000
MAX_TITLE = 100
MAX_ADDRESS = 300
# Mainland mobile, landline with area code, or E.164.
_PHONE_RE = re.compile(r"^(?:\+?86[- ]?)?1[3-9]\d{9}$|^0\d{2,3}-?\d{7,8}$|^\+[1-9]\d{6,14}$")


class WebChannel(BaseChannel):
    name: ClassVar[str] = "web"
    own_routes: ClassVar[bool] = True  # served at POST /api/v1/reports and /report (gateway/http/)

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
        errors: dict[str, str] = {}
        text = _string(data, "text", MAX_TEXT, errors, required=True)
        title = _string(data, "title", MAX_TITLE, errors)
        phone = _string(data, "contact_phone", 32, errors)
        if phone and not _PHONE_RE.match(phone.replace(" ", "")):
            errors["contact_phone"] = "not a phone number (mainland mobile, landline with area code, or +E.164)"
        location = _location(data.get("location"), errors)
        # form_token: the HTML form's per-render token against double submits (see gateway/http/webform.py).
        unknown = set(data) - {"text", "title", "contact_phone", "location", "photos", "form_token"}
        for name in sorted(unknown):
            errors[name] = "unknown field"
        if errors:
            raise BadPayload("invalid report: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), fields=errors)
        assert text is not None
        return InboundMessage(
            channel=self.name,
            # A client's idempotency key is a stable message id; otherwise each post is its own message.
            channel_message_id=f"key:{idempotency_key}" if idempotency_key else f"post:{uuid.uuid4().hex}",
            sender=f"web:{sender[:64]}",
            received_at=received_at or datetime.now(UTC),
            kind=MessageKind.IMAGE if photos else MessageKind.TEXT,
            text=text,
            title=title,
            contact_phone=phone.replace(" ", "") if phone else None,
            location=location,
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
    return _header(req, "X-Client-Id") or browser or uuid.uuid4().hex


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


def _string(
    data: Mapping[str, Any], key: str, limit: int, errors: dict[str, str], *, required: bool = False
) -> str | None:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors[key] = "required"
        return None
    if not isinstance(value, str):
        errors[key] = "must be a string"
        return None
    value = value.strip()
    if len(value) > limit:
        errors[key] = f"too long ({len(value)} characters, at most {limit})"
        return None
    return value


def _location(value: Any, errors: dict[str, str]) -> Location | None:
    if value in (None, "", {}):
        return None
    if not isinstance(value, Mapping):
        errors["location"] = "must be an object with lat/lng and/or address"
        return None
    lat, lng = (
        _coord(value.get("lat"), 90, "location.lat", errors),
        _coord(value.get("lng"), 180, "location.lng", errors),
    )
    if (lat is None) != (lng is None) and "location.lat" not in errors and "location.lng" not in errors:
        errors["location"] = "lat and lng go together"
    address = _string(value, "address", MAX_ADDRESS, errors)
    if "address" in errors:
        errors["location.address"] = errors.pop("address")
    if lat is None and lng is None and not address:
        if not any(k.startswith("location") for k in errors):
            errors["location"] = "give lat/lng or an address"
        return None
    source = LocationSource.GPS if lat is not None else LocationSource.TEXT
    return Location(lat=lat, lng=lng, label=address, source=source)


def _coord(value: Any, bound: float, name: str, errors: dict[str, str]) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        errors[name] = "must be a number"
        return None
    if isinstance(value, bool) or not math.isfinite(number) or abs(number) > bound:
        errors[name] = f"must be between -{bound:g} and {bound:g}"
        return None
    return number
