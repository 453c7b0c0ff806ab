"""The dispatch routing table: which dispatch target (department system) gets which case.

A YAML file (``GATEWAY_ROUTING_TABLE``) names targets and rules::

    targets:
      municipal:
        url: https://dispatch.example.gov.cn/hooks/municipal
        secret_env: DISPATCH_SECRET_MUNICIPAL   # or `secret:` inline (not recommended)
        department: 市政管理局
      sanitation:
        url: https://sanitation.example.gov.cn/hooks/gateway
        secret_env: DISPATCH_SECRET_SANITATION
    routes:
      - categories: ["01"]                 # category code prefixes (a top level or a subcategory)
        target: municipal
      - categories: ["0201", "0202"]
        districts: ["龙华区"]               # optional: matched against the report's address
        streets: ["民治街道"]               # optional, idem
        target: sanitation
      - categories: ["06"]
        grid: ["民治街道"]                  # optional: grid units (codes or names) and all inside them
        target: minzhi_cgj                 # "06 in 民治街道 → 民治街道城管"
      - categories: ["06"]
        grid_level: 街道                    # optional: any report placed at least to a street …
        target: "cgj-{code}"               # … to the target named after that street ({code}, {name})

The most specific matching rule wins: a grid match (the deeper the unit the rule names, the
better; ``grid.routing.GridScope``) beats a street match beats a district match beats none, then
the longest category prefix; ties go to the rule written first. A rule with a grid part matches
only reports placed in the grid, and a templated target that names no configured target does
not match. Cases no rule matches go to the
default target, ``GATEWAY_DISPATCH_URL`` / ``GATEWAY_DISPATCH_SECRET`` (named ``default``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from grid.match import PathStep
from grid.routing import GridScope, ScopeError
from grid.units import Level

DEFAULT_TARGET = "default"


class RoutingError(ValueError):
    """The routing table file does not have the expected shape; the message says where."""


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    url: str
    secret: str = field(repr=False)
    department: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    target: str
    categories: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()
    streets: tuple[str, ...] = ()
    grid: GridScope | None = None

    def score(
        self, category: str | None, address: str, path: Sequence[PathStep] = ()
    ) -> tuple[int, int, int, int] | None:
        """How specifically this rule matches (higher is more specific), or None if it does not."""
        area = 0
        if self.grid is not None:
            found = self.grid.score(path)
            if found is None:
                return None
            area = found
        prefix = 0
        if self.categories:
            hits = [len(p) for p in self.categories if category and category.startswith(p)]
            if not hits:
                return None
            prefix = max(hits)
        district = _place_match(self.districts, address)
        street = _place_match(self.streets, address)
        if district is None or street is None:
            return None
        return (area, street, district, prefix)

    def target_name(self, path: Sequence[PathStep]) -> str:
        """The rule's target, its ``{code}``/``{name}`` filled from the path when templated."""
        if self.grid is None or "{" not in self.target:
            return self.target
        return self.grid.target_name(self.target, path)


def _place_match(places: tuple[str, ...], address: str) -> int | None:
    if not places:
        return 0
    return 1 if any(p in address for p in places) else None


@dataclass(frozen=True)
class RoutingTable:
    targets: Mapping[str, Target]
    rules: tuple[Rule, ...] = ()

    @property
    def default(self) -> Target | None:
        return self.targets.get(DEFAULT_TARGET)

    def route(
        self, category: str | None, address: str | None = None, grid_path: Sequence[Mapping[str, str]] | None = None
    ) -> Target | None:
        """The target for a case (``grid_path``: the report's, as stored); None when nothing is configured."""
        path = grid_steps(grid_path)
        best: tuple[tuple[int, int, int, int], int, Target] | None = None
        for order, rule in enumerate(self.rules):
            score = rule.score(category, address or "", path)
            target = self.targets.get(rule.target_name(path)) if score is not None else None
            if score is not None and target is not None and (best is None or (score, -order) > (best[0], -best[1])):
                best = (score, order, target)
        if best is not None:
            return best[2]
        return self.default

    def target(self, name: str) -> Target | None:
        return self.targets.get(name)

    def secrets(self) -> list[str]:
        """Every distinct secret (callbacks may come from any target)."""
        return list(dict.fromkeys(t.secret for t in self.targets.values() if t.secret))


