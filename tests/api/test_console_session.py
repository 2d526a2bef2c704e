"""The consoles' session: sign-in sets an HttpOnly cookie the API accepts, changes need the CSRF token."""

from __future__ import annotations

import pytest

from mallapp.api.core import CSRF_HEADER, OPS_COOKIE, STAFF_COOKIE
from mallapp.domain import auth, staff
from tests.conftest import OPS_PASSWORD
from tests.factories import api_error

# Sessions live in Redis whatever the database: SQLite alone.
pytestmark = [pytest.mark.usefixtures("cheap_password_hashing"),
              pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]
PASSWORD = "a console password"


@pytest.fixture
def manager(rt, merchant):
    with rt.sessions.begin() as session:
        staff.create(session, merchant["id"], "mgr", "manager", PASSWORD, rt.now())
    return "mgr"


def _sign_in(client, audience: str, username: str, password: str):
    return client.post("/console/session", json={"audience": audience, "username": username, "password": password})


def _cookie(response, name: str) -> str:
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(name + "="))
    return header


def test_sign_in_sets_an_httponly_strict_cookie_holding_a_working_token(client, manager):
    response = _sign_in(client, "staff", manager, PASSWORD)
    assert response.status_code == 200 and response.get_json() == {"next": "/console/staff/"}
    header = _cookie(response, STAFF_COOKIE)
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/" in header
    assert "Secure" not in header  # plain HTTP here; over TLS the cookie is Secure
    assert client.get("/api/v1/merchant/staff").status_code == 200


def test_the_cookie_is_secure_over_tls(client, manager):
    response = client.post("/console/session", json={"audience": "staff", "username": manager, "password": PASSWORD},
                           base_url="https://mall.example")
    assert "Secure" in _cookie(response, STAFF_COOKIE)


def test_changes_through_the_cookie_need_the_sessions_csrf_token(client, rt, manager, merchant):
    _sign_in(client, "staff", manager, PASSWORD)
    body = {"username": "new-cashier", "role": "cashier"}
    refused = client.post("/api/v1/merchant/staff", json=body)
    api_error(refused, "auth.csrf")
    assert refused.status_code == 403
    api_error(client.post("/api/v1/merchant/staff", json=body, headers={CSRF_HEADER: "0" * 40}), "auth.csrf")
    token = client.get_cookie(STAFF_COOKIE).value
    ok = client.post("/api/v1/merchant/staff", json=body, headers={CSRF_HEADER: auth.csrf_token(rt.secret, token)})
    assert ok.status_code == 201
    with rt.sessions.begin() as session:
        assert sorted(s.username for s in staff.list_own(session, merchant["id"])) == ["mgr", "new-cashier"]


def test_a_csrf_token_of_another_session_is_refused(client, rt, manager):
    _sign_in(client, "staff", manager, PASSWORD)
    other = auth.csrf_token(rt.secret, "st_someone-else")
    api_error(client.post("/api/v1/merchant/staff", json={"username": "x-1", "role": "cashier"},
                          headers={CSRF_HEADER: other}), "auth.csrf")


def test_an_authorization_header_wins_over_the_cookie(client, manager, merchant):
    _sign_in(client, "staff", manager, PASSWORD)
    # An integration's key works as before in a browser that also has a console session, without CSRF.
    response = client.post("/api/v1/merchant/staff", json={"username": "by-key", "role": "cashier"},
                           headers=merchant["headers"])
    assert response.status_code == 201


def test_a_staff_cookie_does_not_open_ops_or_member_endpoints(client, manager):
    _sign_in(client, "staff", manager, PASSWORD)
    api_error(client.get("/api/v1/ops/zones"), "auth.required")
    api_error(client.get("/api/v1/me"), "auth.required")


def test_ops_sign_in_and_roles_are_the_apis(client, ops_viewer):
    response = _sign_in(client, "ops", ops_viewer["username"], OPS_PASSWORD)
    assert OPS_COOKIE in response.headers.get("Set-Cookie", "")
    assert client.get("/api/v1/ops/zones").status_code == 200
    # A viewer's cookie is a viewer: the API refuses an admin's change; staff pages want a staff session.
    api_error(client.post("/api/v1/ops/zones", json={}), "auth.csrf")
    assert client.get("/console/staff/").status_code == 302


def test_wrong_passwords_lock_out_as_the_api_does(client, manager, settings):
    for _ in range(settings.auth.sign_in_attempts):
        api_error(_sign_in(client, "staff", manager, "wrong"), "merchant.bad_credentials")
    locked = _sign_in(client, "staff", manager, PASSWORD)
    api_error(locked, "auth.too_many_attempts")
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    # The API's own sign-in counts the same attempts.
    api_error(client.post("/api/v1/merchant/auth", json={"username": manager, "password": PASSWORD}),
              "auth.too_many_attempts")


@pytest.mark.parametrize("body", [{}, {"audience": "member", "username": "a", "password": "b"},
                                  {"audience": "ops", "username": "", "password": "b"}, "not an object"])
def test_bad_sign_in_bodies_are_400_naming_the_field(client, body):
    response = client.post("/console/session", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "request.invalid"


def test_sign_in_wants_json_not_a_cross_site_form(client, manager):
    response = client.post("/console/session", data={"audience": "staff", "username": manager, "password": PASSWORD})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "request.not_json"


def test_sign_out_revokes_only_with_the_csrf_token(client, rt, manager):
    _sign_in(client, "staff", manager, PASSWORD)
    token = client.get_cookie(STAFF_COOKIE).value
    client.post("/console/sign-out")  # no token: a cross-site sign-out does nothing
    assert client.get("/api/v1/merchant/staff", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    out = client.post("/console/sign-out", data={"csrf": auth.csrf_token(rt.secret, token)})
    assert out.status_code == 302 and client.get_cookie(STAFF_COOKIE) is None
    api_error(client.get("/api/v1/merchant/staff", headers={"Authorization": f"Bearer {token}"}), "auth.invalid_token")


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/api/v1/me", "/console\\x"])
def test_the_language_switch_only_returns_to_a_console_page(client, target):
    response = client.get("/console/lang/en", query_string={"next": target})
    assert response.status_code == 302 and response.headers["Location"] == "/console/"
    assert "mall_lang=en" in response.headers["Set-Cookie"]
    assert client.get("/console/lang/fr").status_code == 404
