"""Placing a report in the grid (网格): which unit it lands in, and how that was found.

Run at triage (``gateway/core/triage.py``), after the resident has been answered, never on the
intake path. In order, the first that gives a unit wins:

1. the report's own coordinates, in the datum of its channel (``grid.CHANNEL_DATUMS``, with
   ``GATEWAY_GRID_DATUMS`` overrides): WeChat's location messages are GCJ-02, the web form and
   Open311 WGS-84. Outside every unit (and farther than ``GATEWAY_GRID_SNAP_M`` from any) the
   report is ``outside``: it goes to moderators with that reason instead of to dispatch;
2. the resident's recent WeChat position (the contact's last ``LOCATION`` event, at most
   ``GATEWAY_CONTACT_LOCATION_MAX_AGE_S`` old when the report was made): ``contact_location``.
   Intake already copies that position onto a report without a location; such coordinates are
   recognised here as the contact's and labelled so;
3. the address text, then the report's text, through the grid's gazetteer, when the match is at
   least ``GATEWAY_GRID_ADDRESS_MIN_CONFIDENCE`` confident: ``address``.

Otherwise the report has no grid path (``none``) and routes as before. The grid is loaded once
per process (``load_grid``, keyed by file and modification time), in a thread at start-up.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db import Contact, Report, ReportView
from grid import CHANNEL_DATUMS, Datum, GridIndex, GridMatch
from grid.datum import parse_channel_datums
from grid.index import SAMPLE_PATH
from grid.store import default_store_path

if TYPE_CHECKING:
    from gateway.settings import Settings

CONTACT_LOCATION = "contact_location"
OUTSIDE = "outside"  # coordinates outside every unit: moderators decide
NONE = "none"  # nothing to place it by (no coordinates, no known place name)
OUTSIDE_REASON = "outside every grid unit"
_LOADING = threading.Lock()


@dataclass(frozen=True, slots=True)
class Grid:
    """A loaded grid and the short hash of its file (``grid_version`` on reports)."""

    index: GridIndex
    path: Path
    version: str


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a report lands: a match (or None) and the method (``Method`` values or the three above)."""

    match: GridMatch | None
    method: str
    version: str

    @property
    def outside(self) -> bool:
        return self.method == OUTSIDE

    def as_dict(self) -> dict[str, Any]:
        if self.match is None:
            return {"method": self.method, "version": self.version}
        return {**self.match.as_dict(), "method": self.method, "version": self.version}


# A contact's last position: (lat, lng, when), any of them unknown.
LastPosition = tuple[float | None, float | None, datetime | None]


@dataclass(frozen=True, slots=True)
class Facts:
    """What a report offers to place it by, read inside a session, used outside it."""

    channel: str
    lat: float | None
    lng: float | None
    address: str
    text: str
    contact: tuple[float, float] | None  # the resident's recent position, when there is one


def grid_path(settings: Settings) -> Path:
    """``GATEWAY_GRID_FILE``, else the imported grid under the var dir, else the bundled sample."""
    if settings.grid_file is not None:
        return settings.grid_file
    stored = default_store_path(settings.var_dir)
    return stored if stored.exists() else SAMPLE_PATH


@lru_cache(maxsize=4)
def _load(path: str, _mtime_ns: int) -> Grid:
    raw = Path(path).read_bytes()
    return Grid(GridIndex.load(path), Path(path), hashlib.sha256(raw).hexdigest()[:12])


def load_grid(path: Path) -> Grid:
    """The grid at ``path``, loaded once per process (again only when the file changes)."""
    return _load(str(path), path.stat().st_mtime_ns)


def warm(grid: Grid) -> None:
    """Build what the first address lookup would: the gazetteer and its jieba tokenizer."""
    grid.index.gazetteer.tokens("龙华区")


def channel_datums(overrides: str) -> dict[str, Datum]:
    """``grid.CHANNEL_DATUMS`` with ``GATEWAY_GRID_DATUMS`` ("weibo=wgs84,wechat=gcj02") on top."""
    return {**CHANNEL_DATUMS, **parse_channel_datums(overrides)}


