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


def _fuzz(operation, headers: dict[str, str], mode: GenerationMode) -> list[str]:
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
            failures.append(f"{operation.label} [{mode.value}]: {str(exc).strip()[:1500]}")

    try:
        run()
    except Unsatisfiable:  # nothing to negate: an operation without parameters or body
        assert mode is GenerationMode.NEGATIVE, operation.label
    return failures


def test_every_operation_answers_what_the_document_says(app, member, merchant, ops_admin):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    credentials = _credentials(member, merchant, ops_admin)
    failures: list[str] = []
    seen = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in EXCLUDED:
            continue
        seen += 1
        security = operation.definition.raw.get("security", [])
        headers = next((credentials[name] for req in security for name in req if name in credentials), {})
        for mode in EXAMPLES:
            failures += _fuzz(operation, headers, mode)
    assert seen > 100
    assert not failures, f"{len(failures)} failing examples:\n\n" + "\n\n".join(failures)
