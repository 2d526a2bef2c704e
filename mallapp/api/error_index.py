"""Which error class, and so which HTTP status, each error code is raised with, read from the source.

A code's status is stated once, where it is raised: ``raise RuleViolation("...", code="points.insufficient")``
answers 422 because RuleViolation does (mallapp.errors). This module reads the package's source with ``ast``
(nothing is imported but mallapp.errors) and finds every place a code is bound to an error class:

* a call of an error class with ``code="literal"`` (or ``"a" if ... else "b"``), whether raised, returned or
  stored;
* a call with ``code=TABLE[key]``, TABLE a module-level dict whose values are literal codes: each of them;
* a tuple ``(ErrorClass, "code", ...)``, as in the WeChat adapter's table of errcodes;
* an error class's own ``code`` (mallapp.errors), which a raise without ``code=`` answers with;
* a call of a raising helper (``HELPERS``: ``get_or_404(session, Deal, deal_id, code="deal.not_found")``) with
  ``code=`` as above: it binds the code to the class the helper raises, and the helper's own raise, which
  passes its ``code`` parameter on, is not a computed code.

Anything else is a problem the index reports, and tests/test_error_index.py fails on it: a code computed at
the call (make it a literal, or an entry of a table beside the call), one code bound to two classes, an error
class defined outside mallapp.errors. The base ``MallError`` is not indexed: it has no status of its own, and
the app's handlers that use it (Werkzeug's ``http.*`` refusals, ``internal``) set the status themselves.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mallapp import errors
from mallapp.errors import MallError

ERRORS_MODULE = "mallapp.errors"
# Functions that raise an error class with the code their caller gives: "module.function" -> the class's name.
HELPERS = {"mallapp.db.get_or_404": "NotFound"}


@dataclass(frozen=True)
class ErrorIndex:
    """``classes``: code -> the error class it is raised with; ``sites``: code -> where ("mallapp/x.py:12")."""

    classes: dict[str, type[MallError]]
    sites: dict[str, tuple[str, ...]]
    problems: tuple[str, ...]

    def status(self, code: str) -> int:
        cls = self.classes.get(code)
        if cls is None:
            raise LookupError(f"nothing in mallapp raises the error code {code!r}")
        return cls.status


def _error_classes() -> dict[str, type[MallError]]:
    """The error classes of mallapp.errors by name, the base MallError left out."""
    return {name: obj for name, obj in vars(errors).items()
            if isinstance(obj, type) and issubclass(obj, MallError) and obj is not MallError}


def _modules(root: Path, package: str) -> Iterator[tuple[str, str, ast.Module]]:
    """(module name, display path, tree) of every .py file under ``root``, the directory of ``package``."""
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join((package, *parts))
        shown = "/".join((package, *path.relative_to(root).parts))
        yield name, shown, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[:len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, *([node.module] if node.module else [])])


class _Module:
    """The names a module binds to error classes, and its module-level tables of literal codes."""

    def __init__(self, name: str, is_package: bool, tree: ast.Module, classes: dict[str, type[MallError]]):
        self.classes: dict[str, type[MallError]] = {}  # local name -> error class
        self.modules: set[str] = set()  # local names of mallapp.errors itself
        self.helpers: dict[str, type[MallError]] = {}  # local name -> the error class the helper raises
        self.forwarding: set[int] = set()  # ids of the calls inside a helper, which pass its ``code`` on
        if name == ERRORS_MODULE:
            self.classes.update(classes)
        for helper, raised in HELPERS.items():
            helper_module, _, function = helper.rpartition(".")
            if name == helper_module:
                self.helpers[function] = classes[raised]
                for node in tree.body:
                    if isinstance(node, ast.FunctionDef) and node.name == function:
                        self.forwarding.update(id(n) for n in ast.walk(node) if isinstance(n, ast.Call))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _absolute(name, is_package, node)
                for alias in node.names:
                    local = alias.asname or alias.name
                    if source == ERRORS_MODULE and alias.name in classes:
                        self.classes[local] = classes[alias.name]
                    elif f"{source}.{alias.name}" in HELPERS:
                        self.helpers[local] = classes[HELPERS[f"{source}.{alias.name}"]]
                    elif f"{source}.{alias.name}" == ERRORS_MODULE:
                        self.modules.add(local)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == ERRORS_MODULE and alias.asname:
                        self.modules.add(alias.asname)
        self.tables: dict[str, list[str] | None] = {}  # None: not all values are literal strings
        for node in tree.body:
            target, value = _assignment(node)
            if target is not None and isinstance(value, ast.Dict):
                values = [v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else None
                          for v in value.values]
                self.tables[target] = None if None in values else values  # type: ignore[assignment]

    def error_class(self, node: ast.expr) -> type[MallError] | None:
        if isinstance(node, ast.Name):
            return self.classes.get(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in self.modules:
            cls = getattr(errors, node.attr, None)
            return cls if isinstance(cls, type) and issubclass(cls, MallError) and cls is not MallError else None
        return None

    def helper(self, node: ast.expr) -> type[MallError] | None:
        return self.helpers.get(node.id) if isinstance(node, ast.Name) else None


def _assignment(node: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id, node.value
    return None, None


def _literal_codes(node: ast.expr) -> list[str] | None:
    """The codes of a literal (``"a.b"``, or ``"a.b" if ... else "a.c"``); None when it is not one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, orelse = _literal_codes(node.body), _literal_codes(node.orelse)
        return None if body is None or orelse is None else body + orelse
    return None


