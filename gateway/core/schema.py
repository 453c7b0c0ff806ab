"""The published JSON shapes: ``Report`` (what the gateway stores and hands on) and
``InboundMessage`` (what a channel produces). ``gateway schema`` prints them as JSON Schema and
``/api/schema/report.json`` serves the report's.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.core.lifecycle import Status
from gateway.db import Report as ReportRow
from nlp.pii import mask_pii

SetBy = Literal["model", "rule", "moderator", "placeholder"]


class CategoryOut(BaseModel):
    code: str | None = Field(description="most specific taxonomy code (subcategory when known)")
    name: str | None
    parent: str | None = Field(default=None, description="top-level code when `code` is a subcategory")
    confidence: float | None = Field(default=None, ge=0, le=1)
    model_version: str | None = None
    set_by: SetBy | None = None


class LocationOut(BaseModel):
    """Public views round ``lat``/``lng`` to 3 decimals and give the grid's district, street and
    community as ``address``; the reporter's signed link and staff see the exact location."""

    lat: float | None = Field(default=None, ge=-90, le=90)
    lng: float | None = Field(default=None, ge=-180, le=180)
    address: str | None = None
    source: Literal["gps", "text", "geocoder"] | None = None


class GridStepOut(BaseModel):
    level: Literal["市", "区", "街道", "社区", "网格"]
    code: str
    name: str


class GridOut(BaseModel):
    """Where the report lands in the grid (网格) and how that was found (``docs/grid.md``)."""

    code: str | None = Field(default=None, description="the deepest unit found; null when outside or unplaced")
    name: str | None = None
    level: Literal["市", "区", "街道", "社区", "网格"] | None = None
    path: list[GridStepOut] = Field(default=[], description="every level from the root down to `code`")
    method: Literal["point_in_polygon", "boundary", "nearest", "address", "contact_location", "outside", "none"]
    confidence: float | None = Field(default=None, ge=0, le=1, description="omitted from public views")
    version: str | None = Field(default=None, description="hash of the grid file; omitted from public views")


class MediaOut(BaseModel):
    kind: Literal["image", "voice", "video"]
    url: str | None = Field(description="where the gateway serves the stored bytes; null until fetched")
    content_type: str | None = None
    sha256: str | None = None
    state: Literal["pending", "stored", "failed"]


class HistoryOut(BaseModel):
    at: datetime
    actor: str
    action: str
    from_status: str | None = None
    to_status: str | None = None
    note: str | None = None


class ReportOut(BaseModel):
    """A citizen report (统一采集): one schema whatever the channel."""

    model_config = ConfigDict(title="Report")

    case_number: str = Field(pattern=r"^[A-Z]{1,8}\d{14,}$", examples=["ZW20261127000123"])
    channel: str
    sender: str | None = Field(description="channel identity as scheme:id; omitted from public views")
    title: str | None = None
    text: str
    contact_phone: str | None = Field(default=None, description="masked in public views")
    location: LocationOut | None = None
    grid: GridOut | None = None
    media: list[MediaOut] = []
    category: CategoryOut | None = None
    priority: Literal["P1", "P2", "P3", "P4"]
    urgent: bool = False
    status: Status
    duplicate_of: str | None = None
    created_at: datetime
    updated_at: datetime
    history: list[HistoryOut] = []


class InboundMessageOut(BaseModel):
    model_config = ConfigDict(title="InboundMessage")

    channel: str
    channel_message_id: str
    sender: str
    received_at: datetime
    kind: Literal["text", "image", "voice", "video", "location", "link", "event"]
    text: str = ""
    media: list[dict[str, Any]] = []
    location: dict[str, Any] | None = None
    raw: dict[str, Any] = {}


def mask_phone(phone: str | None) -> str | None:
    """Keep the first 3 and last 4 digits: 138****5678."""
    if not phone:
        return phone
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"


