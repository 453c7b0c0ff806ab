"""Routing on the grid: the scope part of a dispatch routing rule.

The gateway's routing table (``adapters/routing.py``) picks a dispatch target by category and,
today, by street/district names found in the address text. With the grid, a rule can name
grid units, or a level, and is matched against the report's grid path instead::

    routes:
      - categories: ["06"]            # 市容环境 …
        grid: ["民治街道"]             # unit names or codes: that unit and everything inside it
        target: minzhi_cgj            # → 民治街道城管
      - categories: ["06"]
        grid_level: 街道               # any report placed at least to street level …
        target: "cgj-{code}"          # … goes to the target named after its street's code

``GridScope.score(path)`` says how specifically a rule's grid part matches a path: the level of
the deepest unit of the path that the rule names (5 for a 网格 … 1 for the 市), or None when it
does not match. The routing table ranks rules by (grid score, category prefix length, order),
so "06 in 民治街道" beats "06 anywhere" and "06 in 上芬社区" beats "06 in 民治街道". A report
with no grid path matches no rule that has a grid part; it goes to the table's other rules,
then to the default target, and the gateway sends a report outside every unit to moderators
with that reason first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grid.match import PathStep
from grid.units import Level


class ScopeError(ValueError):
    """A rule's ``grid`` / ``grid_level`` is not of the expected shape; the message says where."""


@dataclass(frozen=True, slots=True)
class GridScope:
    """The grid part of one routing rule: units (codes or names) and/or a level."""

    units: frozenset[str] = frozenset()
    level: Level | None = None

    @classmethod
    def parse(cls, rule: Mapping[str, Any], where: str = "rule") -> GridScope | None:
        """The scope of a routing rule's ``grid`` and ``grid_level`` keys; None if it has neither."""
        units, level = rule.get("grid"), rule.get("grid_level")
        if units is None and level is None:
            return None
        if units is not None and (
            not isinstance(units, list) or not units or not all(isinstance(u, str | int) for u in units)
        ):
            raise ScopeError(f"{where}: `grid` must be a non-empty list of unit codes or names")
        try:
            parsed_level = Level.parse(level) if level is not None else None
        except ValueError as exc:
            raise ScopeError(f"{where}: `grid_level`: {exc}") from None
        return cls(frozenset(str(u).strip() for u in units or ()), parsed_level)

    def score(self, path: Sequence[PathStep]) -> int | None:
        """How specifically this scope matches ``path`` (higher is more specific), or None."""
        score = 0
        if self.units:
            named = [s.level for s in path if s.code in self.units or s.name in self.units]
            if not named:
                return None
            score = max(named)
        if self.level is not None:
            if not any(s.level is self.level for s in path):
                return None
            score = max(score, self.level)
        return int(score)

    def target_name(self, template: str, path: Sequence[PathStep]) -> str:
        """``template`` with ``{code}`` and ``{name}`` of the path's unit at this scope's level."""
        step = next((s for s in path if s.level is self.level), None) if self.level is not None else None
        if step is None:
            return template
        return template.format(code=step.code, name=step.name)