class Placer:
    """Places reports on the process's grid; built once by the composition root."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = grid_path(settings)
        self.datums = channel_datums(settings.grid_datums)

    @property
    def grid(self) -> Grid:
        with _LOADING:  # one load, even when a request and the warm-up ask at once
            return load_grid(self.path)

    def datum(self, channel: str) -> Datum:
        return self.datums.get(channel, Datum.WGS84)

    async def warm_up(self) -> None:
        """Load the grid and its gazetteer (jieba's dictionary: seconds) off the event loop."""
        await asyncio.to_thread(warm, self.grid)

    async def place(self, s: AsyncSession, report: Report) -> Placement:
        """Where ``report`` lands (reads its contact in ``s``; the lookup runs in a thread)."""
        contact = await s.scalar(
            select(Contact).where(Contact.channel == report.channel, Contact.address == report.sender)
        )
        position = None if contact is None else (contact.last_lat, contact.last_lng, contact.last_location_at)
        return await asyncio.to_thread(self.place_facts, self.facts(report, position))

    def facts(self, report: ReportView, contact: LastPosition | None) -> Facts:
        """What ``report`` offers to place it by; ``contact``: its sender's last known position."""
        return Facts(
            report.channel,
            report.location_lat,
            report.location_lng,
            report.location_address or "",
            "\n".join(p for p in (report.title, report.text) if p),
            self._recent_position(contact, report.created_at),
        )

    def place_many(self, facts: Sequence[Facts]) -> list[Placement]:
        """CPU-bound (run it in a thread): ``place_facts`` for a batch, on one grid."""
        grid = self.grid
        return [self.place_facts(f, grid) for f in facts]

    def place_facts(self, facts: Facts, grid: Grid | None = None) -> Placement:
        """Where ``facts`` land on ``grid`` (default: the process's grid as the file now is)."""
        grid, snap = grid or self.grid, self.settings.grid_snap_m
        datum = self.datum(facts.channel)
        if facts.lat is not None and facts.lng is not None:
            method = CONTACT_LOCATION if facts.contact == (facts.lat, facts.lng) else None
            match = grid.index.locate(facts.lat, facts.lng, datum=datum, snap_m=snap)
            if match is None:
                return Placement(None, OUTSIDE, grid.version)
            return Placement(match, method or match.method.value, grid.version)
        if facts.contact is not None:
            match = grid.index.locate(*facts.contact, datum=datum, snap_m=snap)
            return Placement(match, CONTACT_LOCATION if match else OUTSIDE, grid.version)
        for text in (facts.address, facts.text):
            match = grid.index.locate_address(text) if text else None
            if match is not None and match.confidence >= self.settings.grid_address_min_confidence:
                return Placement(match, match.method.value, grid.version)
        return Placement(None, NONE, grid.version)

    def _recent_position(self, contact: LastPosition | None, made: datetime) -> tuple[float, float] | None:
        if contact is None:
            return None
        lat, lng, at = contact
        if lat is None or lng is None or at is None:
            return None
        if not _recent(at, made, self.settings.contact_location_max_age_s):
            return None
        return (lat, lng)


def _recent(seen: datetime, made: datetime, max_age_s: int) -> bool:
    return abs(made - seen) <= timedelta(seconds=max_age_s)


def apply(report: Report, placement: Placement) -> None:
    """Store a placement on the report's grid columns."""
    for name, value in columns(placement).items():
        setattr(report, name, value)


def columns(placement: Placement) -> dict[str, Any]:
    """A placement as the values of the report's grid columns."""
    match = placement.match
    return {
        "grid_code": match.code if match else None,
        "grid_level": match.level.label if match else None,
        "grid_path": [step.as_dict() for step in match.path] if match else None,
        "grid_method": placement.method,
        "grid_confidence": round(match.confidence, 3) if match else None,
        "grid_version": placement.version,
    }
