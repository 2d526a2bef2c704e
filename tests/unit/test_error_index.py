"""The index of error codes: every documented code is raised somewhere, each with one class (one status)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mallapp.api.error_index import error_index, scan
from mallapp.errors import Conflict, InvalidInput, NotFound, RuleViolation, Unauthorized


def test_the_package_has_no_error_code_problems():
    # A code computed at its raise site, one code with two classes, an error class outside mallapp.errors.
    assert error_index().problems == ()


def _package(tmp_path: Path, **modules: str) -> Path:
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    for name, source in modules.items():
        path = root / f"{name.replace('.', '/')}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root


def test_scan_reads_literals_tables_conditionals_tuples_and_class_defaults(tmp_path):
    root = _package(tmp_path, shop="""
        from mallapp.errors import Conflict, NotFound, RuleViolation as RV
        from mallapp import errors

        _MISSING = {"a": "shop.a_missing", "b": "shop.b_missing"}
        _TABLE = {1: (errors.Unauthorized, "shop.upstream_says_no", "text")}

        def f(kind, late):
            if kind:
                raise NotFound("x", code=_MISSING[kind])
            if late:
                return RV("x", code="shop.too_late" if late > 1 else "shop.late")
            raise Conflict("x", code="shop.taken")
        """)
    index = scan(root, "pkg")
    assert index.problems == ()
    expected = {"shop.a_missing": NotFound, "shop.b_missing": NotFound, "shop.upstream_says_no": Unauthorized,
                "shop.too_late": RuleViolation, "shop.late": RuleViolation, "shop.taken": Conflict,
                "request.invalid": InvalidInput, "not_found": NotFound}
    assert {code: index.classes[code] for code in expected} == expected
    assert index.status("shop.taken") == 409
    assert index.sites["shop.taken"] == ("pkg/shop.py:13",)
    with pytest.raises(LookupError, match="shop.unknown"):
        index.status("shop.unknown")


def test_scan_reports_a_code_raised_with_two_classes(tmp_path):
    root = _package(tmp_path, a="""
        from mallapp.errors import Conflict
        raise Conflict("x", code="shop.taken")
        """, b="""
        from mallapp.errors import RuleViolation
        raise RuleViolation("x", code="shop.taken")
        """)
    problems = scan(root, "pkg").problems
    assert len(problems) == 1
    assert "shop.taken" in problems[0] and "Conflict (409)" in problems[0] and "RuleViolation (422)" in problems[0]


def test_scan_reports_computed_codes_and_error_classes_outside_mallapp_errors(tmp_path):
    root = _package(tmp_path, **{"sub.deep": """
        from mallapp.errors import NotFound, MallError

        class Gone(NotFound):
            status = 410

        def f(noun, code):
            MallError("the base class is not indexed", code=f"http.{noun}")
            raise NotFound("x", code=f"{noun}.not_found")
        """})
    problems = scan(root, "pkg").problems
    assert len(problems) == 2, problems
    assert problems[0].startswith("pkg/sub/deep.py:4: error class Gone")
    assert problems[1].startswith("pkg/sub/deep.py:9: NotFound is raised with a code that is neither")


def test_scan_reads_the_code_given_to_get_or_404_as_not_founds(tmp_path):
    root = _package(tmp_path, shop="""
        from mallapp.db import get_or_404

        _MISSING = {"a": "shop.a_missing"}

        def f(session, model, i, kind, code):
            get_or_404(session, model, i, code="shop.gone")
            get_or_404(session, model, i, code=_MISSING[kind])
            get_or_404(session, model, i, code=code)
        """)
    index = scan(root, "pkg")
    assert index.classes["shop.gone"] is NotFound and index.classes["shop.a_missing"] is NotFound
    assert index.sites["shop.gone"] == ("pkg/shop.py:7",)
    # Only the helper itself may pass a code on; a caller's must be a literal.
    assert len(index.problems) == 1 and index.problems[0].startswith("pkg/shop.py:9: NotFound is raised with a code")


def test_the_package_index_maps_get_or_404s_codes_to_not_found():
    index = error_index()
    for code in ("deal.not_found", "reservation.store_not_found", "queue.ticket_not_found", "notification.not_found",
                 "zone.not_found", "staff.not_found"):
        assert index.classes[code] is NotFound, code
    assert any(site.startswith("mallapp/domain/follows.py") for site in index.sites["store.not_found"])