def report_json(
    r: ReportRow, *, public_url: str = "", private: bool = False, owner: bool = False, history: bool = True
) -> dict[str, Any]:
    """A report as JSON. ``private=False`` (the public view) hides the sender, masks the phone and
    PII in the text, and coarsens the location (``location_json``); ``owner=True`` is the view of
    the resident who reported it (the signed link, their browser): the public view with their own
    text, phone and exact location."""
    own = private or owner
    location = location_json(r, exact=own)
    category = None
    if r.category_code or r.category_set_by:
        category = {
            "code": r.category_code,
            "name": r.category_name,
            "parent": r.category_parent,
            "confidence": r.category_confidence,
            "model_version": r.category_model_version,
            "set_by": r.category_set_by,
        }
    media = [
        {
            "kind": m.kind,
            "content_type": m.content_type,
            "sha256": m.sha256,
            "state": m.state,
            "url": f"{public_url.rstrip('/')}/media/{m.sha256}" if m.sha256 else None,
        }
        for m in r.media
    ]
    out = {
        "case_number": r.case_number,
        "channel": r.channel,
        "sender": r.sender if private else None,
        # Case numbers are sequential, so the public view must not carry what the resident wrote
        # about themselves: phone, ID, card numbers and e-mails are masked (nlp.pii).
        "title": r.title if own else _masked(r.title),
        "text": r.text if own else _masked(r.text),
        "contact_phone": r.contact_phone if own else mask_phone(r.contact_phone),
        "location": location,
        "grid": grid_json(r, private=private),
        "media": media,
        "category": category,
        "priority": r.priority,
        "urgent": r.urgent,
        "status": r.status,
        "duplicate_of": r.duplicate_of,
        "created_at": r.created_at.isoformat(),
        "updated_at": r.updated_at.isoformat(),
    }
    if history:
        out["history"] = [
            {
                "at": h.at.isoformat(),
                "actor": h.actor if private else _public_actor(h.actor),
                "action": h.action,
                "from_status": h.from_status,
                "to_status": h.to_status,
                "note": h.note if private or h.to_status in PUBLIC_NOTES else None,
            }
            for h in r.history
        ]
    return out


# Public coordinates are rounded to 3 decimals: about 110 m north-south and 100 m east-west in
# southern China, below the size of a grid unit (网格) and enough to see where a problem is, too
# coarse to pick out a home. A WeChat resident's periodic LOCATION report can locate a report
# (gateway/core/intake.py), so the exact point is the resident's own position.
PUBLIC_DECIMALS = 3
_PUBLIC_LEVELS = ("区", "街道", "社区")


def location_json(r: ReportRow, *, exact: bool) -> dict[str, Any] | None:
    """The report's location; unless ``exact``, the coordinates rounded (``PUBLIC_DECIMALS``) and
    the address replaced by the district, street and community the report lands in (what the
    resident typed may be their own door)."""
    if r.location_lat is None and not r.location_address:
        return None
    if exact:
        return {
            "lat": r.location_lat,
            "lng": r.location_lng,
            "address": r.location_address,
            "source": r.location_source,
        }
    return {
        "lat": coarse(r.location_lat),
        "lng": coarse(r.location_lng),
        "address": public_address(r),
        "source": r.location_source,
    }


def coarse(value: float | None) -> float | None:
    return None if value is None else round(value, PUBLIC_DECIMALS)


def public_address(r: ReportRow) -> str | None:
    """区, 街道 and 社区 of the report's grid path (``龙华区民治街道民治社区``); None when unplaced."""
    names = [str(step.get("name", "")) for step in r.grid_path or () if step.get("level") in _PUBLIC_LEVELS]
    return "".join(names) or None


def grid_json(r: ReportRow, *, private: bool) -> dict[str, Any] | None:
    """The report's grid path; the public view keeps the units' codes and names and the method."""
    if not r.grid_method:
        return None
    path = r.grid_path or []
    deepest = path[-1] if path else {}
    out: dict[str, Any] = {
        "code": r.grid_code,
        "name": deepest.get("name"),
        "level": r.grid_level,
        "path": path,
        "method": r.grid_method,
    }
    if private:
        out["confidence"] = r.grid_confidence
        out["version"] = r.grid_version
    return out


# Notes a resident may read: why a case was rejected, how it was resolved. Other notes (the
# classifier's explanation, dispatch's working notes) stay internal.
PUBLIC_NOTES = frozenset({"rejected", "resolved", "closed"})


def _masked(text: str | None) -> str | None:
    return mask_pii(text) if text else text


def _public_actor(actor: str) -> str:
    """Roles, not names: a moderator's account name is not for the public."""
    if actor in ("system", "dispatch"):
        return actor
    return "moderator" if actor.startswith("moderator") else "resident"


JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"  # what pydantic generates


def json_schemas() -> dict[str, dict[str, Any]]:
    return {
        "report": {"$schema": JSON_SCHEMA_DIALECT, **ReportOut.model_json_schema()},
        "inbound_message": {"$schema": JSON_SCHEMA_DIALECT, **InboundMessageOut.model_json_schema()},
    }
