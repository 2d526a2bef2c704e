"""Parking coupons through the HTTP API: parking deals, claims funded by the merchant's quota, the till's
refusal, the merchant's quota and usage, ops' view and adjustment."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from factories import api_error, parking_coupon_deal, staff_headers

from mallapp.domain import venue_admin
from mallapp.domain.parking import merchant_coupons

M, OPS = "/api/v1/merchant", "/api/v1/ops"

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


@pytest.fixture
def shop(rt, merchant) -> dict[str, Any]:
    """The conftest merchant with a store."""
    with rt.sessions.begin() as s:
        store = venue_admin.create_store(s, name="Starlight", floor=1, x=0, y=0, merchant_id=merchant["id"],
                                         now=rt.now()).id
    return {**merchant, "store": store}


def _deal(client, clock, shop, benefit: dict[str, Any], quota: int = 5) -> dict[str, Any]:
    body = {"title": "停车 2 小时 / 2 h free parking", "store_id": shop["store"], "quota": quota,
            "starts_at": (clock.now - timedelta(hours=1)).isoformat(),
            "ends_at": (clock.now + timedelta(days=7)).isoformat(), "benefit": benefit}
    return client.post(f"{M}/deals", json=body, headers=shop["headers"])


def _buy(client, headers: dict[str, str], key: str, unit: str = "hours", amount: int = 10):
    return client.post(f"{M}/parking/quota/purchases", json={"unit": unit, "amount": amount},
                       headers={**headers, "Idempotency-Key": key})


def _live(client, ops_admin, shop, deal_id: int) -> None:
    assert client.post(f"{M}/deals/{deal_id}/submit", headers=shop["headers"]).status_code == 200
    assert client.post(f"{OPS}/deals/{deal_id}/approve", headers=ops_admin["headers"]).get_json()["status"] == "live"


def test_a_parking_deal_shows_its_benefit_and_warns_when_the_quota_falls_short(client, clock, shop):
    created = _deal(client, clock, shop, {"kind": "parking_hours", "hours": 2}, quota=5)
    assert created.status_code == 201, created.get_json()
    deal = created.get_json()
    assert deal["benefit"] == {"kind": "parking_hours", "hours": 2} and deal["used_for"] == "parking"
    assert deal["parking_quota"] == {"unit": "hours", "per_coupon": 2, "balance": 0, "covers": 0, "unclaimed": 5,
                                     "short": True}
    assert _buy(client, shop["headers"], "b-1", amount=10).status_code == 201
    again = client.get(f"{M}/deals/{deal['id']}", headers=shop["headers"]).get_json()
    assert again["parking_quota"]["covers"] == 5 and again["parking_quota"]["short"] is False
    amount = _deal(client, clock, shop, {"kind": "parking_amount", "amount_fen": 1500}).get_json()
    assert amount["benefit"] == {"kind": "parking_amount", "amount_fen": 1500}
    assert amount["parking_quota"]["unit"] == "fen"
    till = _deal(client, clock, shop, {"kind": "amount_off", "amount_fen": 500}).get_json()
    assert till["used_for"] == "till" and till["parking_quota"] is None


@pytest.mark.parametrize("benefit", [{"kind": "parking_hours", "hours": 25}, {"kind": "parking_hours", "hours": 0},
                                     {"kind": "parking_amount", "amount_fen": 100_001},
                                     {"kind": "parking_hours", "amount_fen": 500}])
def test_a_parking_benefit_out_of_bounds_is_refused(client, clock, shop, benefit):
    api_error(_deal(client, clock, shop, benefit), "request.invalid")


def test_a_parking_deal_has_no_minimum_spend(client, clock, shop):
    body = {"title": "停车券", "store_id": shop["store"], "quota": 5, "min_spend_fen": 10_000,
            "starts_at": (clock.now - timedelta(hours=1)).isoformat(),
            "ends_at": (clock.now + timedelta(days=7)).isoformat(), "benefit": {"kind": "parking_hours", "hours": 2}}
    assert "no minimum spend" in api_error(client.post(f"{M}/deals", json=body, headers=shop["headers"]),
                                           "request.invalid")["message"]
    till = client.post(f"{M}/deals", json={**body, "benefit": {"kind": "amount_off", "amount_fen": 500}},
                       headers=shop["headers"]).get_json()
    changed = client.patch(f"{M}/deals/{till['id']}", json={"benefit": {"kind": "parking_hours", "hours": 1}},
                           headers=shop["headers"])
    api_error(changed, "request.invalid")


def test_a_member_claims_a_funded_parking_coupon_and_a_till_refuses_it(client, clock, shop, ops_admin, member):
    deal_id = _deal(client, clock, shop, {"kind": "parking_hours", "hours": 2}).get_json()["id"]
    _live(client, ops_admin, shop, deal_id)
    listed = client.get("/api/v1/deals", headers=member["headers"]).get_json()["deals"]
    assert [(d["id"], d["used_for"]) for d in listed] == [(deal_id, "parking")]
    api_error(client.post(f"/api/v1/deals/{deal_id}/claim", headers=member["headers"]), "parking.quota_exhausted")
    assert client.get("/api/v1/me/coupons", headers=member["headers"]).get_json()["coupons"] == []

    assert _buy(client, shop["headers"], "b-1", amount=2).status_code == 201
    claimed = client.post(f"/api/v1/deals/{deal_id}/claim", headers=member["headers"])
    assert claimed.status_code == 201, claimed.get_json()
    coupon = claimed.get_json()
    assert coupon["deal"]["benefit"] == {"kind": "parking_hours", "hours": 2}
    assert coupon["deal"]["used_for"] == "parking"

    refused = client.post(f"{M}/coupons/redeem", json={"store_id": shop["store"], "request_id": "till-1",
                                                        "code": coupon["code"]}, headers=shop["headers"])
    assert api_error(refused, "coupon.parking_only")["details"]["benefit"] == {"kind": "parking_hours", "hours": 2}
    wallet = client.get("/api/v1/me/coupons", headers=member["headers"]).get_json()["coupons"]
    assert [c["status"] for c in wallet] == ["active"]  # the till changed nothing


def test_the_merchant_buys_quota_once_per_key_and_sees_its_entries(client, shop):
    cashier = staff_headers(client, shop["headers"], "till-ann", "cashier")
    manager = staff_headers(client, shop["headers"], "boss-bo", "manager")
    api_error(_buy(client, cashier, "c-1"), "merchant.role_required")
    api_error(client.post(f"{M}/parking/quota/purchases", json={"unit": "hours", "amount": 1}, headers=manager),
              "request.idempotency_key_required")
    api_error(_buy(client, manager, "m-0", unit="hours", amount=100_001), "request.invalid")

    first = _buy(client, manager, "m-1", amount=40)
    assert first.status_code == 201
    assert first.get_json()["entry"]["price_fen"] == 40 * 500  # [parking] quota_price_fen_per_hour
    replay = _buy(client, manager, "m-1", amount=40)
    assert replay.status_code == 200 and replay.get_json()["replayed"] is True
    assert replay.get_json()["entry"] == first.get_json()["entry"]
    api_error(_buy(client, manager, "m-1", amount=41), "parking.quota_key_reused")
    assert _buy(client, manager, "m-2", unit="fen", amount=5000).get_json()["entry"]["price_fen"] == 5000

    seen = client.get(f"{M}/parking/quota", headers=cashier).get_json()  # any staff may look
    assert seen["balance"] == {"hours": 40, "fen": 5000}
    assert [(e["reason"], e["unit"], e["delta"]) for e in seen["entries"]] == [("bought", "fen", 5000),
                                                                               ("bought", "hours", 40)]


def test_usage_reports_each_day_and_only_managers_read_it(client, rt, clock, shop, member):
    made = parking_coupon_deal(rt, value=2, quota_bought=10, days=1)
    assert client.post(f"/api/v1/deals/{made.deal}/claim", headers=member["headers"]).status_code == 201
    clock.now += timedelta(days=2)
    assert merchant_coupons.return_expired(rt.sessions, rt.now()) == 1

    usage = client.get(f"{M}/parking/usage?from=2026-03-10&to=2026-03-12", headers=made.headers)
    assert usage.status_code == 200, usage.get_json()
    report = usage.get_json()
    assert [d["day"] for d in report["days"]] == ["2026-03-10", "2026-03-11", "2026-03-12"]
    assert (report["days"][0]["claimed"], report["days"][0]["claimed_hours"]) == (1, 2)
    assert report["totals"]["expired_hours"] == 2 and report["totals"]["returned_hours"] == 2
    default = client.get(f"{M}/parking/usage", headers=made.headers).get_json()
    assert len(default["days"]) == 30 and default["last_day"] == "2026-03-12"
    cashier = staff_headers(client, made.headers, "till-cy", "cashier")
    api_error(client.get(f"{M}/parking/usage", headers=cashier), "merchant.role_required")
    for bad in ("from=2025-01-01&to=2026-03-01", "from=0001-01-01&to=0001-01-02", "from=9999-12-30&to=9999-12-31",
                "from=2026-03-02&to=2026-03-01"):
        api_error(client.get(f"{M}/parking/usage?{bad}", headers=made.headers), "parking.invalid_range")
    api_error(client.get(f"{M}/parking/usage?from=yesterday", headers=made.headers), "request.invalid_query")
    # Another merchant sees none of it.
    other = client.get(f"{M}/parking/usage?from=2026-03-10&to=2026-03-12", headers=shop["headers"]).get_json()
    assert other["totals"]["claimed"] == 0


def test_ops_see_every_merchants_quota_and_only_an_admin_adjusts_it(client, rt, shop, ops_admin, ops_viewer):
    made = parking_coupon_deal(rt, quota_bought=3)
    listed = client.get(f"{OPS}/parking/quotas", headers=ops_viewer["headers"]).get_json()["merchants"]
    assert {m["merchant_id"]: m["balance"] for m in listed} == {shop["id"]: {"hours": 0, "fen": 0},
                                                                made.merchant: {"hours": 3, "fen": 0}}
    url = f"{OPS}/merchants/{made.merchant}/parking-quota"
    body = {"unit": "hours", "delta": 5, "reason": "补偿：系统故障 / compensation for an outage"}
    admin = {**ops_admin["headers"], "Idempotency-Key": "adjust-1"}
    api_error(client.post(url, json=body, headers={**ops_viewer["headers"], "Idempotency-Key": "adjust-1"}),
              "ops.admin_required")
    api_error(client.post(url, json=body, headers=ops_admin["headers"]), "request.idempotency_key_required")
    done = client.post(url, json=body, headers=admin)
    assert done.status_code == 201, done.get_json()
    assert done.get_json()["balance"] == {"hours": 8, "fen": 0} and done.get_json()["replayed"] is False
    assert done.get_json()["entry"]["note"] == "ops-admin: 补偿：系统故障 / compensation for an outage"
    # A double submit (the same key) adds nothing; the same key for another amount is refused.
    again = client.post(url, json=body, headers=admin)
    assert again.status_code == 200 and again.get_json()["replayed"] is True
    assert again.get_json()["entry"] == done.get_json()["entry"] and again.get_json()["balance"]["hours"] == 8
    api_error(client.post(url, json={**body, "delta": 6}, headers=admin), "parking.quota_key_reused")
    other = {**ops_admin["headers"], "Idempotency-Key": "adjust-2"}
    api_error(client.post(url, json={**body, "delta": -9}, headers=other), "parking.quota_exhausted")
    api_error(client.post(url, json={**body, "delta": 0}, headers=other), "request.invalid")
    api_error(client.post(f"{OPS}/merchants/999999/parking-quota", json=body, headers=other),
              "merchant.not_found")
    seen = client.get(f"{M}/parking/quota", headers=made.headers).get_json()
    assert seen["balance"]["hours"] == 8 and seen["entries"][0]["reason"] == "adjusted"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_document_lists_the_parking_benefit_kinds(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    text = str(doc["components"]) if "components" in doc else str(doc)
    assert "parking_hours" in text and "parking_amount" in text
