"""The contract: JSON errors for every kind of bad input, the OpenAPI document, health, request ids."""

from __future__ import annotations

import json
import logging
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from mallapp import create_app
from mallapp.api.error_index import error_index
from mallapp.runtime import Runtime

MEMBER_POSTS = ["/api/v1/checkins", "/api/v1/me/points/redemptions"]


def _error(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    error = response.get_json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    if code:
        assert error["code"] == code
    return error


@pytest.mark.parametrize("path", MEMBER_POSTS)
def test_malformed_json_is_a_400(client, member, path):
    response = client.post(path, data="{not json", content_type="application/json", headers=member["headers"])
    _error(response, 400, "request.malformed_json")


@pytest.mark.parametrize("path", MEMBER_POSTS)
def test_a_body_that_is_not_an_object_is_a_400(client, member, path):
    response = client.post(path, data="[1, 2]", content_type="application/json",
                           headers={**member["headers"], "Idempotency-Key": "k"})
    _error(response, 400, "request.invalid")


def test_a_form_body_is_a_400(client, member):
    response = client.post("/api/v1/checkins", data={"a": "b"}, headers=member["headers"])
    _error(response, 400, "request.not_json")


def test_an_oversized_body_is_a_413(client, member, rt):
    big = json.dumps({"nickname": "x" * rt.settings.max_body_bytes})
    response = client.patch("/api/v1/me", data=big, content_type="application/json", headers=member["headers"])
    _error(response, 413, "request.too_large")


def test_unknown_route_and_wrong_method_are_json(client):
    assert _error(client.get("/api/v1/nowhere"), 404, "http.not_found")["message"] == \
        "no such URL: GET /api/v1/nowhere"
    _error(client.put("/api/v1/me"), 405, "http.method_not_allowed")


@pytest.mark.parametrize(("path", "arg"), [("/api/v1/me/reservations/abc", "reservation_id"),
                                           ("/api/v1/merchant/deals/x", "deal_id")])
def test_a_non_numeric_id_is_a_json_404_naming_the_id(client, member, path, arg):
    error = _error(client.get(path, headers=member["headers"]), 404, "http.not_found")
    assert error["message"] == f"no such URL: {path} ({arg} must be a whole number)"


# The fuzz tests parsing, not the database: SQLite only.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner,
                                                                                      max_size=4), max_leaves=8),
       path=st.sampled_from(["/api/v1/checkins", "/api/v1/me/points/redemptions", "/api/v1/auth/wechat",
                             "/api/v1/me/phone"]))
def test_random_bodies_never_cause_a_server_error(client, member, path, body):
    response = client.post(path, json=body, headers={**member["headers"], "Idempotency-Key": "fuzz"})
    assert response.status_code < 500, response.get_data(as_text=True)
    assert response.is_json or response.status_code == 204


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from(["member_code", "amount_fen", "receipt_no", "occurred_at", "x"]),
                            st.none() | st.integers() | st.text(max_size=30) | st.floats(allow_nan=False), max_size=5))
def test_random_purchase_bodies_never_cause_a_server_error(client, merchant, body):
    response = client.post("/api/v1/merchant/purchases", json=body, headers=merchant["headers"])
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)


# --- OpenAPI ---------------------------------------------------------------------------------------

def test_openapi_document_is_valid_and_matches_the_routes(client, app):
    doc = client.get("/api/v1/openapi.json").get_json()
    validate(doc)
    documented = {(path, method.upper()) for path, item in doc["paths"].items() for method in item}
    served = set()
    for rule in app.url_map.iter_rules():
        # The consoles' pages are HTML for people; every datum they show comes from the documented API.
        if rule.endpoint == "static" or rule.rule.startswith("/console/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        served |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served


def test_documented_error_statuses_match_what_the_api_returns(client, member, merchant):
    # A sample of real failures: each code must come back with the status the document states.
    observed = {
        "checkin.already_today": (client.post("/api/v1/checkins", json={}, headers=member["headers"]) and
                                  client.post("/api/v1/checkins", json={}, headers=member["headers"])),
        "points.insufficient": client.post("/api/v1/me/points/redemptions", json={"gift_code": "coffee"},
                                           headers={**member["headers"], "Idempotency-Key": "a"}),
        "gift.not_found": client.post("/api/v1/me/points/redemptions", json={"gift_code": "nope"},
                                      headers={**member["headers"], "Idempotency-Key": "b"}),
        "purchase.not_found": client.get("/api/v1/merchant/purchases/none", headers=merchant["headers"]),
        "wechat.invalid_code": client.post("/api/v1/auth/wechat", json={"code": "bogus"}),
    }
    for code, response in observed.items():
        assert response.get_json()["error"]["code"] == code
        assert response.status_code == error_index().status(code), code


def test_api_page_is_served_from_local_assets(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html
    assert client.get("/api/v1/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/api/v1/docs/assets/swagger-ui.css").status_code == 200
    assert "openapi.json" in client.get("/api/v1/docs/init.js").get_data(as_text=True)


# --- health and logs -------------------------------------------------------------------------------

def test_healthz_reports_database_and_redis(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_healthz_is_503_when_redis_is_down(rt, emulator):
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    broken = Runtime(settings=rt.settings, engine=rt.engine, sessions=rt.sessions,
                     redis=Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2,
                                 retry=Retry(NoBackoff(), 0)), secret=rt.secret)
    response = create_app(runtime=broken).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["redis"].startswith("down")
    assert response.get_json()["database"] == "ok"


def test_request_id_is_echoed_or_made_and_logged_as_json(client, caplog):
    caplog.set_level(logging.INFO, logger="mallapp.access")
    response = client.get("/api/v1/ping", headers={"X-Request-Id": "till-42.abc"})
    assert response.headers["X-Request-Id"] == "till-42.abc"
    made = client.get("/api/v1/ping", headers={"X-Request-Id": "bad id with spaces"}).headers["X-Request-Id"]
    assert made and " " not in made
    from mallapp.logs import JsonFormatter

    record = next(r for r in caplog.records if r.name == "mallapp.access" and r.status == 200)
    line = json.loads(JsonFormatter().format(record))
    assert line["path"] == "/api/v1/ping" and line["status"] == 200 and "ms" in line


def test_unexpected_errors_are_json_500_and_logged(rt, emulator, caplog):
    app = create_app(runtime=rt)

    @app.get("/boom")
    def boom():
        raise RuntimeError("kaboom")

    response = app.test_client().get("/boom")
    _error(response, 500, "internal")
    assert "kaboom" not in response.get_data(as_text=True)
    assert "kaboom" in caplog.text
