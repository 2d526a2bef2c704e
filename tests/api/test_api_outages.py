"""The document states the 503 every operation that reads Redis or the database can give, once, generically."""

from __future__ import annotations

import pytest

from mallapp.api.error_index import error_index
from mallapp.api.openapi import operations


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_operation_but_the_raw_ones_documents_503_with_retry_after(client, app):
    doc = client.get("/api/v1/openapi.json").get_json()
    for path, op in operations(app):
        responses = doc["paths"][path][op.method.lower()]["responses"]
        if op.raw:  # answers outages its own way (the health check's "degraded" 503), if at all
            assert "Retry-After" not in responses.get("503", {}).get("headers", {}), path
            continue
        unavailable = responses["503"]
        assert "Retry-After" in unavailable["headers"], (path, op.method)
        # The codes raised as 503; not the class's default (service.unavailable), which nothing raises.
        # Not configured (service.unconfigured and its kin) is no outage: listed only where the operation names it.
        assert ("cannot be reached right now; retry after Retry-After seconds (codes: service.database_unavailable, "
                "service.redis_unavailable)") in unavailable["description"], (path, op.method)
        assert {error_index().status(c) for c in ("service.database_unavailable", "service.redis_unavailable")} == {503}
