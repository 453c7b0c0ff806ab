"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2): the format, as pure functions.

``gateway/http/open311.py`` serves the API under ``/open311/v2``; this module turns services and
reports into GeoReport ``services`` and ``service_requests``, in JSON and XML, and builds
GeoReport errors (a JSON list of ``{code, description}``, XML ``<errors><error>``). Turning a
``POST requests`` form into a message is the Open311 channel's (``channels/open311.py``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # noqa: S405 - building XML only; nothing is parsed here
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
FORMATS = {"json": "application/json", "xml": "text/xml"}
CLOSED = frozenset({"resolved", "closed", "rejected", "spam", "merged"})
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


# ---------------------------------------------------------------------------- responses
# The JSON answers, as models (the OpenAPI document shows them; the builders below fill them).
# XML answers carry the same fields as elements (``to_xml``).


class ServiceOut(BaseModel):
    model_config = ConfigDict(title="Open311Service")

    service_code: str
    service_name: str
    description: str
    metadata: bool = Field(description="true when the service definition lists attributes")
    type: Literal["realtime", "batch", "blackbox"]
    keywords: str
    group: str


class ServiceDefinitionOut(BaseModel):
    model_config = ConfigDict(title="Open311ServiceDefinition")

    service_code: str
    attributes: list[dict[str, Any]]


class ExtendedAttributesOut(BaseModel):
    model_config = ConfigDict(title="Open311ExtendedAttributes")

    grid_code: str | None = Field(description="the grid unit (网格) the report lies in")
    grid_path: str | None = Field(description="the units' names from the city down, joined by ` / `")


class ServiceRequestOut(BaseModel):
    """A report as a GeoReport ``request`` (the spec's fields, in its order)."""

    model_config = ConfigDict(title="Open311ServiceRequest")

    service_request_id: str = Field(description="the case number")
    status: Literal["open", "closed"]
    status_notes: str | None
    service_name: str | None
    service_code: str | None
    description: str | None = Field(description="phone numbers and ID numbers masked")
    agency_responsible: str | None
    service_notice: str | None
    requested_datetime: str | None
    updated_datetime: str | None
    expected_datetime: str | None
    address: str | None
    address_id: str | None
    zipcode: str | None
    lat: float | None
    long: float | None
    media_url: str | None
    extended_attributes: ExtendedAttributesOut | None = Field(default=None, description="with `extensions=true` only")


class RequestCreatedOut(BaseModel):
    model_config = ConfigDict(title="Open311RequestCreated")

    service_request_id: str = Field(description="the case number")
    service_notice: str | None = Field(description="what the resident is told")
    account_id: str | None


class ErrorOut(BaseModel):
    model_config = ConfigDict(title="Open311Error")

    code: int = Field(description="the HTTP status")
    description: str


class EndpointOut(BaseModel):
    model_config = ConfigDict(title="Open311Endpoint")

    specification: str
    url: str
    changeset: str
    type: Literal["production", "test"]
    formats: list[str]


class DiscoveryOut(BaseModel):
    model_config = ConfigDict(title="Open311Discovery")

    changeset: str
    contact: str
    key_service: str
    endpoints: list[EndpointOut]


def service_json(service: Service) -> dict[str, Any]:
    return ServiceOut(
        service_code=service.code,
        service_name=service.name,
        description=service.description,
        metadata=False,  # no category asks for extra attributes yet
        type="realtime",
        keywords=", ".join(service.keywords),
        group=service.group,
    ).model_dump()


def definition_json(service: Service) -> dict[str, Any]:
    return ServiceDefinitionOut(service_code=service.code, attributes=[]).model_dump()


def request_json(
    report: Any, service: Service | None, hint: str | None, public_url: str, *, extensions: bool = False
) -> dict[str, Any]:
    """A report as a GeoReport ``request`` (the spec's fields, in its order). With ``extensions``
    (the client asked ``extensions=true``, Open311's extension convention) the grid unit and its
    path of names follow in ``extended_attributes``; without, the shape is the spec's exactly."""
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
    item: dict[str, Any] = {
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
    if extensions:
        item["extended_attributes"] = {
            "grid_code": report.grid_code,
            "grid_path": " / ".join(step["name"] for step in report.grid_path) if report.grid_path else None,
        }
    return ServiceRequestOut.model_validate(item).model_dump(exclude_unset=True)


def created_json(case_number: str, notice: str | None) -> dict[str, Any]:
    return RequestCreatedOut(service_request_id=case_number, service_notice=notice, account_id=None).model_dump()


def errors_json(errors: Sequence[tuple[int, str]]) -> list[dict[str, Any]]:
    return [ErrorOut(code=code, description=text).model_dump() for code, text in errors]


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
        if isinstance(value, Mapping):
            _fill(child, value)
        elif isinstance(value, list):
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
