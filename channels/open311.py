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
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from channels.base import Account, BaseChannel, ChannelSettings, RawRequest
from channels.errors import BadPayload, InvalidSignature
from gateway.models import InboundMessage, Location, LocationSource, MediaRef, MessageKind

MAX_DESCRIPTION = 4000  # the spec's limit for description
MAX_FIELD = 300
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_ATTRIBUTE = re.compile(r"^attribute\[([A-Za-z0-9_\-]{1,64})\]$")


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
    errors: dict[str, str] = {}
    code = (form.get("service_code") or "").strip()
    if not code:
        errors["service_code"] = "required"
    elif code not in services:
        errors["service_code"] = f"unknown service_code {code[:20]!r}; see services.json"
    location = _location(form, errors)
    description = _text(form, "description", MAX_DESCRIPTION, errors)
    phone = _text(form, "phone", 32, errors)
    email = _text(form, "email", 255, errors)
    if email and not _EMAIL.match(email):
        errors["email"] = "not an email address"
    media_url = _text(form, "media_url", 1000, errors)
    if media_url and not media_url.startswith(("http://", "https://")):
        errors["media_url"] = "must be an http(s) URL"
    if errors:
        raise BadPayload("; ".join(f"{k}: {v}" for k, v in errors.items()), fields=errors)
    service_name = services[code]
    raw: dict[str, Any] = {k: v for k, v in form.items() if k != "api_key" and not _ATTRIBUTE.match(k)}
    raw["attributes"] = {m.group(1): v for k, v in form.items() if (m := _ATTRIBUTE.match(k))}
    who = form.get("account_id") or form.get("device_id") or email or "anonymous"
    return InboundMessage(
        channel="open311",
        channel_message_id=message_id or f"post:{uuid.uuid4().hex}",
        sender=f"open311:{who[:64]}",
        received_at=now,
        kind=MessageKind.IMAGE if media_url else MessageKind.TEXT,
        text=description or service_name,
        title=service_name,
        contact_phone=phone,
        location=location,
        media=(MediaRef(kind=MessageKind.IMAGE, url=media_url),) if media_url else (),
        raw=raw,
        complete=True,
    )


def _text(form: Mapping[str, str], key: str, limit: int, errors: dict[str, str]) -> str | None:
    value = (form.get(key) or "").strip()
    if len(value) > limit:
        errors[key] = f"too long (at most {limit} characters)"
        return None
    return value or None


def _location(form: Mapping[str, str], errors: dict[str, str]) -> Location | None:
    lat_s, lng_s = (form.get("lat") or "").strip(), (form.get("long") or "").strip()
    address = _text(form, "address_string", MAX_FIELD, errors)
    address_id = _text(form, "address_id", 100, errors)
    if lat_s or lng_s:
        try:
            lat, lng = float(lat_s), float(lng_s)
        except ValueError:
            errors["lat"] = "lat and long must both be numbers"
            return None
        if not (math.isfinite(lat) and math.isfinite(lng) and abs(lat) <= 90 and abs(lng) <= 180):
            errors["lat"] = "lat/long out of range"
            return None
        return Location(lat=lat, lng=lng, label=address, source=LocationSource.GPS)
    if address or address_id:
        return Location(label=address or f"address_id {address_id}", source=LocationSource.TEXT)
    errors["location"] = "give lat and long, address_string or address_id"
    return None
