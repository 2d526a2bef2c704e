"""Merchants and ops users managed by ops admins through the API (what the ops console's pages call)."""

from __future__ import annotations

import pytest

from mallapp.domain import ops

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

OPS = "/api/v1/ops"
M = "/api/v1/merchant"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_admin_creates_a_merchant_whose_key_works_and_is_answered_once(client, ops_admin):
    headers = {**ops_admin["headers"], "Idempotency-Key": "onboard-tea"}
    created = client.post(f"{OPS}/merchants", json={"name": " Tea House "}, headers=headers)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["name"] == "Tea House" and body["active"] and not body["auto_approve_deals"]
    assert body["api_key"].startswith("mk_") and body["key_hint"] == body["api_key"][:8]
    assert client.get(f"{M}/deals", headers=_bearer(body["api_key"])).status_code == 200
    # The retry finds the same merchant and cannot show the key again: it was never stored.
    again = client.post(f"{OPS}/merchants", json={"name": "Tea House"}, headers=headers)
    assert again.status_code == 200
    assert again.get_json()["id"] == body["id"] and again.get_json()["replayed"] and again.get_json()["api_key"] is None
    listed = client.get(f"{OPS}/merchants", headers=ops_admin["headers"]).get_json()["merchants"]
    assert [m["name"] for m in listed] == ["Tea House"]
    assert "api_key" not in listed[0]


def test_creating_a_merchant_needs_an_idempotency_key(client, ops_admin):
    answer = client.post(f"{OPS}/merchants", json={"name": "Tea House"}, headers=ops_admin["headers"])
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"] == "request.idempotency_key_required"


def test_rotating_the_key_stops_the_old_one_at_once(client, ops_admin, merchant):
    rotated = client.post(f"{OPS}/merchants/{merchant['id']}/key", headers=ops_admin["headers"])
    assert rotated.status_code == 200
    new_key = rotated.get_json()["api_key"]
    assert client.get(f"{M}/deals", headers=merchant["headers"]).status_code == 401
    assert client.get(f"{M}/deals", headers=_bearer(new_key)).status_code == 200


def test_a_disabled_merchant_is_refused_until_enabled_again(client, ops_admin, merchant):
    url = f"{OPS}/merchants/{merchant['id']}"
    off = client.patch(url, json={"active": False}, headers=ops_admin["headers"])
    assert off.status_code == 200 and off.get_json()["active"] is False
    assert client.get(f"{M}/deals", headers=merchant["headers"]).status_code == 401
    on = client.patch(url, json={"active": True, "auto_approve_deals": True}, headers=ops_admin["headers"])
    assert on.get_json()["active"] and on.get_json()["auto_approve_deals"]
    assert client.get(f"{M}/deals", headers=merchant["headers"]).status_code == 200


def test_a_patch_with_nothing_to_change_is_refused(client, ops_admin, merchant):
    answer = client.patch(f"{OPS}/merchants/{merchant['id']}", json={}, headers=ops_admin["headers"])
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "request.invalid"
    answer = client.patch(f"{OPS}/users/{ops_admin['id']}", json={}, headers=ops_admin["headers"])
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "request.invalid"


def test_an_admin_creates_an_ops_user_with_a_generated_password_shown_once(client, ops_admin):
    created = client.post(f"{OPS}/users", json={"username": "desk-li", "role": "desk"}, headers=ops_admin["headers"])
    assert created.status_code == 201, created.get_json()
    password = created.get_json()["password"]
    assert len(password) >= 12 and created.get_json()["role"] == "desk"
    signed_in = client.post(f"{OPS}/auth", json={"username": "desk-li", "password": password})
    assert signed_in.status_code == 200 and signed_in.get_json()["role"] == "desk"
    typed = client.post(f"{OPS}/users", json={"username": "viewer-wu", "role": "viewer",
                                              "password": "a typed passphrase"}, headers=ops_admin["headers"])
    assert typed.status_code == 201 and typed.get_json()["password"] is None
    users = client.get(f"{OPS}/users", headers=ops_admin["headers"]).get_json()["users"]
    assert [(u["username"], u["role"], u["active"]) for u in users] == [
        ("ops-admin", "admin", True), ("desk-li", "desk", True), ("viewer-wu", "viewer", True)]
    assert all("password" not in u for u in users)


def test_a_new_role_and_a_deactivation_apply_to_open_sessions_at_once(client, ops_admin, ops_viewer):
    url = f"{OPS}/users/{ops_viewer['id']}"
    assert client.get(f"{OPS}/users", headers=ops_viewer["headers"]).status_code == 403
    assert client.patch(url, json={"role": "admin"}, headers=ops_admin["headers"]).get_json()["role"] == "admin"
    assert client.get(f"{OPS}/users", headers=ops_viewer["headers"]).status_code == 200  # the same token
    assert client.patch(url, json={"active": False}, headers=ops_admin["headers"]).get_json()["active"] is False
    refused = client.get(f"{OPS}/zones", headers=ops_viewer["headers"])
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "auth.invalid_token"
    signed_in = client.post(f"{OPS}/auth", json={"username": "ops-viewer", "password": ops_viewer["password"]})
    assert signed_in.status_code == 401
    assert client.patch(url, json={"active": True}, headers=ops_admin["headers"]).get_json()["active"] is True
    assert client.post(f"{OPS}/auth", json={"username": "ops-viewer",
                                            "password": ops_viewer["password"]}).status_code == 200


def test_the_last_active_admin_cannot_demote_or_deactivate_themselves(client, ops_admin, ops_marketing):
    url = f"{OPS}/users/{ops_admin['id']}"
    for change in ({"role": "desk"}, {"active": False}):
        refused = client.patch(url, json=change, headers=ops_admin["headers"])
        assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "ops.last_admin"
    # With a second admin, the first may step down.
    promoted = client.patch(f"{OPS}/users/{ops_marketing['id']}", json={"role": "admin"}, headers=ops_admin["headers"])
    assert promoted.status_code == 200
    assert client.patch(url, json={"role": "viewer"}, headers=ops_admin["headers"]).status_code == 200
    last = client.patch(f"{OPS}/users/{ops_marketing['id']}", json={"active": False}, headers=ops_marketing["headers"])
    assert last.status_code == 409 and last.get_json()["error"]["code"] == "ops.last_admin"


def test_an_inactive_admin_does_not_count_as_the_admin_left(rt, ops_admin):
    with rt.sessions.begin() as s:
        other = ops.create_user(s, "old-admin", "admin", "a long passphrase", rt.now())
        ops.change_user(s, other.id, active=False)
    with rt.sessions.begin() as s, pytest.raises(Exception) as refused:
        ops.change_user(s, ops_admin["id"], role="viewer")
    assert getattr(refused.value, "code", None) == "ops.last_admin"
