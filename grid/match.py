"""Where a report lands in the grid: the path from the root to the unit found, and how it was found."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from grid.units import Level


class Method(StrEnum):
    """How a report was placed in the grid (kept on the report as ``grid.method``)."""

    POINT = "point_in_polygon"
    BOUNDARY = "boundary"  # on the shared edge of two units; the smaller code was taken
    NEAREST = "nearest"  # outside every unit, within snap_m of the one chosen
    ADDRESS = "address"  # from the address text through the gazetteer


@dataclass(frozen=True, slots=True)
class PathStep:
    """One level of a grid path."""

    level: Level
    code: str
    name: str

    def as_dict(self) -> dict[str, str]:
        return {"level": self.level.label, "code": self.code, "name": self.name}


@dataclass(frozen=True, slots=True)
class GridMatch:
    """Where a report lands: ``path`` from the root to the deepest unit found, and how."""

    path: tuple[PathStep, ...]
    method: Method
    confidence: float
    distance_m: float | None = None
    matched: tuple[str, ...] = field(default=())  # the names an address match rests on

    @property
    def code(self) -> str:
        return self.path[-1].code

    @property
    def name(self) -> str:
        return self.path[-1].name

    @property
    def level(self) -> Level:
        return self.path[-1].level

    def step(self, level: Level) -> PathStep | None:
        """The path's unit at ``level``, if the path reaches it."""
        return next((s for s in self.path if s.level is level), None)

    def as_dict(self) -> dict[str, Any]:
        """The JSON a report, the dispatch payload and the Open311 view carry as ``grid``."""
        out: dict[str, Any] = {
            "code": self.code,
            "name": self.name,
            "level": self.level.label,
            "path": [s.as_dict() for s in self.path],
            "method": self.method.value,
            "confidence": round(self.confidence, 3),
        }
        if self.distance_m is not None:
            out["distance_m"] = round(self.distance_m, 1)
        if self.matched:
            out["matched"] = list(self.matched)
        return out
