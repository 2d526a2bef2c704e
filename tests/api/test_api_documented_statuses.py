"""The document lists every status an operation answers: replays' 200s, and 405s say which methods a URL takes."""

from __future__ import annotations

import logging

import pytest
from flask import Blueprint

from mallapp import create_app
from mallapp.api.core import REPLAY, Out, operation
from mallapp.api.openapi import operations

# The creates that answer 200 with the first result when retried with the same request id or key.
REPLAYING = {
    ("POST", "/api/v1/merchant/coupons/redeem"),
    ("POST", "/api/v1/me/points/redemptions"),
    ("POST", "/api/v1/merchant/purchases"),
    ("POST", "/api/v1/merchant/refunds"),
    ("POST", "/api/v1/merchant/deals/{deal_id}/announce"),
    ("POST", "/api/v1/merchant/stores/{store_id}/queue/call"),
    ("POST", "/api/v1/merchant/stores/{store_id}/queue/walk-ins"),
    ("POST", "/api/v1/me/reservations"),
    ("POST", "/api/v1/ops/members/{member_id}/points-adjustments"),
    ("POST", "/api/v1/ops/gifts/{pickup_code}/hand-over"),
    ("POST", "/api/v1/me/plates"),  # binding a plate I hold already

    ("POST", "/api/v1/merchant/parking/quota/purchases"),
    ("POST", "/api/v1/ops/merchants/{merchant_id}/parking-quota"),

    ("POST", "/api/v1/me/parking/payments"),
    ("POST", "/api/v1/parking/payments"),

    ("POST", "/api/v1/ops/merchants"),  # the same Idempotency-Key answers the merchant it created
}


def test_every_replaying_create_documents_its_200(client, app):
    doc = client.get("/api/v1/openapi.json").get_json()
    declared = {(op.method, path) for path, op in operations(app) if 200 in op.also}
    assert declared == REPLAYING
    for method, path in REPLAYING:
        responses = doc["paths"][path][method.lower()]["responses"]
        assert responses["201"]["content"] == responses["200"]["content"], path
        assert responses["200"]["description"] == REPLAY[200]
        assert responses["200"]["description"].startswith("a retry: the first result")


def test_every_declared_status_is_in_the_document(client, app):
    doc = client.get("/api/v1/openapi.json").get_json()
    for path, op in operations(app):
        documented = set(doc["paths"][path][op.method.lower()]["responses"])
        assert {str(s) for s in op.statuses} <= documented, (op.method, path)


def test_healthz_documents_its_503(client):
    responses = client.get("/api/v1/openapi.json").get_json()["paths"]["/healthz"]["get"]["responses"]
    assert responses["503"]["content"] == responses["200"]["content"]


def test_a_view_answering_a_status_its_operation_does_not_declare_is_a_500(rt, emulator, caplog):
    # The mechanism that keeps the document honest: a (body, status) pair outside status and also fails
    # loudly the first time any test reaches it, instead of answering something the document does not say.
    bp = Blueprint("undeclared", __name__)

    @operation(bp, "/undeclared/<int:n>", "POST", summary="test", response=Out, status=201, also=REPLAY)
    def undeclared(n: int):
        return Out(), n

    app = create_app(runtime=rt)
    app.register_blueprint(bp)
    client = app.test_client()
    assert client.post("/undeclared/201").status_code == 201
    assert client.post("/undeclared/200").status_code == 200
    caplog.set_level(logging.ERROR, logger="mallapp")
    response = client.post("/undeclared/202")
    assert response.status_code == 500 and response.get_json()["error"]["code"] == "internal"
    assert "answered 202, which its operation does not declare" in caplog.text


def test_a_405_says_which_methods_the_url_takes(client, member):
    response = client.put("/api/v1/me", headers=member["headers"])
    assert response.status_code == 405 and response.is_json
    assert response.get_json()["error"]["code"] == "http.method_not_allowed"
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert {"GET", "PATCH", "DELETE"} <= allowed and "PUT" not in allowed


@pytest.mark.parametrize("method", ["put", "delete"])
def test_a_405_allow_header_matches_the_routes(client, app, method):
    response = getattr(client, method)("/api/v1/merchant/purchases")
    assert response.status_code == 405
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule == "/api/v1/merchant/purchases":
            served |= rule.methods
    assert {m.strip() for m in response.headers["Allow"].split(",")} == served
