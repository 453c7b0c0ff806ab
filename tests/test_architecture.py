"""The import rules of docs/DESIGN.md, held by a test: who may import whom, no import cycle among
the project's modules, no function-local import in gateway/ (one would hide a cycle), gateway/
imports only the channel contract and the registry, and gateway/ keeps at most a dozen modules
at its top level."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "channels", "nlp", "adapters", "grid")
# gateway/'s foundation: what every room may use, and which itself imports no room.
FOUNDATION = {f"gateway.{m}" for m in ("models", "settings", "db", "logs", "metrics", "media", "migrate")}
CHANNEL_CONTRACT = {"channels", "channels.base", "channels.errors", "channels.payload"}

# DESIGN.md, "Import rules": (importer prefix, forbidden prefixes). Most specific importer first.
FORBIDDEN: list[tuple[str, tuple[str, ...]]] = [
    ("channels", ("gateway.", "nlp", "adapters")),  # except gateway.models, allowed below
    ("adapters", ("gateway.", "channels", "nlp")),  # except gateway.models
    ("nlp", ("gateway", "channels", "adapters", "grid")),
    ("grid", ("gateway", "channels", "adapters", "nlp")),
    (
        "gateway.core",
        (
            "gateway.http",
            "gateway.console",
            "gateway.dispatch",
            "gateway.tasks",
            "gateway.runtime",
            "gateway.cli",
            "gateway.worker",
            "gateway.keys",
            "channels",
            "adapters",
        ),
    ),
    (
        "gateway.dispatch",
        (
            "gateway.http",
            "gateway.console",
            "gateway.tasks.table",
            "gateway.runtime",
            "gateway.cli",
            "gateway.worker",
            "gateway.keys",
            "channels",
        ),
    ),
    (
        "gateway.tasks",
        ("gateway.http", "gateway.console", "gateway.runtime", "gateway.cli", "gateway.worker", "gateway.keys"),
    ),
    ("gateway.console", ("gateway.http", "gateway.runtime", "gateway.cli", "gateway.worker", "gateway.tasks")),
    ("gateway.http", ("gateway.cli", "gateway.worker")),
    ("gateway.runtime", ("gateway.http", "gateway.console", "gateway.cli", "gateway.worker")),
    ("gateway.worker", ("gateway.http", "gateway.console", "gateway.cli")),
]
ALLOWED_ANYWAY = {"gateway.models"}  # the schema channels produce and adapters read


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """Project modules imported by ``name`` (under ``TYPE_CHECKING`` too: a cycle in types is one too)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target, node.lineno


GRAPH = {name: sorted({t for t, _ in _imports(name, path)}) for name, path in MODULES.items()}


def _within(name: str, prefix: str) -> bool:
    return (
        name == prefix.rstrip(".")
        or name.startswith(prefix if prefix.endswith(".") else prefix + ".")
        or (prefix.endswith(".") and name.startswith(prefix))
    )


def violations(graph: dict[str, list[str]]) -> list[str]:
    found = []
    for importer, targets in graph.items():
        for target in targets:
            if target in ALLOWED_ANYWAY and not importer.startswith("nlp"):
                continue
            if importer in FOUNDATION and target.startswith("gateway.") and target not in FOUNDATION:
                found.append(f"{importer} -> {target} (the foundation imports no room)")
            if importer.startswith("gateway") and target.startswith("channels") and target not in CHANNEL_CONTRACT:
                found.append(f"{importer} -> {target} (gateway imports only the channel contract and the registry)")
            for prefix, forbidden in FORBIDDEN:
                if _within(importer, prefix):
                    found += [f"{importer} -> {target}" for f in forbidden if _within(target, f)]
                    break
    return found


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_package_imports_what_design_forbids():
    assert violations(GRAPH) == []


def test_no_import_cycle_among_the_project_modules():
    assert cycles(GRAPH) == []


def test_the_checks_catch_a_forbidden_import_and_a_cycle():
    graph = {**GRAPH, "gateway.core.intake": [*GRAPH["gateway.core.intake"], "gateway.http.app", "channels.wechat"]}
    assert "gateway.core.intake -> gateway.http.app" in violations(graph)
    assert any("channels.wechat" in v for v in violations(graph))
    assert any("gateway.core.intake" in c for c in cycles(graph))
    assert violations({"channels.web": ["gateway.db"]}) == ["channels.web -> gateway.db"]


def test_gateway_imports_no_concrete_channel():
    concrete = [
        (n, t)
        for n, ts in GRAPH.items()
        if n.startswith("gateway")
        for t in ts
        if t.startswith("channels") and t not in CHANNEL_CONTRACT
    ]
    assert concrete == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("gateway")))
def test_no_function_local_import_in_gateway(name):
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    local = [
        f"{name}:{sub.lineno}"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for sub in ast.walk(node)
        if isinstance(sub, ast.Import | ast.ImportFrom)
    ]
    assert local == []


def test_at_most_a_dozen_modules_directly_under_gateway():
    top = sorted(p.name for p in (ROOT / "gateway").glob("*.py"))
    assert len(top) <= 12, top
