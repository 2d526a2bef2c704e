"""Deals and coupons through the HTTP API: merchants, ops review, members' claims and wallet, the till."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from factories import api_error

from mallapp.domain import merchants, venue_admin

M, OPS = "/api/v1/merchant", "/api/v1/ops"


pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


@pytest.fixture
def shop(rt, merchant) -> dict[str, Any]:
    """The conftest merchant with a store, and a second merchant with its own store."""
    with rt.sessions.begin() as s:
        store = venue_admin.create_store(s, name="Starlight", floor=1, x=0, y=0, merchant_id=merchant["id"],
                                         now=rt.now()).id
        other, key = merchants.create(s, "Harbour Books", rt.now())
        other_store = venue_admin.create_store(s, name="Harbour", floor=1, x=9, y=0, merchant_id=other.id,
                                               now=rt.now()).id
    return {**merchant, "store": store, "other": {"id": other.id, "store": other_store,
                                                  "headers": {"Authorization": f"Bearer {key}"}}}


def _body(clock, store_id: int, **over: Any) -> dict[str, Any]:
    return {"title": "Flat white for 5 yuan", "text": "Show the coupon at the counter", "store_id": store_id,
            "starts_at": (clock.now - timedelta(hours=1)).isoformat(),
            "ends_at": (clock.now + timedelta(days=7)).isoformat(), "quota": 3,
            "benefit": {"kind": "amount_off", "amount_fen": 500}, **over}


@pytest.fixture
def live_deal(client, shop, ops_admin, clock):
    """Create, submit and approve a deal through the API; return its id."""
    def make(**over: Any) -> int:
        created = client.post(f"{M}/deals", json=_body(clock, shop["store"], **over), headers=shop["headers"])
        assert created.status_code == 201, created.get_json()
        deal_id = created.get_json()["id"]
        assert client.post(f"{M}/deals/{deal_id}/submit", headers=shop["headers"]).status_code == 200
        approved = client.post(f"{OPS}/deals/{deal_id}/approve", headers=ops_admin["headers"])
        assert approved.get_json()["status"] == "live"
        return deal_id
    return make


def _redeem(client, shop, **body: Any):
    return client.post(f"{M}/coupons/redeem", json={"store_id": shop["store"], "request_id": "till-1", **body},
                       headers=shop["headers"])


# --- merchants -------------------------------------------------------------------------------------

def test_a_merchant_creates_a_draft_deal_and_sees_it_with_its_figures(client, shop, clock):
    created = client.post(f"{M}/deals", json=_body(clock, shop["store"]), headers=shop["headers"])
    assert created.status_code == 201
    deal = created.get_json()
    assert deal["status"] == "draft" and deal["figures"] == {"claimed": 0, "redeemed": 0, "pushes": 0}
    assert deal["targeting"]["member_rule"] == "everyone"
    assert client.get(f"{M}/deals/{deal['id']}", headers=shop["headers"]).get_json() == deal
    assert [d["id"] for d in client.get(f"{M}/deals", headers=shop["headers"]).get_json()["deals"]] == [deal["id"]]


@pytest.mark.parametrize(("over", "code"), [
    ({"benefit": {"kind": "percent_off", "percent": 150}}, "request.invalid"),
    ({"benefit": {"kind": "amount_off", "amount_fen": 1.5}}, "request.invalid"),
    ({"quota": 0}, "request.invalid"),
    ({"image_url": "http://insecure.example/x.png"}, "request.invalid"),
    ({"starts_at": "2026-03-10T10:00:00"}, "request.invalid"),
    ({"extra": 1}, "request.invalid"),
])
def test_bad_deal_bodies_are_400_json_errors(client, shop, clock, over, code):
    response = client.post(f"{M}/deals", json=_body(clock, shop["store"], **over), headers=shop["headers"])
    assert response.status_code == 400
    api_error(response, code)


def test_deal_rules_the_schema_cannot_see_are_refused_with_their_codes(client, shop, clock):
    def post(**over):
        return client.post(f"{M}/deals", json={**_body(clock, shop["store"]), **over}, headers=shop["headers"])

    api_error(post(store_id=shop["other"]["store"]), "deal.store_not_yours")
    api_error(post(ends_at=(clock.now - timedelta(days=1)).isoformat()), "deal.invalid_window")
    api_error(post(targeting={"zone_ids": [4242]}), "venue.unknown_zone")


def test_another_merchants_deal_is_404_for_every_verb(client, shop, live_deal):
    deal_id = live_deal()
    other = shop["other"]["headers"]
    api_error(client.get(f"{M}/deals/{deal_id}", headers=other), "deal.not_found")
    api_error(client.patch(f"{M}/deals/{deal_id}", json={"title": "mine"}, headers=other), "deal.not_found")
    for verb in ("submit", "pause", "resume", "end"):
        api_error(client.post(f"{M}/deals/{deal_id}/{verb}", headers=other), "deal.not_found")
    assert client.get(f"{M}/deals", headers=other).get_json()["deals"] == []


def test_editing_a_live_deal_sends_it_back_to_review_and_a_lower_quota_than_claimed_is_refused(
        client, shop, live_deal, member):
    deal_id = live_deal()
    client.post(f"/api/v1/deals/{deal_id}/claim", headers=member["headers"])
    api_error(client.patch(f"{M}/deals/{deal_id}", json={"quota": 0}, headers=shop["headers"]), "request.invalid")
    raised = client.patch(f"{M}/deals/{deal_id}", json={"quota": 10}, headers=shop["headers"]).get_json()
    assert (raised["status"], raised["quota"], raised["figures"]["claimed"]) == ("live", 10, 1)
    edited = client.patch(f"{M}/deals/{deal_id}", json={"title": "Better", "targeting": {"member_rule": "new_members"}},
                          headers=shop["headers"]).get_json()
    assert (edited["status"], edited["title"], edited["targeting"]["member_rule"]) == ("pending_approval", "Better",
                                                                                      "new_members")
    api_error(client.patch(f"{M}/deals/{deal_id}", json={"title": None}, headers=shop["headers"]), "request.invalid")
    api_error(client.patch(f"{M}/deals/{deal_id}", json={}, headers=shop["headers"]), "request.invalid")


def test_pause_resume_end_and_wrong_moves(client, shop, live_deal):
    deal_id = live_deal()
    assert client.post(f"{M}/deals/{deal_id}/pause", headers=shop["headers"]).get_json()["status"] == "paused"
    api_error(client.post(f"{M}/deals/{deal_id}/pause", headers=shop["headers"]), "deal.invalid_state")
    assert client.post(f"{M}/deals/{deal_id}/resume", headers=shop["headers"]).get_json()["status"] == "live"
    assert client.post(f"{M}/deals/{deal_id}/end", headers=shop["headers"]).get_json()["status"] == "ended"
    api_error(client.patch(f"{M}/deals/{deal_id}", json={"quota": 9}, headers=shop["headers"]), "deal.invalid_state")
    refused = api_error(client.post(f"{M}/deals/{deal_id}/resume", headers=shop["headers"]), "deal.invalid_state")
    assert refused["message"] == "cannot resume this deal: it has ended"  # not "a ended deal cannot resume"


# --- ops -------------------------------------------------------------------------------------------

def test_ops_review_queue_approve_and_reject(client, shop, clock, ops_admin, ops_viewer):
    ids = [client.post(f"{M}/deals", json=_body(clock, shop["store"]), headers=shop["headers"]).get_json()["id"]
           for _ in range(2)]
    for deal_id in ids:
        client.post(f"{M}/deals/{deal_id}/submit", headers=shop["headers"])
    queue = client.get(f"{OPS}/deals", query_string={"status": "pending_approval"}, headers=ops_viewer["headers"])
    assert [d["id"] for d in queue.get_json()["deals"]] == ids
    api_error(client.post(f"{OPS}/deals/{ids[0]}/approve", headers=ops_viewer["headers"]), "ops.admin_required")
    api_error(client.post(f"{OPS}/deals/{ids[1]}/reject", json={}, headers=ops_admin["headers"]), "request.invalid")
    rejected = client.post(f"{OPS}/deals/{ids[1]}/reject", json={"reason": "no image"}, headers=ops_admin["headers"])
    assert (rejected.get_json()["status"], rejected.get_json()["rejection_reason"]) == ("rejected", "no image")
    api_error(client.post(f"{OPS}/deals/{ids[1]}/approve", headers=ops_admin["headers"]), "deal.invalid_state")
    api_error(client.post(f"{OPS}/deals/999/approve", headers=ops_admin["headers"]), "deal.not_found")
    api_error(client.get(f"{OPS}/deals", query_string={"status": "bogus"}, headers=ops_viewer["headers"]),
           "request.invalid_query")


def test_ops_admins_turn_on_auto_approval(client, shop, clock, ops_admin, ops_viewer):
    url = f"{OPS}/merchants/{shop['id']}"
    api_error(client.patch(url, json={"auto_approve_deals": True}, headers=ops_viewer["headers"]), "ops.admin_required")
    api_error(client.patch(f"{OPS}/merchants/999", json={"auto_approve_deals": True}, headers=ops_admin["headers"]),
           "merchant.not_found")
    api_error(client.patch(url, json={"auto_approve_deals": "yes"}, headers=ops_admin["headers"]), "request.invalid")
    assert client.patch(url, json={"auto_approve_deals": True}, headers=ops_admin["headers"]).get_json()[
        "auto_approve_deals"] is True
    deal_id = client.post(f"{M}/deals", json=_body(clock, shop["store"]), headers=shop["headers"]).get_json()["id"]
    assert client.post(f"{M}/deals/{deal_id}/submit", headers=shop["headers"]).get_json()["status"] == "live"


def test_callers_of_the_wrong_kind_are_refused(client, shop, member, ops_viewer, live_deal):
    deal_id = live_deal()
    api_error(client.get(f"{M}/deals", headers=member["headers"]), "auth.wrong_caller")
    api_error(client.post(f"{M}/coupons/redeem", json={}, headers=member["headers"]), "auth.wrong_caller")
    api_error(client.get(f"{OPS}/deals", headers=member["headers"]), "auth.wrong_caller")
    api_error(client.get(f"{OPS}/deals", headers=shop["headers"]), "auth.wrong_caller")
    api_error(client.post(f"/api/v1/deals/{deal_id}/claim", headers=shop["headers"]), "auth.wrong_caller")
    api_error(client.get("/api/v1/me/coupons", headers=ops_viewer["headers"]), "auth.wrong_caller")
    assert client.get("/api/v1/deals").status_code == 401


# --- members and the till --------------------------------------------------------------------------

def test_a_member_lists_claims_and_sees_the_coupon_in_the_wallet(client, member, live_deal):
    deal_id = live_deal()
    listed = client.get("/api/v1/deals", headers=member["headers"]).get_json()["deals"]
    assert [(d["id"], d["remaining"], d["claimed_by_me"]) for d in listed] == [(deal_id, 3, 0)]
    claimed = client.post(f"/api/v1/deals/{deal_id}/claim", headers=member["headers"])
    assert claimed.status_code == 201
    coupon = claimed.get_json()
    assert coupon["status"] == "active" and coupon["qr"].startswith("CP1.") and coupon["code"] in coupon["qr"]
    api_error(client.post(f"/api/v1/deals/{deal_id}/claim", headers=member["headers"]), "deal.limit_reached")
    assert client.get("/api/v1/deals", headers=member["headers"]).get_json()["deals"] == []
    wallet = client.get("/api/v1/me/coupons", query_string={"status": "active"}, headers=member["headers"])
    assert wallet.get_json()["coupons"] == [coupon]
    api_error(client.get("/api/v1/me/coupons", query_string={"status": "lost"}, headers=member["headers"]),
           "request.invalid_query")
    api_error(client.post("/api/v1/deals/999/claim", headers=member["headers"]), "deal.not_found")


def test_the_till_redeems_by_code_or_qr_once_and_a_retry_replays(client, shop, members_api, live_deal, clock):
    deal_id = live_deal(benefit={"kind": "bonus_points", "points": 25})
    one, two = members_api.sign_in(openid="o-a"), members_api.sign_in(openid="o-b")
    by_code = client.post(f"/api/v1/deals/{deal_id}/claim", headers=one["headers"]).get_json()
    by_qr = client.post(f"/api/v1/deals/{deal_id}/claim", headers=two["headers"]).get_json()

    first = _redeem(client, shop, code=by_code["code"])
    assert first.status_code == 201
    assert (first.get_json()["bonus_points"], first.get_json()["replayed"]) == (25, False)
    clock.advance(seconds=30)
    retry = _redeem(client, shop, code=by_code["code"])
    assert retry.status_code == 200 and retry.get_json() == {**first.get_json(), "replayed": True}
    api_error(_redeem(client, shop, code=by_code["code"], request_id="till-2"), "coupon.already_used")
    assert _redeem(client, shop, qr=by_qr["qr"], request_id="till-3").status_code == 201

    me = client.get("/api/v1/me", headers=one["headers"]).get_json()
    assert me["points"]["balance"] == 25
    figures = client.get(f"{M}/deals/{deal_id}", headers=shop["headers"]).get_json()["figures"]
    assert (figures["claimed"], figures["redeemed"]) == (2, 2)
    used = client.get("/api/v1/me/coupons", query_string={"status": "used"}, headers=one["headers"]).get_json()
    assert [c["redeemed_at_store"] for c in used["coupons"]] == [shop["store"]]


def test_the_till_is_refused_clearly(client, shop, member, live_deal):
    coupon = client.post(f"/api/v1/deals/{live_deal()}/claim", headers=member["headers"]).get_json()
    api_error(_redeem(client, shop), "request.invalid")  # neither code nor qr
    api_error(_redeem(client, shop, code=coupon["code"], qr=coupon["qr"]), "request.invalid")
    api_error(_redeem(client, shop, qr=coupon["qr"][:-4] + "AAAA"), "coupon.invalid_qr")
    api_error(_redeem(client, shop, code="NOPE-NOPE-NO"), "coupon.not_found")
    api_error(_redeem(client, shop, code=coupon["code"], store_id=shop["other"]["store"]), "coupon.wrong_store")
    other = client.post(f"{M}/coupons/redeem", json={"code": coupon["code"], "store_id": shop["other"]["store"],
                                                     "request_id": "x"}, headers=shop["other"]["headers"])
    # another merchant's coupon answers exactly as a made-up code: the till learns nothing of the code
    made_up = _redeem(client, shop, code="NOPE-NOPE-NO")
    assert (other.status_code, other.get_json()) == (made_up.status_code, made_up.get_json())
    api_error(other, "coupon.not_found")
    assert client.get("/api/v1/me/coupons", headers=member["headers"]).get_json()["coupons"][0]["status"] == "active"


def test_an_expired_coupon_is_refused_and_shows_as_expired(client, shop, member, live_deal, clock):
    coupon = client.post(f"/api/v1/deals/{live_deal()}/claim", headers=member["headers"]).get_json()
    clock.advance(days=8)
    api_error(_redeem(client, shop, code=coupon["code"]), "coupon.expired")
    wallet = client.get("/api/v1/me/coupons", query_string={"status": "expired"}, headers=member["headers"])
    assert [c["id"] for c in wallet.get_json()["coupons"]] == [coupon["id"]]
