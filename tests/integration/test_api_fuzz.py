"""Schema fuzzing: every operation of the served OpenAPI document, called with what the document allows.

Schemathesis reads /api/v1/openapi.json from the Flask app in-process (WSGI, no sockets), generates
requests for each operation with a member's, a merchant's or an ops admin's credentials (whichever the
operation's security names), and fails on any 5xx or any answer the document does not describe (an
undocumented status, a body that breaks its response schema, a wrong content type). Bounded: a few
examples per operation, derandomized (the same requests every run), no example database.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = [pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
              pytest.mark.usefixtures("cheap_password_hashing")]

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}

# Operations that would take the fuzzer's own credentials away mid-run; each is covered by tests/api.
EXCLUDED = {
    ("POST", "/api/v1/auth/logout"),            # revokes the member's token
    ("POST", "/api/v1/ops/auth/logout"),        # revokes the ops admin's token
    ("DELETE", "/api/v1/merchant/auth"),        # signs the caller out
    ("PATCH", "/api/v1/ops/merchants/{merchant_id}"),  # may deactivate the merchant whose key the fuzzer uses
}


def _credentials(member: dict[str, Any], merchant: dict[str, Any], ops_admin: dict[str, Any]) -> dict[str, Any]:
    return {"memberBearer": member["headers"], "merchantBearer": merchant["headers"],
            "opsBearer": ops_admin["headers"]}


# Hostile input another change fixes (api/core.py and the domain's validation): a failing example that
# carries one of these is reported as known, not as a failure of this test, until that change lands.
_BIGGEST_ID = 2**63 - 1


def _hostile(value: Any) -> str | None:
    """Why ``value`` (a case's parameters or body, walked) is a known hostile input, or None."""
    if isinstance(value, dict):
        return next((why for v in (*value.keys(), *value.values()) if (why := _hostile(v))), None)
    if isinstance(value, list | tuple):
        return next((why for v in value if (why := _hostile(v))), None)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and abs(value) > _BIGGEST_ID:
        return "a number beyond the database's integers"
    if isinstance(value, str):
        if "\x00" in value:
            return "NUL in text"
        if any(c.isdigit() and not c.isascii() for c in value):
            return "non-ASCII digits"
        if value.startswith("9999-12-31"):
            return "the last date"
        if value.isdigit() and int(value) > _BIGGEST_ID:
            return "a number beyond the database's integers"
    return None


def _fuzz(operation, headers: dict[str, str], mode: GenerationMode, known: list[str]) -> list[str]:
    """Run one operation's examples; the failures, each a paragraph (the first of each kind per example)."""
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES[mode], derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        try:
            case.call_and_validate(headers=headers, checks=CHECKS)
        except (AssertionError, FailureGroup) as exc:
            text = f"{operation.label} [{mode.value}]: {str(exc).strip()[:1500]}"
            why = _hostile([case.path_parameters, case.query, case.body, case.headers])
            (known if why else failures).append(f"({why}) {text}" if why else text)

    try:
        run()
    except Unsatisfiable:  # nothing to negate: an operation without parameters or body
        assert mode is GenerationMode.NEGATIVE, operation.label
    return failures


def test_every_operation_answers_what_the_document_says(app, member, merchant, ops_admin):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    credentials = _credentials(member, merchant, ops_admin)
    failures: list[str] = []
    known: list[str] = []
    seen = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in EXCLUDED:
            continue
        seen += 1
        security = operation.definition.raw.get("security", [])
        headers = next((credentials[name] for req in security for name in req if name in credentials), {})
        for mode in EXAMPLES:
            failures += _fuzz(operation, headers, mode, known)
    assert seen > 100
    assert not failures, f"{len(failures)} failing examples:\n\n" + "\n\n".join(failures)
    if known:
        pytest.xfail(f"{len(known)} examples fail on hostile input being fixed in api/core.py and the domain "
                     "(ids beyond range, NUL, huge numbers, 9999-12-31, non-ASCII digits):\n\n" + "\n\n".join(known))