def grid_steps(grid_path: Sequence[Mapping[str, str]] | None) -> tuple[PathStep, ...]:
    """A stored grid path (``[{level, code, name}]``) as ``PathStep``s; unreadable steps are skipped."""
    steps = []
    for step in grid_path or ():
        try:
            steps.append(PathStep(Level.parse(step["level"]), str(step["code"]), str(step["name"])))
        except (KeyError, TypeError, ValueError):
            continue
    return tuple(steps)


def load_routing(
    path: Path | None,
    default_url: str | None,
    default_secret: str | None,
    env: Mapping[str, str] | None = None,
) -> RoutingTable:
    """Read the routing table (if any) and add the default target from the dispatch settings."""
    targets: dict[str, Target] = {}
    if default_url and default_secret:
        targets[DEFAULT_TARGET] = Target(DEFAULT_TARGET, default_url, default_secret)
    if path is None:
        return RoutingTable(targets)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RoutingError(f"{path}: cannot read routing table: {exc}") from exc
    return parse_routing(data, targets, env if env is not None else os.environ, where=str(path))


def parse_routing(
    data: Any, targets: dict[str, Target], env: Mapping[str, str], *, where: str = "routing table"
) -> RoutingTable:
    if not isinstance(data, dict):
        raise RoutingError(f"{where}: must be a mapping with `targets` and `routes`")
    raw_targets = data.get("targets") or {}
    if not isinstance(raw_targets, dict):
        raise RoutingError(f"{where}: `targets` must be a mapping of name -> {{url, secret_env}}")
    for name, raw in raw_targets.items():
        targets[str(name)] = _target(str(name), raw, env, where)
    rules = []
    for i, raw in enumerate(data.get("routes") or []):
        rules.append(_rule(raw, targets, f"{where}: routes[{i}]"))
    return RoutingTable(targets, tuple(rules))


def _target(name: str, raw: Any, env: Mapping[str, str], where: str) -> Target:
    if not isinstance(raw, dict) or not isinstance(raw.get("url"), str):
        raise RoutingError(f"{where}: target {name!r} needs a `url`")
    secret = raw.get("secret")
    if raw.get("secret_env"):
        secret = env.get(str(raw["secret_env"]))
        if not secret:
            raise RoutingError(f"{where}: target {name!r}: environment variable {raw['secret_env']} is not set")
    if not isinstance(secret, str) or not secret:
        raise RoutingError(f"{where}: target {name!r} needs `secret_env` (or `secret`)")
    department = raw.get("department")
    return Target(name, raw["url"], secret, str(department) if department else None)


def _rule(raw: Any, targets: Mapping[str, Target], where: str) -> Rule:
    if not isinstance(raw, dict) or not isinstance(raw.get("target"), str):
        raise RoutingError(f"{where}: needs a `target`")
    try:
        scope = GridScope.parse(raw, where)
    except ScopeError as exc:
        raise RoutingError(str(exc)) from None
    templated = "{" in raw["target"]
    if templated and (scope is None or scope.level is None):
        raise RoutingError(f"{where}: a templated target needs `grid_level` (whose unit fills it)")
    if not templated and raw["target"] not in targets:
        raise RoutingError(f"{where}: unknown target {raw['target']!r}")

    def strings(key: str) -> tuple[str, ...]:
        value = raw.get(key) or []
        if isinstance(value, str | int):
            value = [value]
        if not isinstance(value, list):
            raise RoutingError(f"{where}: `{key}` must be a list")
        return tuple(str(v) for v in value if str(v).strip())

    rule = Rule(raw["target"], strings("categories"), strings("districts"), strings("streets"), scope)
    if not (rule.categories or rule.districts or rule.streets or rule.grid):
        raise RoutingError(f"{where}: give at least one of `categories`, `districts`, `streets`, `grid`, `grid_level`")
    return rule
