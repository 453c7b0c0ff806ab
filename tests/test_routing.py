"""adapters/routing.py: the routing table picks the most specific target; the default catches the rest."""

from __future__ import annotations

import pytest

from adapters.routing import RoutingError, load_routing

TABLE = """
targets:
  municipal:
    url: http://127.0.0.1:9001/hook
    secret_env: SECRET_MUNICIPAL
    department: 市政管理局
  sanitation:
    url: http://127.0.0.1:9002/hook
    secret: inline-secret
    department: 环卫中心
  longhua_lights:
    url: http://127.0.0.1:9003/hook
    secret: lights-secret
routes:
  - categories: ["01"]
    target: municipal
  - categories: ["02"]
    target: sanitation
  - categories: ["0101"]
    districts: ["龙华区"]
    target: longhua_lights
  - streets: ["民治街道"]
    target: sanitation
"""


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "routing.yaml"
    path.write_text(TABLE, encoding="utf-8")
    return load_routing(path, "http://127.0.0.1:9000/hook", "default-secret", env={"SECRET_MUNICIPAL": "m-secret"})


@pytest.mark.parametrize(
    ("code", "address", "expected"),
    [
        ("0103", "福田区某路", "municipal"),  # top-level prefix
        ("0201", None, "sanitation"),
        ("0101", "深圳市龙华区观澜街道", "longhua_lights"),  # district + longer prefix beats the prefix alone
        ("0101", "福田区", "municipal"),
        ("0101", "龙华区民治街道", "sanitation"),  # a street match is the most specific
        ("1101", "福田区", "default"),  # nothing matches: the default target
        (None, None, "default"),
    ],
)
def test_most_specific_rule_wins(table, code, address, expected):
    assert table.route(code, address).name == expected


def test_targets_carry_url_secret_and_department(table):
    municipal = table.target("municipal")
    assert municipal.secret == "m-secret" and municipal.department == "市政管理局"
    assert "m-secret" not in repr(municipal)  # secrets stay out of logs
    assert set(table.secrets()) == {"default-secret", "m-secret", "inline-secret", "lights-secret"}


def test_no_table_and_no_default_routes_nowhere():
    assert load_routing(None, None, None).route("0101") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("targets: {a: {url: 'http://x'}}", "needs `secret_env`"),
        ("targets: {a: {url: 'http://x', secret_env: MISSING}}", "MISSING is not set"),
        ("targets: {a: {url: 'http://x', secret: s}}\nroutes: [{categories: ['01'], target: b}]", "unknown target"),
        ("targets: {a: {url: 'http://x', secret: s}}\nroutes: [{target: a}]", "at least one of"),
        ("[1, 2]", "must be a mapping"),
    ],
)
def test_bad_tables_fail_naming_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RoutingError, match=message):
        load_routing(path, None, None, env={})


# --------------------------------------------------------------------------- routing on the grid (issue 15)

GRID_TABLE = """
targets:
  municipal: {url: "http://127.0.0.1:9001/hook", secret: m}
  minzhi_cgj: {url: "http://127.0.0.1:9004/hook", secret: c, department: 民治街道城管}
  shangfen_cgj: {url: "http://127.0.0.1:9005/hook", secret: s}
  cgj-440309001: {url: "http://127.0.0.1:9006/hook", secret: g, department: 观澜街道城管}
routes:
  - categories: ["06"]
    target: municipal
  - categories: ["06"]
    grid: ["民治街道"]
    target: minzhi_cgj
  - categories: ["06"]
    grid: ["440309004008"]
    target: shangfen_cgj
  - categories: ["06"]
    grid_level: 街道
    target: "cgj-{code}"
"""
MINZHI = [
    {"level": "市", "code": "440300", "name": "深圳市"},
    {"level": "区", "code": "440309", "name": "龙华区"},
    {"level": "街道", "code": "440309004", "name": "民治街道"},
]
SHANGFEN = [*MINZHI, {"level": "社区", "code": "440309004008", "name": "上芬社区"}]
GUANLAN = [*MINZHI[:2], {"level": "街道", "code": "440309001", "name": "观澜街道"}]
DALANG = [*MINZHI[:2], {"level": "街道", "code": "440309002", "name": "大浪街道"}]


@pytest.fixture
def grid_table(tmp_path):
    path = tmp_path / "routing.yaml"
    path.write_text(GRID_TABLE, encoding="utf-8")
    return load_routing(path, "http://127.0.0.1:9000/hook", "default-secret", env={})


@pytest.mark.parametrize(
    ("code", "path", "expected"),
    [
        ("0601", MINZHI, "minzhi_cgj"),  # 06 in 民治街道 → 民治街道城管
        ("0601", SHANGFEN, "shangfen_cgj"),  # a community named beats its street
        ("0601", GUANLAN, "cgj-440309001"),  # the level template names the street's target
        ("0601", DALANG, "municipal"),  # the template names no configured target: the next rule
        ("0601", None, "municipal"),  # not placed: grid rules do not match
        ("0101", MINZHI, "default"),  # another category
    ],
)
def test_grid_rules_route_by_unit_and_level(grid_table, code, path, expected):
    assert grid_table.route(code, None, path).name == expected


def test_a_broken_stored_path_is_read_as_no_path(grid_table):
    assert grid_table.route("0601", None, [{"level": "?", "code": "x"}]).name == "municipal"


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ('{grid: "民治街道", target: municipal}', "`grid` must be a non-empty list"),
        ("{grid_level: 省, target: municipal}", "`grid_level`"),
        ('{grid: ["民治街道"], target: "cgj-{code}"}', "a templated target needs `grid_level`"),
    ],
)
def test_bad_grid_rules_fail_naming_the_problem(tmp_path, route, message):
    path = tmp_path / "routing.yaml"
    path.write_text(f"targets:\n  municipal: {{url: http://x/, secret: s}}\nroutes:\n  - {route}\n", encoding="utf-8")
    with pytest.raises(RoutingError, match=message):
        load_routing(path, None, None, env={})
