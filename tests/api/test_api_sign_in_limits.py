"""The wrong-password limit counts per username and source address, so a stranger cannot lock the real user out;
a far higher limit counts every address; a manager unlocks a cashier and an ops admin an ops user."""

from __future__ import annotations

from typing import Any

import pytest
from factories import api_error

from mallapp.domain import merchants

M, OPS = "/api/v1/merchant", "/api/v1/ops"
PASSWORD = "a long enough passphrase"
STRANGER, SHOP_TILL, ELSEWHERE = "203.0.113.7", "10.1.2.3", "198.51.100.9"
LIMITS = {"auth": {"sign_in_attempts": 3, "sign_in_window_s": 600, "sign_in_attempts_per_username": 6}}

pytestmark = [pytest.mark.usefixtures("cheap_password_hashing"),
              pytest.mark.parametrize("settings_overrides", [LIMITS])]


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _staff_sign_in(client, username: str, password: str = PASSWORD, address: str = SHOP_TILL):
    return client.post(f"{M}/auth", json={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


@pytest.fixture
def team(client, merchant) -> dict[str, Any]:
    """The conftest merchant's manager and cashier (ids), and the manager's headers."""
    people: dict[str, Any] = {}
    for username, role in (("limit-manager", "manager"), ("limit-cashier", "cashier")):
        added = client.post(f"{M}/staff", json={"username": username, "role": role, "password": PASSWORD},
                            headers=merchant["headers"])
        assert added.status_code == 201, added.get_json()
        people[role] = added.get_json()["id"]
    people["manager_headers"] = _headers(_staff_sign_in(client, "limit-manager").get_json()["token"])
    return people


def _wrong(client, username: str, address: str, times: int) -> None:
    for i in range(times):
        api_error(_staff_sign_in(client, username, f"wrong guess {i}", address), "merchant.bad_credentials")


def test_a_strangers_wrong_passwords_lock_only_the_stranger_s_address(client, team):
    _wrong(client, "limit-cashier", STRANGER, 3)
    api_error(_staff_sign_in(client, "limit-cashier", address=STRANGER), "auth.too_many_attempts")
    assert _staff_sign_in(client, "limit-cashier", address=SHOP_TILL).status_code == 200  # the real cashier
    # The right password at the till cleared the till's count only: the stranger stays locked out.
    api_error(_staff_sign_in(client, "limit-cashier", address=STRANGER), "auth.too_many_attempts")


def test_wrong_passwords_from_many_addresses_meet_the_higher_per_username_limit(client, team):
    for n in range(3):
        _wrong(client, "limit-cashier", f"192.0.2.{n}", 2)  # 6 in all, never 3 from one address
    locked = api_error(_staff_sign_in(client, "limit-cashier", address=ELSEWHERE), "auth.too_many_attempts")
    assert 590 <= locked["details"]["retry_after_s"] <= 600


def test_a_manager_unlocks_a_cashier_from_every_address(client, team, merchant):
    _wrong(client, "limit-cashier", SHOP_TILL, 3)
    for n in range(3):
        _wrong(client, "limit-cashier", f"192.0.2.{n}", 1)
    api_error(_staff_sign_in(client, "limit-cashier", address=SHOP_TILL), "auth.too_many_attempts")
    api_error(_staff_sign_in(client, "limit-cashier", address=ELSEWHERE), "auth.too_many_attempts")
    unlocked = client.post(f"{M}/staff/{team['cashier']}/unlock", headers=team["manager_headers"])
    assert unlocked.status_code == 204, unlocked.get_json()
    assert _staff_sign_in(client, "limit-cashier", address=SHOP_TILL).status_code == 200
    assert _staff_sign_in(client, "limit-cashier", address=ELSEWHERE).status_code == 200
    # Counting starts again from nothing after an unlock, and the key may unlock too.
    _wrong(client, "limit-cashier", SHOP_TILL, 3)
    api_error(_staff_sign_in(client, "limit-cashier", address=SHOP_TILL), "auth.too_many_attempts")
    assert client.post(f"{M}/staff/{team['cashier']}/unlock", headers=merchant["headers"]).status_code == 204
    assert _staff_sign_in(client, "limit-cashier", address=SHOP_TILL).status_code == 200


def test_a_cashier_cannot_unlock_and_an_unknown_id_is_not_found(client, team):
    cashier = _headers(_staff_sign_in(client, "limit-cashier").get_json()["token"])
    api_error(client.post(f"{M}/staff/{team['cashier']}/unlock", headers=cashier), "merchant.role_required")
    api_error(client.post(f"{M}/staff/999999/unlock", headers=team["manager_headers"]), "staff.not_found")


def test_another_merchants_staff_member_is_not_found(client, rt, team):
    with rt.sessions.begin() as s:
        _, key = merchants.create(s, "Harbour Books", rt.now())
    api_error(client.post(f"{M}/staff/{team['cashier']}/unlock", headers=_headers(key)), "staff.not_found")


def test_an_ops_admin_unlocks_an_ops_user(client, ops_admin, ops_viewer):
    for i in range(3):
        api_error(client.post(f"{OPS}/auth", json={"username": "ops-viewer", "password": f"wrong {i}"}),
                  "ops.bad_credentials")
    api_error(client.post(f"{OPS}/auth", json={"username": "ops-viewer", "password": ops_viewer["password"]}),
              "auth.too_many_attempts")
    # From another address the viewer still signs in.
    assert client.post(f"{OPS}/auth", json={"username": "ops-viewer", "password": ops_viewer["password"]},
                       environ_base={"REMOTE_ADDR": ELSEWHERE}).status_code == 200
    api_error(client.post(f"{OPS}/users/{ops_viewer['id']}/unlock", headers=ops_viewer["headers"]),
              "ops.admin_required")
    assert client.post(f"{OPS}/users/{ops_viewer['id']}/unlock", headers=ops_admin["headers"]).status_code == 204
    assert client.post(f"{OPS}/auth", json={"username": "ops-viewer",
                                            "password": ops_viewer["password"]}).status_code == 200
