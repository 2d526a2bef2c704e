"""Mall-wide offers (redeemed at any participating store) and minimum spend (满减) checked by the till."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from mallapp.domain import merchants, venue_admin

OPS, M = "/api/v1/ops", "/api/v1/merchant"
pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def _merchant_with_store(rt, name: str, store: str, x: float) -> dict[str, Any]:
    with rt.sessions.begin() as s:
        row, key = merchants.create(s, name, rt.now())
        store_id = venue_admin.create_store(s, name=store, floor=1, x=x, y=0, merchant_id=row.id, now=rt.now()).id
    return {"id": row.id, "store": store_id, "headers": {"Authorization": f"Bearer {key}"}}


@pytest.fixture
def mall(rt) -> dict[str, dict[str, Any]]:
    """The house merchant's service desk (the demo's house store) and three shops: noodles, books, shoes."""
    return {"house": _merchant_with_store(rt, "Mall Operations", rt.settings.new_member_pack.house_store, 0),
            "noodles": _merchant_with_store(rt, "Noodle House", "Noodles", 10),
            "books": _merchant_with_store(rt, "Harbour Books", "Books", 20),
            "shoes": _merchant_with_store(rt, "Step Shoes", "Shoes", 30)}


def _mall_deal(client, clock, headers, mall, **over: Any) -> dict[str, Any]:
    body = {"title": "Spring in the mall: 20 off 100", "store_id": mall["house"]["store"],
            "participating_store_ids": [mall["noodles"]["store"], mall["books"]["store"]],
            "starts_at": (clock.now - timedelta(hours=1)).isoformat(),
            "ends_at": (clock.now + timedelta(days=7)).isoformat(), "quota": 100, "per_member_limit": 5,
            "benefit": {"kind": "amount_off", "amount_fen": 2000}, "min_spend_fen": 10_000, **over}
    created = client.post(f"{OPS}/deals", json=body, headers=headers)
    assert created.status_code == 201, created.get_json()
    return created.get_json()


def _coupon(client, member, deal_id: int) -> str:
    claimed = client.post(f"/api/v1/deals/{deal_id}/claim", headers=member["headers"])
    assert claimed.status_code == 201, claimed.get_json()
    return claimed.get_json()["code"]


def _redeem(client, shop, code: str, request_id: str = "till-1", store: int | None = None, **body: Any):
    return client.post(f"{M}/coupons/redeem", headers=shop["headers"], json={
        "code": code, "store_id": store or shop["store"], "request_id": request_id, **body})


def _error(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code
    return error


def test_ops_publish_a_mall_wide_deal_live_at_once_as_the_malls_own(client, clock, ops_marketing, mall):
    deal = _mall_deal(client, clock, ops_marketing["headers"], mall)
    assert (deal["status"], deal["scope"], deal["merchant_id"]) == ("live", "mall", mall["house"]["id"])
    assert deal["participating_store_ids"] == sorted([mall["noodles"]["store"], mall["books"]["store"]])
    assert deal["min_spend_fen"] == 10_000


def test_a_mall_wide_coupon_is_redeemed_at_two_participating_stores_and_refused_elsewhere(
        client, clock, ops_marketing, mall, member):
    deal = _mall_deal(client, clock, ops_marketing["headers"], mall)
    first, second, third = (_coupon(client, member, deal["id"]) for _ in range(3))
    at_noodles = _redeem(client, mall["noodles"], first, amount_fen=12_000)
    assert at_noodles.status_code == 201, at_noodles.get_json()
    assert (at_noodles.get_json()["store_id"], at_noodles.get_json()["discount_fen"]) == (mall["noodles"]["store"],
                                                                                          2000)
    at_books = _redeem(client, mall["books"], second, amount_fen=10_000)
    assert at_books.status_code == 201 and at_books.get_json()["store_id"] == mall["books"]["store"]
    error = _error(_redeem(client, mall["shoes"], third, amount_fen=50_000), 422, "coupon.store_not_participating")
    assert error["details"]["participating_store_ids"] == deal["participating_store_ids"]
    # A till names a store its merchant does not run: refused, whatever the coupon.
    _error(_redeem(client, mall["shoes"], third, store=mall["books"]["store"], amount_fen=50_000), 403,
           "coupon.store_not_yours")
    # The issuing desk's own till redeems it too.
    assert _redeem(client, mall["house"], third, amount_fen=10_000).status_code == 201
    wallet = client.get("/api/v1/me/coupons", headers=member["headers"]).get_json()["coupons"]
    assert [c["status"] for c in wallet if c["deal"]["id"] == deal["id"]] == ["used"] * 3
    ops_deals = client.get(f"{OPS}/deals", headers=ops_marketing["headers"]).get_json()["deals"]
    assert next(d for d in ops_deals if d["id"] == deal["id"])["figures"]["redeemed"] == 3


def test_a_mall_wide_deal_without_a_store_list_is_redeemed_at_every_store(client, clock, ops_admin, mall, member):
    deal = _mall_deal(client, clock, ops_admin["headers"], mall, participating_store_ids=None, min_spend_fen=None)
    assert deal["participating_store_ids"] is None
    for shop in ("noodles", "books", "shoes"):
        assert _redeem(client, mall[shop], _coupon(client, member, deal["id"])).status_code == 201


def test_a_store_coupon_stays_at_its_store(client, clock, mall, member, ops_admin):
    with_store = {"title": "Noodles 5 off", "store_id": mall["noodles"]["store"],
                  "starts_at": (clock.now - timedelta(hours=1)).isoformat(),
                  "ends_at": (clock.now + timedelta(days=7)).isoformat(), "quota": 5,
                  "benefit": {"kind": "amount_off", "amount_fen": 500}}
    deal_id = client.post(f"{M}/deals", json=with_store, headers=mall["noodles"]["headers"]).get_json()["id"]
    client.post(f"{M}/deals/{deal_id}/submit", headers=mall["noodles"]["headers"])
    client.post(f"{OPS}/deals/{deal_id}/approve", headers=ops_admin["headers"])
    code = _coupon(client, member, deal_id)
    _error(_redeem(client, mall["books"], code), 404, "coupon.not_found")  # another merchant's: not even found


def test_the_new_member_pack_is_mall_wide_and_redeemed_at_any_store(client, mall, members_api):
    member = members_api.sign_in(openid="o-newcomer")
    wallet = client.get("/api/v1/me/coupons", headers=member["headers"]).get_json()["coupons"]
    assert len(wallet) == 4 and {c["deal"]["scope"] for c in wallet} == {"mall"}
    bonus = next(c for c in wallet if c["deal"]["benefit"]["kind"] == "bonus_points")
    done = _redeem(client, mall["shoes"], bonus["code"])
    assert done.status_code == 201 and done.get_json()["bonus_points"] == 50
    welcome = next(c for c in wallet if c["deal"]["benefit"]["kind"] == "amount_off")
    assert welcome["deal"]["min_spend_fen"] == 5000  # config/demo.toml: 10 yuan off 50
    _error(_redeem(client, mall["books"], welcome["code"], request_id="t-2", amount_fen=4999), 422,
           "coupon.below_min_spend")
    assert _redeem(client, mall["books"], welcome["code"], request_id="t-2", amount_fen=5000).status_code == 201


@pytest.mark.parametrize("settings_overrides", [{"new_member_pack": {"coupons": [
    {"key": "welcome-x", "title": "Welcome", "benefit": {"kind": "percent_off", "percent": 10},
     "participating_stores": ["Noodles", "No Such Store"]}]}}], indirect=False)
def test_a_pack_coupon_names_its_participating_stores(client, mall, members_api):
    member = members_api.sign_in(openid="o-newcomer")
    coupon = client.get("/api/v1/me/coupons", headers=member["headers"]).get_json()["coupons"][0]
    assert coupon["deal"]["participating_store_ids"] == [mall["noodles"]["store"]]
    _error(_redeem(client, mall["books"], coupon["code"]), 422, "coupon.store_not_participating")
    assert _redeem(client, mall["noodles"], coupon["code"], amount_fen=999).get_json()["discount_fen"] == 99


# --- minimum spend ---------------------------------------------------------------------------------

def test_a_minimum_spend_needs_the_amount_and_refuses_less(client, clock, ops_marketing, mall, member):
    deal = _mall_deal(client, clock, ops_marketing["headers"], mall)
    code = _coupon(client, member, deal["id"])
    _error(_redeem(client, mall["noodles"], code), 422, "coupon.amount_required")
    error = _error(_redeem(client, mall["noodles"], code, amount_fen=9_999), 422, "coupon.below_min_spend")
    assert error["details"] == {"min_spend_fen": 10_000, "amount_fen": 9_999}
    done = _redeem(client, mall["noodles"], code, amount_fen=10_000)
    assert done.status_code == 201
    assert (done.get_json()["amount_fen"], done.get_json()["discount_fen"]) == (10_000, 2000)
    retry = _redeem(client, mall["noodles"], code, amount_fen=10_000)
    assert retry.status_code == 200 and retry.get_json()["discount_fen"] == 2000


def test_a_merchant_deal_carries_a_minimum_spend_and_the_discount_never_exceeds_the_amount(
        client, clock, mall, member, ops_admin):
    shop = mall["noodles"]
    body = {"title": "30 off", "store_id": shop["store"], "starts_at": (clock.now - timedelta(hours=1)).isoformat(),
            "ends_at": (clock.now + timedelta(days=7)).isoformat(), "quota": 5, "per_member_limit": 2,
            "benefit": {"kind": "amount_off", "amount_fen": 3000}}
    created = client.post(f"{M}/deals", json={**body, "min_spend_fen": 2000}, headers=shop["headers"])
    assert created.status_code == 201 and created.get_json()["min_spend_fen"] == 2000
    deal_id = created.get_json()["id"]
    client.post(f"{M}/deals/{deal_id}/submit", headers=shop["headers"])
    client.post(f"{OPS}/deals/{deal_id}/approve", headers=ops_admin["headers"])
    done = _redeem(client, shop, _coupon(client, member, deal_id), amount_fen=2500)
    assert done.get_json()["discount_fen"] == 2500  # 30 yuan off a 25-yuan purchase takes 25
    # Once members hold coupons the minimum is a promise: it cannot change.
    locked = client.patch(f"{M}/deals/{deal_id}", json={"min_spend_fen": None}, headers=shop["headers"])
    _error(locked, 409, "deal.terms_locked")


def test_a_deal_without_a_minimum_redeems_without_an_amount_as_before(client, clock, ops_marketing, mall, member):
    deal = _mall_deal(client, clock, ops_marketing["headers"], mall, min_spend_fen=None)
    done = _redeem(client, mall["noodles"], _coupon(client, member, deal["id"]))
    assert done.status_code == 201
    assert (done.get_json()["amount_fen"], done.get_json()["discount_fen"]) == (None, None)


@pytest.mark.parametrize("role", ["desk", "viewer"])
def test_only_admin_and_marketing_publish_mall_wide_deals(client, clock, request, mall, role):
    body = {"title": "x", "store_id": mall["house"]["store"], "starts_at": clock.now.isoformat(),
            "ends_at": (clock.now + timedelta(days=1)).isoformat(), "quota": 1,
            "benefit": {"kind": "amount_off", "amount_fen": 100}}
    refused = client.post(f"{OPS}/deals", json=body, headers=request.getfixturevalue(f"ops_{role}")["headers"])
    _error(refused, 403, "ops.marketing_required")


def test_a_mall_wide_deal_names_only_real_stores(client, clock, ops_marketing, mall):
    body = {"title": "x", "store_id": mall["house"]["store"], "participating_store_ids": [99_999],
            "starts_at": clock.now.isoformat(), "ends_at": (clock.now + timedelta(days=1)).isoformat(), "quota": 1,
            "benefit": {"kind": "amount_off", "amount_fen": 100}}
    _error(client.post(f"{OPS}/deals", json=body, headers=ops_marketing["headers"]), 422, "venue.unknown_store")