def scan(root: Path, package: str) -> ErrorIndex:
    """Index the error codes raised in the source of ``package``, whose directory is ``root``."""
    classes = _error_classes()
    found: dict[str, dict[type[MallError], list[str]]] = {}
    problems: list[str] = []

    def bind(code: str, cls: type[MallError], where: str) -> None:
        found.setdefault(code, {}).setdefault(cls, []).append(where)

    for cls in classes.values():
        if "code" in vars(cls):
            bind(cls.code, cls, f"{ERRORS_MODULE}.{cls.__name__}")

    for name, shown, tree in _modules(root, package):
        module = _Module(name, shown.endswith("__init__.py"), tree, classes)
        for node in ast.walk(tree):
            where = f"{shown}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.ClassDef) and name != ERRORS_MODULE:
                if any(module.error_class(base) for base in node.bases):
                    problems.append(f"{where}: error class {node.name} is defined outside {ERRORS_MODULE}")
            elif isinstance(node, ast.Call) and (cls := module.error_class(node.func) or module.helper(node.func)):
                for keyword in node.keywords:
                    if keyword.arg != "code":
                        continue
                    value = keyword.value
                    if (literal := _literal_codes(value)) is not None:
                        for code in literal:
                            bind(code, cls, where)
                    elif (isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name)
                          and module.tables.get(value.value.id)):
                        for code in module.tables[value.value.id] or ():
                            bind(code, cls, where)
                    elif not (id(node) in module.forwarding and isinstance(value, ast.Name) and value.id == "code"):
                        problems.append(f"{where}: {cls.__name__} is raised with a code that is neither a literal "
                                        f"nor an entry of a module-level table of literal codes")
            elif (isinstance(node, ast.Tuple) and len(node.elts) >= 2
                  and (cls := module.error_class(node.elts[0])) is not None):
                code_node = node.elts[1]
                if isinstance(code_node, ast.Constant) and isinstance(code_node.value, str):
                    bind(code_node.value, cls, where)

    index: dict[str, type[MallError]] = {}
    sites: dict[str, tuple[str, ...]] = {}
    for code, by_class in sorted(found.items()):
        index[code] = next(iter(by_class))
        sites[code] = tuple(w for places in by_class.values() for w in places)
        if len(by_class) > 1:
            raised = "; ".join(f"{cls.__name__} ({cls.status}) at {', '.join(places)}"
                               for cls, places in by_class.items())
            problems.append(f"{code} is raised with more than one class: {raised}")
    return ErrorIndex(index, sites, tuple(problems))


@functools.cache
def error_index() -> ErrorIndex:
    """The index of the installed mallapp package, built on first use."""
    return scan(Path(__file__).resolve().parent.parent, "mallapp")
