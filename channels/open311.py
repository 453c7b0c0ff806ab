"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2): the mapping, as pure functions.

``gateway/http/open311.py`` serves the HTTP side under ``/open311/v2``; this module turns a
``POST requests`` form into an ``InboundMessage`` (a whole report, ``complete=True``) and reports
into GeoReport ``service_requests``, in JSON and XML, and builds GeoReport errors (a JSON list of
``{code, description}``, XML ``<errors><error>``).

The ``service_code`` a client gives is a hint, not a decision: it is kept in the message's raw
payload and becomes the report's title (the service name), which the classifier reads with the
text; the category is then set like for any other report.
"""

from __future__ import annotations

import hmac
import math
import re
import uuid
import xml.etree.ElementTree as ET  # noqa: S405 - building XML only; nothing is parsed here
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from channels.base import Account, BaseChannel, RawRequest
from channels.errors import BadPayload, InvalidSignature
from gateway.models import InboundMessage, Location, LocationSource, MediaRef, MessageKind

SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
MAX_DESCRIPTION = 4000  # the spec's limit for description
MAX_FIELD = 300
FORMATS = {"json": "application/json", "xml": "text/xml"}
CLOSED = frozenset({"resolved", "closed", "rejected", "spam", "merged"})
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_ATTRIBUTE = re.compile(r"^attribute\[([A-Za-z0-9_\-]{1,64})\]$")
# Characters XML 1.0 forbids (ElementTree writes them as they are, making the document invalid).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True)
class Service:
    code: str
    name: str
    description: str = ""
    group: str = ""
    keywords: tuple[str, ...] = ()


class GeoReportError(Exception):
    """An error to answer in GeoReport format with this HTTP status."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


class Open311Channel(BaseChannel):
    """Registered so that ``open311`` is a known channel; served by its own routes only (the
    generic ``/channels/open311`` endpoint has no account and answers 404)."""

    name: ClassVar[str] = "open311"

    @classmethod
    def accounts(cls, settings: Mapping[str, Any]) -> dict[str, Account]:
        return {}

    def verify(self, req: RawRequest, acct: Account) -> None:
        check_api_key(req.form.get("api_key") or req.query.get("api_key"), acct.get("api_keys", ()))

    def parse(self, req: RawRequest, acct: Account) -> list[InboundMessage]:
        raise BadPayload("Open311 requests are parsed by parse_request with the service list")


def check_api_key(given: str | None, keys: Iterable[str]) -> None:

    ok = False
    for key in keys:  # every key is compared, in constant time each
        ok |= bool(given) and hmac.compare_digest(key.encode(), (given or "").encode())
    if not ok:
        raise InvalidSignature("invalid api_key")


def parse_request(
    form: Mapping[str, str], services: Mapping[str, Service], *, now: datetime, message_id: str | None = None
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
    service = services[code]
    raw: dict[str, Any] = {k: v for k, v in form.items() if k != "api_key" and not _ATTRIBUTE.match(k)}
    raw["attributes"] = {m.group(1): v for k, v in form.items() if (m := _ATTRIBUTE.match(k))}
    who = form.get("account_id") or form.get("device_id") or email or "anonymous"
    return InboundMessage(
        channel="open311",
        channel_message_id=message_id or f"post:{uuid.uuid4().hex}",
        sender=f"open311:{who[:64]}",
        received_at=now,
        kind=MessageKind.IMAGE if media_url else MessageKind.TEXT,
        text=description or service.name,
        title=service.name,
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


# ---------------------------------------------------------------------------- responses


def service_json(service: Service) -> dict[str, Any]:
    return {
        "service_code": service.code,
        "service_name": service.name,
        "description": service.description,
        "metadata": False,  # no category asks for extra attributes yet
        "type": "realtime",
        "keywords": ", ".join(service.keywords),
        "group": service.group,
    }


def definition_json(service: Service) -> dict[str, Any]:
    return {"service_code": service.code, "attributes": []}


def request_json(report: Any, service: Service | None, hint: str | None, public_url: str) -> dict[str, Any]:
    """A report as a GeoReport ``request`` (the spec's field order)."""
    closed = report.status in CLOSED
    notes = None
    if report.status == "merged" and report.duplicate_of:
        notes = f"Duplicate of {report.duplicate_of}"
    elif report.status in ("rejected", "spam"):
        notes = report.status
    media = [m for m in report.media if m.url or m.sha256]
    media_url = None
    if media:
        first = media[0]
        media_url = first.url if first.url else f"{public_url.rstrip('/')}/api/v1/reports/{report.case_number}"
    return {
        "service_request_id": report.case_number,
        "status": "closed" if closed else "open",
        "status_notes": notes,
        "service_name": service.name if service else report.category_name,
        "service_code": service.code if service else (report.category_code or hint),
        "description": report.text,
        "agency_responsible": None,
        "service_notice": None,
        "requested_datetime": _iso(report.created_at),
        "updated_datetime": _iso(report.updated_at),
        "expected_datetime": None,
        "address": report.location_address,
        "address_id": None,
        "zipcode": None,
        "lat": report.location_lat,
        "long": report.location_lng,
        "media_url": media_url,
    }


def created_json(case_number: str, notice: str | None) -> dict[str, Any]:
    return {"service_request_id": case_number, "service_notice": notice, "account_id": None}


def errors_json(errors: Sequence[tuple[int, str]]) -> list[dict[str, Any]]:
    return [{"code": code, "description": text} for code, text in errors]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="seconds")


def parse_date(value: str) -> datetime:
    """A w3c/ISO 8601 datetime; naive values are taken as UTC."""
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------- XML


def to_xml(root: str, item: str | None, items: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> bytes:
    """``<root><item>fields</item>...</root>`` (or ``<root>fields</root>`` for one mapping)."""
    top = ET.Element(root)
    if isinstance(items, Mapping):
        _fill(top, items)
    else:
        for fields in items:
            _fill(ET.SubElement(top, item or "item"), fields)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(top, encoding="unicode").encode("utf-8")


def _fill(parent: ET.Element, fields: Mapping[str, Any]) -> None:
    for key, value in fields.items():
        child = ET.SubElement(parent, key)
        if isinstance(value, list):
            singular = {"attributes": "attribute", "values": "value", "endpoints": "endpoint", "formats": "format"}
            for entry in value:
                if isinstance(entry, Mapping):
                    _fill(ET.SubElement(child, singular.get(key, "item")), entry)
                else:
                    ET.SubElement(child, singular.get(key, "item")).text = _xml_text(entry)
        else:
            child.text = _xml_text(value)


def _xml_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("", str(value))
