"""Layering, read from the source: layers import only downwards, no cycles, no imports hidden in functions.

The layers, lowest first (a module may import its own layer and those below)::

    foundation   mallapp.errors, db, settings, logs, schema, i18n
    domain       mallapp.domain.*               plain functions over a Session
    adapters     mallapp.adapters.*             WeChat, the live channel
    runtime      mallapp.runtime                the composition root
    entry        mallapp (create_app), api.*, processes.*, cli, devtools.*, __main__

Also here: the processes, the CLI and the gateway package import no Flask. (That the schema Alembic
builds is exactly the models' is in integration/test_schema.py: it needs the databases.)
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from factories import PROJECT

PACKAGE = PROJECT / "mallapp"
FOUNDATION = {"mallapp.errors", "mallapp.db", "mallapp.settings", "mallapp.logs", "mallapp.schema", "mallapp.i18n"}
LAYERS = ("foundation", "domain", "adapters", "runtime", "entry")
# Where a function may import a mallapp module: the CLI (each command loads only what it needs) and
# the lazy create_app of the package (so processes import no Flask).
LOCAL_IMPORTS_ALLOWED = {"mallapp.cli", "mallapp"}


def layer(module: str) -> str:
    if module in FOUNDATION:
        return "foundation"
    for name in ("domain", "adapters"):
        if module == f"mallapp.{name}" or module.startswith(f"mallapp.{name}."):
            return name
    if module == "mallapp.runtime":
        return "runtime"
    return "entry"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(module: str, path: Path, known: dict[str, Path]) -> list[tuple[str, bool, int]]:
    """(imported mallapp module, inside a function, line) for every import in the module's source."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inside.update(id(child) for child in ast.walk(node) if child is not node)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import sub` imports pkg.sub when sub is a module, else a name from pkg.
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                     for a in node.names]
        else:
            continue
        for name in names:
            if name in known and name != module:
                found.append((name, id(node) in inside, node.lineno))
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, list[tuple[str, bool, int]]]:
    known = modules()
    return {module: imports(module, path, known) for module, path in known.items()}


def test_each_layer_imports_only_its_own_and_lower_layers(graph):
    upward = [f"{module} ({layer(module)}) imports {target} ({layer(target)}) at line {line}"
              for module, found in graph.items() for target, _local, line in found
              if LAYERS.index(layer(target)) > LAYERS.index(layer(module))]
    assert upward == []


def test_there_is_no_import_cycle_counting_imports_inside_functions(graph):
    edges = {module: {target for target, _local, _line in found} for module, found in graph.items()}
    # A module imports its package's __init__ on the way: edges to a parent package are not cycles of ours.
    edges = {m: {t for t in targets if not m.startswith(f"{t}.")} for m, targets in edges.items()}
    assert find_cycle(edges) is None


def test_mallapp_modules_are_imported_at_the_top_outside_the_cli_and_the_flask_factory(graph):
    hidden = [f"{module}:{line} imports {target} inside a function" for module, found in graph.items()
              if module not in LOCAL_IMPORTS_ALLOWED for target, local, line in found if local]
    assert hidden == []


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_checks_catch_an_upward_import_and_a_cycle():
    assert layer("mallapp.domain.points") == "domain" and layer("mallapp.processes.clock") == "entry"
    assert LAYERS.index(layer("mallapp.runtime")) > LAYERS.index(layer("mallapp.adapters.live"))
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_processes_the_cli_and_the_gateway_do_not_import_flask():
    code = ("import sys, mallapp, mallapp.cli, mallapp.processes, mallapp.runtime, mallapp.domain.models, "
            "mallapp.domain.proximity.evaluate, mallapp.domain.queueing.evaluate, mallapp.devtools.walks, "
            "beacons, beacons.__main__; sys.exit(1 if 'flask' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
