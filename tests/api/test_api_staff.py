"""Merchant staff: the key adds managers and cashiers, they sign in, and each role reaches only its endpoints."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from factories import api_error
from sqlalchemy import update

from mallapp.domain import auth, merchants, venue_admin

M, OPS = "/api/v1/merchant", "/api/v1/ops"
PASSWORD = "a long enough passphrase"


pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _add(client, headers, username: str, role: str, password: str | None = PASSWORD):
    body = {"username": username, "role": role} | ({"password": password} if password else {})
    return client.post(f"{M}/staff", json=body, headers=headers)


def _sign_in(client, username: str, password: str = PASSWORD):
    return client.post(f"{M}/auth", json={"username": username, "password": password})


@pytest.fixture
def shop(rt, client, merchant) -> dict[str, Any]:
    """The conftest merchant with a store, a manager and a cashier, all signed in."""
    with rt.sessions.begin() as s:
        store = venue_admin.create_store(s, name="Starlight", floor=1, x=0, y=0, merchant_id=merchant["id"],
                                         now=rt.now()).id
    people = {}
    for username, role in (("star-manager", "manager"), ("star-cashier", "cashier")):
        added = _add(client, merchant["headers"], username, role)
        assert added.status_code == 201, added.get_json()
        token = _sign_in(client, username).get_json()["token"]
        people[role] = {"id": added.get_json()["id"], "token": token, "headers": _headers(token)}
    return {**merchant, "store": store, **people}


@pytest.fixture
def other(rt, client) -> dict[str, Any]:
    """A second merchant with a signed-in manager."""
    with rt.sessions.begin() as s:
        row, key = merchants.create(s, "Harbour Books", rt.now())
        merchant_id = row.id
    assert _add(client, _headers(key), "harbour-manager", "manager").status_code == 201
    token = _sign_in(client, "harbour-manager").get_json()["token"]
    return {"id": merchant_id, "headers": _headers(key), "manager": {"headers": _headers(token)}}


def _deal_body(clock, store_id: int) -> dict[str, Any]:
    return {"title": "Flat white for 5 yuan", "store_id": store_id,
            "starts_at": (clock.now - timedelta(hours=1)).isoformat(),
            "ends_at": (clock.now + timedelta(days=7)).isoformat(), "quota": 3,
            "benefit": {"kind": "amount_off", "amount_fen": 500}}


@pytest.fixture
def live_deal(client, shop, ops_admin, clock) -> int:
    """A deal the key wrote and submitted, approved by ops."""
    deal_id = client.post(f"{M}/deals", json=_deal_body(clock, shop["store"]), headers=shop["headers"]).get_json()["id"]
    assert client.post(f"{M}/deals/{deal_id}/submit", headers=shop["headers"]).status_code == 200
    assert client.post(f"{OPS}/deals/{deal_id}/approve", headers=ops_admin["headers"]).get_json()["status"] == "live"
    return deal_id


# --- accounts and sign-in --------------------------------------------------------------------------

def test_the_key_adds_a_cashier_with_a_generated_password_and_a_manager_and_both_sign_in(client, merchant, rt):
    cashier = _add(client, merchant["headers"], "till-1", "cashier", password=None)
    assert cashier.status_code == 201
    generated = cashier.get_json()["password"]
    assert len(generated) >= 20 and cashier.get_json()["role"] == "cashier" and cashier.get_json()["active"]
    manager = _add(client, merchant["headers"], "boss", "manager")
    assert manager.status_code == 201 and manager.get_json()["password"] is None

    for username, password, role in (("till-1", generated, "cashier"), ("boss", PASSWORD, "manager")):
        signed_in = _sign_in(client, username, password)
        assert signed_in.status_code == 200, signed_in.get_json()
        body = signed_in.get_json()
        assert body["token"].startswith("st_") and body["token_type"] == "Bearer"
        assert (body["role"], body["username"]) == (role, username)
        assert (body["merchant_id"], body["merchant_name"]) == (merchant["id"], "Starlight Coffee")
        assert body["expires_in"] == rt.settings.auth.token_ttl_s
        assert 0 < rt.redis.ttl(auth._token_key("staff", body["token"])) <= body["expires_in"]


def test_a_wrong_password_an_unknown_username_and_a_disabled_account_get_the_same_401(client, shop, rt):
    wrong = _sign_in(client, "star-cashier", "not the password at all")
    unknown = _sign_in(client, "nobody-here", PASSWORD)
    client.patch(f"{M}/staff/{shop['cashier']['id']}", json={"active": False}, headers=shop["headers"])
    disabled = _sign_in(client, "star-cashier")
    errors = [api_error(r, "merchant.bad_credentials") for r in (wrong, unknown, disabled)]
    assert errors[0] == errors[1] == errors[2]
    assert wrong.headers["WWW-Authenticate"] == "Bearer"


def test_an_unknown_username_is_still_hashed_so_timing_does_not_tell_it_apart(client, shop, monkeypatch):
    checked = []
    real = auth.check_password
    monkeypatch.setattr(auth, "check_password", lambda password, stored: checked.append(password) or
                        real(password, stored))
    api_error(_sign_in(client, "nobody-here", "guess-number-one"), "merchant.bad_credentials")
    assert checked == ["guess-number-one"]


@pytest.mark.parametrize("settings_overrides", [{"auth": {"sign_in_attempts": 3, "sign_in_window_s": 600}}])
def test_wrong_passwords_past_the_limit_lock_the_username_for_the_window_even_against_the_right_one(
        client, shop, rt, monkeypatch):
    api_error(_sign_in(client, "star-cashier", "wrong guess one"), "merchant.bad_credentials")
    assert _sign_in(client, "star-cashier").status_code == 200  # the right password clears the count
    for i in range(3):
        api_error(_sign_in(client, " Star-Cashier ", f"wrong guess {i}"), "merchant.bad_credentials")
    hashed = []
    with monkeypatch.context() as m:
        m.setattr(auth, "check_password", lambda password, stored: hashed.append(password) or True)
        locked = api_error(_sign_in(client, "star-cashier"), "auth.too_many_attempts")
    assert 590 <= locked["details"]["retry_after_s"] <= 600 and hashed == []  # refused without hashing
    assert _sign_in(client, "star-manager").status_code == 200  # other usernames are not affected
    auth.clear_sign_in_failures(rt.redis, "staff", rt.settings.auth, "star-cashier")  # as the window's end does
    assert _sign_in(client, "star-cashier").status_code == 200


def test_sign_out_revokes_the_staff_token_and_the_key_cannot_sign_out(client, shop):
    cashier = shop["cashier"]["headers"]
    assert client.get(f"{M}/purchases/R-1", headers=cashier).status_code == 404  # signed in: a real lookup
    assert client.delete(f"{M}/auth", headers=cashier).status_code == 204
    api_error(client.get(f"{M}/purchases/R-1", headers=cashier), "auth.invalid_token")
    assert client.get(f"{M}/staff", headers=shop["manager"]["headers"]).status_code == 200  # others stay in
    api_error(client.delete(f"{M}/auth", headers=shop["headers"]), "auth.wrong_caller")
    assert client.get(f"{M}/staff", headers=shop["headers"]).status_code == 200


def test_staff_tokens_cannot_call_member_or_ops_endpoints(client, shop):
    api_error(client.get("/api/v1/me", headers=shop["manager"]["headers"]), "auth.wrong_caller")
    api_error(client.get(f"{OPS}/zones", headers=shop["manager"]["headers"]), "auth.wrong_caller")
    api_error(client.get(f"{M}/purchases/R-1", headers=_headers("st_forged")), "auth.invalid_token")


# --- roles -----------------------------------------------------------------------------------------

def test_a_manager_writes_and_submits_a_deal_and_adds_staff(client, shop, clock):
    manager = shop["manager"]["headers"]
    created = client.post(f"{M}/deals", json=_deal_body(clock, shop["store"]), headers=manager)
    assert created.status_code == 201, created.get_json()
    deal_id = created.get_json()["id"]
    assert client.post(f"{M}/deals/{deal_id}/submit", headers=manager).get_json()["status"] == "pending_approval"
    assert [d["id"] for d in client.get(f"{M}/deals", headers=shop["headers"]).get_json()["deals"]] == [deal_id]
    assert _add(client, manager, "star-weekend", "cashier").status_code == 201


MANAGER_ONLY = [
    ("POST", "/deals", {}), ("GET", "/deals", None), ("GET", "/deals/{deal}", None),
    ("PATCH", "/deals/{deal}", {"title": "Mine now"}), ("POST", "/deals/{deal}/submit", None),
    ("POST", "/deals/{deal}/pause", None), ("POST", "/deals/{deal}/resume", None), ("POST", "/deals/{deal}/end", None),
    ("POST", "/deals/{deal}/announce", None), ("GET", "/staff", None),
    ("POST", "/staff", {"username": "sneaky", "role": "manager"}), ("PATCH", "/staff/{me}", {"role": "manager"}),
]


@pytest.mark.parametrize(("method", "path", "body"), MANAGER_ONLY)
def test_a_cashier_gets_403_role_required_on_deal_announce_and_staff_endpoints(client, shop, live_deal, method,
                                                                              path, body):
    url = M + path.format(deal=live_deal, me=shop["cashier"]["id"])
    response = client.open(url, method=method, json=body, headers=shop["cashier"]["headers"])
    api_error(response, "merchant.role_required")
    assert response.status_code == 403
    # Nothing moved: the deal is as it was and no one was added.
    deal = client.get(f"{M}/deals/{live_deal}", headers=shop["headers"]).get_json()
    assert (deal["status"], deal["title"]) == ("live", "Flat white for 5 yuan")
    assert len(client.get(f"{M}/staff", headers=shop["headers"]).get_json()["staff"]) == 2


def test_a_cashier_posts_a_purchase_looks_it_up_refunds_it_and_redeems_a_coupon(client, shop, card, member, clock,
                                                                               live_deal):
    cashier = shop["cashier"]["headers"]
    posted = client.post(f"{M}/purchases", headers=cashier, json={
        "member_code": card, "amount_fen": 25_880, "receipt_no": "R-1", "occurred_at": clock.now.isoformat()})
    assert posted.status_code == 201 and posted.get_json()["points_earned"] == 25
    assert client.get(f"{M}/purchases/R-1", headers=cashier).get_json()["amount_fen"] == 25_880
    refunded = client.post(f"{M}/refunds", headers=cashier,
                           json={"receipt_no": "R-1", "refund_no": "F-1", "amount_fen": 10_000})
    assert refunded.status_code == 201

    coupon = client.post(f"/api/v1/deals/{live_deal}/claim", headers=member["headers"]).get_json()
    redeemed = client.post(f"{M}/coupons/redeem", headers=cashier,
                           json={"code": coupon["code"], "store_id": shop["store"], "request_id": "till-1"})
    assert redeemed.status_code == 201 and redeemed.get_json()["deal_id"] == live_deal


def test_a_manager_announces_a_deal_through_the_separate_transaction_path(client, shop, live_deal):
    announced = client.post(f"{M}/deals/{live_deal}/announce", headers=shop["manager"]["headers"])
    assert announced.status_code == 201, announced.get_json()
    assert announced.get_json()["deal_id"] == live_deal
    again = client.post(f"{M}/deals/{live_deal}/announce", headers=shop["headers"])
    assert again.status_code == 200 and again.get_json()["replayed"] is True


def test_deactivating_a_cashier_refuses_their_live_token_at_once_and_reactivating_restores_it(client, shop):
    cashier, url = shop["cashier"]["headers"], f"{M}/staff/{shop['cashier']['id']}"
    assert client.get(f"{M}/purchases/R-1", headers=cashier).status_code == 404
    off = client.patch(url, json={"active": False}, headers=shop["manager"]["headers"])
    assert off.status_code == 200 and off.get_json()["active"] is False
    api_error(client.get(f"{M}/purchases/R-1", headers=cashier), "auth.invalid_token")
    assert client.patch(url, json={"active": True}, headers=shop["headers"]).get_json()["active"] is True
    assert client.get(f"{M}/purchases/R-1", headers=cashier).status_code == 404


def test_a_role_change_applies_to_the_next_request(client, shop):
    cashier, url = shop["cashier"]["headers"], f"{M}/staff/{shop['cashier']['id']}"
    api_error(client.get(f"{M}/deals", headers=cashier), "merchant.role_required")
    assert client.patch(url, json={"role": "manager"}, headers=shop["headers"]).get_json()["role"] == "manager"
    assert client.get(f"{M}/deals", headers=cashier).status_code == 200
    assert client.patch(url, json={"role": "cashier"}, headers=shop["manager"]["headers"]).status_code == 200
    api_error(client.get(f"{M}/deals", headers=cashier), "merchant.role_required")


def test_a_disabled_merchants_staff_are_refused(client, shop, rt):
    with rt.sessions.begin() as s:
        s.execute(update(merchants.Merchant).where(merchants.Merchant.id == shop["id"]).values(active=False))
    api_error(client.get(f"{M}/purchases/R-1", headers=shop["cashier"]["headers"]), "auth.invalid_token")
    api_error(client.get(f"{M}/staff", headers=shop["manager"]["headers"]), "auth.invalid_token")
    api_error(_sign_in(client, "star-manager"), "merchant.bad_credentials")


def test_a_manager_cannot_deactivate_or_demote_themself_but_the_key_can(client, shop):
    manager, url = shop["manager"]["headers"], f"{M}/staff/{shop['manager']['id']}"
    api_error(client.patch(url, json={"active": False}, headers=manager), "staff.self_lockout")
    api_error(client.patch(url, json={"role": "cashier"}, headers=manager), "staff.self_lockout")
    assert client.patch(url, json={"role": "manager", "active": True}, headers=manager).status_code == 200
    assert client.patch(url, json={"active": False}, headers=shop["headers"]).get_json()["active"] is False
    api_error(client.get(f"{M}/staff", headers=manager), "auth.invalid_token")


# --- merchants are apart ---------------------------------------------------------------------------

def test_another_merchants_staff_see_none_of_this_merchants_deals_or_staff(client, shop, other, live_deal):
    theirs = other["manager"]["headers"]
    api_error(client.get(f"{M}/deals/{live_deal}", headers=theirs), "deal.not_found")
    api_error(client.post(f"{M}/deals/{live_deal}/pause", headers=theirs), "deal.not_found")
    assert client.get(f"{M}/deals", headers=theirs).get_json()["deals"] == []
    api_error(client.patch(f"{M}/staff/{shop['cashier']['id']}", json={"active": False}, headers=theirs),
              "staff.not_found")
    api_error(client.patch(f"{M}/staff/{shop['cashier']['id']}", json={"active": False}, headers=other["headers"]),
              "staff.not_found")
    assert [s["username"] for s in client.get(f"{M}/staff", headers=theirs).get_json()["staff"]] == ["harbour-manager"]
    assert client.get(f"{M}/purchases/R-1", headers=shop["cashier"]["headers"]).status_code == 404  # still active


def test_a_taken_username_is_409_even_for_another_merchant(client, shop, other):
    api_error(_add(client, shop["headers"], "star-cashier", "cashier"), "staff.username_taken")
    api_error(_add(client, other["headers"], "star-cashier", "manager"), "staff.username_taken")


def test_listing_staff_never_shows_a_password_or_its_hash(client, shop):
    listed = client.get(f"{M}/staff", headers=shop["manager"]["headers"])
    assert [(s["username"], s["role"], s["active"]) for s in listed.get_json()["staff"]] == [
        ("star-manager", "manager", True), ("star-cashier", "cashier", True)]
    text = listed.get_data(as_text=True)
    assert PASSWORD not in text and "scrypt" not in text and "password" not in text


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/staff", {"username": "shorty", "role": "cashier", "password": "too-short"}),
    ("POST", "/staff", {"username": "boss", "role": "owner"}),
    ("POST", "/staff", {"username": "   ", "role": "cashier"}),
    ("POST", "/staff", {"username": "x" * 41, "role": "cashier"}),
    ("POST", "/staff", {"username": "tab\there", "role": "cashier"}),
    ("POST", "/staff", {"username": "boss", "role": "manager", "is_owner": True}),
    ("POST", "/staff", {"role": "manager"}),
    ("PATCH", "/staff/{me}", {}),
    ("PATCH", "/staff/{me}", {"role": "owner"}),
    ("PATCH", "/staff/{me}", {"active": "no"}),
    ("POST", "/auth", {"username": "star-cashier"}),
    ("POST", "/auth", {"username": "star-cashier", "password": 12345678901234}),
])
def test_bad_staff_bodies_are_400_json_errors(client, shop, method, path, body):
    url = M + path.format(me=shop["cashier"]["id"])
    response = client.open(url, method=method, json=body, headers=shop["headers"])
    assert response.status_code == 400
    api_error(response, "request.invalid")


def test_an_unknown_staff_id_is_404(client, shop):
    api_error(client.patch(f"{M}/staff/4242", json={"active": False}, headers=shop["headers"]), "staff.not_found")
