"""Routing scopes on grid paths."""

from __future__ import annotations

import pytest

from grid.index import GridIndex
from grid.match import PathStep
from grid.routing import GridScope, ScopeError


@pytest.fixture(scope="module")
def shangfen(sample: GridIndex) -> tuple[PathStep, ...]:
    match = sample.locate_address("上芬社区")
    assert match is not None
    return match.path


def test_no_grid_keys_no_scope() -> None:
    assert GridScope.parse({"categories": ["06"], "target": "x"}) is None


def test_unit_names_and_codes_score_by_the_deepest_named_level(shangfen: tuple[PathStep, ...]) -> None:
    street = GridScope.parse({"grid": ["民治街道"]})
    community = GridScope.parse({"grid": ["440309004008"]})
    elsewhere = GridScope.parse({"grid": ["观澜街道", "大浪街道"]})
    assert street is not None and community is not None and elsewhere is not None
    assert street.score(shangfen) == 3
    assert community.score(shangfen) == 4
    assert elsewhere.score(shangfen) is None
    assert street.score(()) is None  # a report outside the grid matches no grid rule


def test_level_scope_and_target_template(shangfen: tuple[PathStep, ...]) -> None:
    scope = GridScope.parse({"grid_level": "街道"})
    assert scope is not None and scope.score(shangfen) == 3
    assert scope.target_name("cgj-{code}", shangfen) == "cgj-440309004"
    assert scope.target_name("{name}城管", shangfen) == "民治街道城管"
    grid_level = GridScope.parse({"grid_level": "网格"})
    assert grid_level is not None and grid_level.score(shangfen) is None  # an address stops at 社区


@pytest.mark.parametrize(
    "rule,message",
    [
        ({"grid": "民治街道"}, "`grid` must be a non-empty list"),
        ({"grid": []}, "`grid` must be a non-empty list"),
        ({"grid_level": "小区"}, "`grid_level`: unknown level"),
    ],
)
def test_bad_scopes(rule: dict[str, object], message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        GridScope.parse(rule, where="routes[0]")
