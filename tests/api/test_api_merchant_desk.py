"""The merchant console's reads and the password reset: own stores with their targets, redemptions by day, store
footfall by hour and day, each scoped to the calling merchant."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from factories import (
    STAFF_PASSWORD,
    build_shop,
    build_venue,
    deal_funnel,
    live_deal,
    manager_headers,
    shop_with_rival,
    zone_visits,
)

from mallapp.domain import coupons, members, venue_admin

M = "/api/v1/merchant"
pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


@pytest.fixture
def shop(rt):
    return build_shop(rt, build_venue(rt))


def _mall(day: str, hour: int, minute: int = 0) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:{minute:02d}:00+08:00")


def test_own_stores_lists_only_this_merchants_stores_with_their_zones_and_items(client, rt, shop, merchant):
    headers = manager_headers(client, rt, shop.merchant)
    with rt.sessions.begin() as s:  # another merchant's store is never offered
        venue_admin.create_store(s, name="Rival", floor=2, x=0, y=0, merchant_id=merchant["id"], now=rt.now())
    stores = client.get(f"{M}/stores", headers=headers).get_json()["stores"]
    names = [s["name"] for s in stores]
    assert sorted(s["id"] for s in stores) == sorted([shop.store, shop.other_store]) and names == sorted(names)
    coffee, = [s for s in stores if s["id"] == shop.store]
    other, = [s for s in stores if s["id"] == shop.other_store]
    assert {z["id"] for z in coffee["zones"]} == {shop.store_zone, shop.item_zone}
    assert [i["id"] for i in coffee["sale_items"]] == [shop.item]
    assert coffee["floor_name"] == "L1" and other["zones"] == []
    # A cashier may read them too (the till picks its store).
    cashier = manager_headers(client, rt, shop.merchant, "cashier-1", "cashier")
    assert client.get(f"{M}/stores", headers=cashier).status_code == 200


def test_what_own_stores_offers_is_what_a_deal_may_target(client, rt, shop, clock):
    headers = manager_headers(client, rt, shop.merchant)
    coffee = client.get(f"{M}/stores", headers=headers).get_json()["stores"][0]
    created = client.post(f"{M}/deals", headers=headers, json={
        "title": "Winter blend", "store_id": coffee["id"], "quota": 5,
        "starts_at": clock.now.isoformat(), "ends_at": (clock.now + timedelta(days=2)).isoformat(),
        "benefit": {"kind": "amount_off", "amount_fen": 300},
        "targeting": {"zone_ids": [z["id"] for z in coffee["zones"]], "store_ids": [coffee["id"]],
                      "sale_item_ids": [i["id"] for i in coffee["sale_items"]]}})
    assert created.status_code == 201, created.get_json()


def test_redemptions_of_a_day_are_listed_newest_first_with_the_days_totals_and_pages(client, rt, shop, clock):
    headers = manager_headers(client, rt, shop.merchant)
    deal_id = deal_funnel(rt, shop, pushes=9, claims=3, redemptions=3)
    answer = client.get(f"{M}/redemptions", headers=headers, query_string={"limit": 2}).get_json()
    assert answer["day"] == "2026-03-10"
    assert answer["totals"] == {"count": 3, "discount_fen": 1500, "bonus_points": 0}
    first = answer["redemptions"]
    assert len(first) == 2 and first[0]["coupon_id"] > first[1]["coupon_id"]
    assert first[0]["deal_id"] == deal_id and first[0]["store_id"] == shop.store
    assert first[0]["benefit"] == {"kind": "amount_off", "amount_fen": 500} and first[0]["spend_fen"] == 3000
    rest = client.get(f"{M}/redemptions", headers=headers,
                      query_string={"limit": 2, "cursor": answer["next_cursor"]}).get_json()
    assert len(rest["redemptions"]) == 1 and rest["next_cursor"] is None
    assert rest["redemptions"][0]["coupon_id"] < first[1]["coupon_id"]
    for bogus in ("1-9999999999999999999", "x-1"):  # past a big id, or not one this API gave
        refused = client.get(f"{M}/redemptions", headers=headers, query_string={"cursor": bogus})
        assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "request.invalid_query"
    # Another day has none.
    other = client.get(f"{M}/redemptions", headers=headers, query_string={"day": "2026-03-09"}).get_json()
    assert other["redemptions"] == [] and other["totals"]["count"] == 0


def test_redemptions_are_the_callers_own_and_need_a_manager(client, rt, shop, merchant):
    deal_funnel(rt, shop, pushes=0, claims=1, redemptions=1)
    rival = manager_headers(client, rt, merchant["id"], "rival-manager")
    assert client.get(f"{M}/redemptions", headers=rival).get_json()["totals"]["count"] == 0
    cashier = manager_headers(client, rt, shop.merchant, "cashier-1", "cashier")
    refused = client.get(f"{M}/redemptions", headers=cashier)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "merchant.role_required"


def test_the_deal_answer_carries_its_funnel(client, rt, shop):
    headers = manager_headers(client, rt, shop.merchant)
    deal_id = deal_funnel(rt, shop, pushes=12, claims=4, redemptions=1)
    assert client.get(f"{M}/deals/{deal_id}", headers=headers).get_json()["figures"] == {
        "pushes": 12, "claimed": 4, "redeemed": 1}


def test_footfall_of_one_day_is_by_hour_in_the_merchants_store_zones_only(client, rt, shop):
    headers = manager_headers(client, rt, shop.merchant)
    with rt.sessions.begin() as s:
        entrance = next(z.id for z in venue_admin.list_zones(s, None) if z.kind == "entrance")
    zone_visits(rt, shop.store_zone, [("o-a", _mall("2026-03-10", 9, 10), 300),
                                      ("o-a", _mall("2026-03-10", 9, 40), 100),
                                      ("o-b", _mall("2026-03-10", 14, 5), 600)])
    zone_visits(rt, shop.item_zone, [("o-b", _mall("2026-03-10", 14, 20), 60)])
    zone_visits(rt, entrance, [("o-c", _mall("2026-03-10", 9, 0), 30)])  # mall-wide: not the merchant's
    zone_visits(rt, shop.store_zone, [("o-c", _mall("2026-03-09", 23, 59), 30)])  # the day before
    answer = client.get(f"{M}/footfall", headers=headers).get_json()
    assert answer["granularity"] == "hour" and len(answer["slots"]) == 24
    by_hour = {datetime.fromisoformat(s["start"]).astimezone(_mall("2026-03-10", 0).tzinfo).hour: s
               for s in answer["slots"]}
    assert (by_hour[9]["visits"], by_hour[9]["members"], by_hour[9]["mean_dwell_seconds"]) == (2, 1, 200.0)
    assert (by_hour[14]["visits"], by_hour[14]["members"]) == (2, 1)
    assert sum(s["visits"] for s in answer["slots"]) == 4
    assert (answer["visits"], answer["members"]) == (4, 2)
    assert {z["id"] for z in answer["zones"]} == {shop.store_zone, shop.item_zone}


def test_footfall_over_days_is_by_day_and_can_name_one_store(client, rt, shop):
    headers = manager_headers(client, rt, shop.merchant)
    zone_visits(rt, shop.store_zone, [("o-a", _mall("2026-03-08", 12), 60), ("o-a", _mall("2026-03-10", 12), 60)])
    answer = client.get(f"{M}/footfall", headers=headers,
                        query_string={"from": "2026-03-04", "to": "2026-03-10", "store_id": shop.store}).get_json()
    assert answer["granularity"] == "day" and [s["visits"] for s in answer["slots"]] == [0, 0, 0, 0, 1, 0, 1]
    assert answer["members"] == 1
    other = client.get(f"{M}/footfall", headers=headers,
                       query_string={"from": "2026-03-04", "to": "2026-03-10", "store_id": shop.other_store})
    assert other.get_json()["visits"] == 0 and other.get_json()["zones"] == []


def test_footfall_of_another_merchants_store_is_not_found(client, rt, merchant):
    world = shop_with_rival(rt, merchant)
    headers = manager_headers(client, rt, merchant["id"])
    refused = client.get(f"{M}/footfall", headers=headers, query_string={"store_id": world["other"]["store"]})
    assert refused.status_code == 404 and refused.get_json()["error"]["code"] == "store.not_found"
    assert client.get(f"{M}/footfall", headers=headers,
                      query_string={"store_id": world["store"]}).status_code == 200


def test_footfall_refuses_a_backwards_or_too_long_range(client, rt, merchant):
    headers = manager_headers(client, rt, merchant["id"])
    for span in ({"from": "2026-03-10", "to": "2026-03-09"}, {"from": "2026-01-01", "to": "2026-03-10"}):
        refused = client.get(f"{M}/footfall", headers=headers, query_string=span)
        assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "footfall.invalid_range"


def test_a_manager_resets_a_password_shown_once_and_the_old_one_and_its_tokens_stop_working(client, rt, merchant):
    headers = manager_headers(client, rt, merchant["id"])
    cashier = manager_headers(client, rt, merchant["id"], "cashier-1", "cashier")
    staff_id = next(s["id"] for s in client.get(f"{M}/staff", headers=headers).get_json()["staff"]
                    if s["username"] == "cashier-1")
    assert client.get(f"{M}/stores", headers=cashier).status_code == 200
    reset = client.post(f"{M}/staff/{staff_id}/password", headers=headers, json={})
    assert reset.status_code == 200
    new_password = reset.get_json()["password"]
    assert len(new_password) >= 12
    assert client.get(f"{M}/stores", headers=cashier).status_code == 401  # signed out everywhere
    old = client.post(f"{M}/auth", json={"username": "cashier-1", "password": STAFF_PASSWORD})
    assert old.status_code == 401
    assert client.post(f"{M}/auth", json={"username": "cashier-1", "password": new_password}).status_code == 200
    # A typed password is not echoed back.
    typed = client.post(f"{M}/staff/{staff_id}/password", headers=headers, json={"password": "another passphrase"})
    assert typed.get_json()["password"] is None
    assert client.post(f"{M}/auth", json={"username": "cashier-1",
                                          "password": "another passphrase"}).status_code == 200


def test_a_password_reset_is_for_a_manager_and_for_own_staff_only(client, rt, merchant, shop):
    headers = manager_headers(client, rt, merchant["id"])
    cashier = manager_headers(client, rt, merchant["id"], "cashier-1", "cashier")
    rival_staff = manager_headers(client, rt, shop.merchant, "rival-1")
    rival_id = next(s["id"] for s in client.get(f"{M}/staff", headers=rival_staff).get_json()["staff"])
    refused = client.post(f"{M}/staff/{rival_id}/password", headers=headers, json={})
    assert refused.status_code == 404 and refused.get_json()["error"]["code"] == "staff.not_found"
    forbidden = client.post(f"{M}/staff/{rival_id}/password", headers=cashier, json={})
    assert forbidden.status_code == 403
    short = client.post(f"{M}/staff/{rival_id}/password", headers=headers, json={"password": "short"})
    assert short.status_code == 400
    assert client.post(f"{M}/auth", json={"username": "rival-1", "password": STAFF_PASSWORD}).status_code == 200


def test_a_redemption_names_the_staff_member_whose_till_took_it(client, rt, shop, clock):
    headers = manager_headers(client, rt, shop.merchant)
    cashier = manager_headers(client, rt, shop.merchant, "cashier-1", "cashier")
    deal_id = live_deal(rt, shop)
    with rt.sessions.begin() as s:
        code = coupons.claim(s, rt.settings, shop.member, deal_id, rt.now()).coupon.code
    redeemed = client.post(f"{M}/coupons/redeem", headers=cashier,
                           json={"code": code, "store_id": shop.store, "request_id": "till-1"})
    assert redeemed.status_code == 201, redeemed.get_json()
    row, = client.get(f"{M}/redemptions", headers=headers).get_json()["redemptions"]
    assert row["staff_username"] == "cashier-1" and row["deal_id"] == deal_id


def test_redemptions_come_newest_redeemed_first_not_newest_claimed(client, rt, shop, merchant):
    headers = manager_headers(client, rt, shop.merchant)
    deal_id = live_deal(rt, shop)
    now = rt.now()
    with rt.sessions.begin() as s:
        members_ = [_member(s, f"o-order-{i}", now) for i in range(2)]
        first, second = (coupons.claim(s, rt.settings, m, deal_id, now).coupon.code for m in members_)
        # The later claim is redeemed first, the earlier one a minute after.
        for code, at, key in ((second, now, "r-2"), (first, now + timedelta(minutes=1), "r-1")):
            coupons.redeem(s, rt.settings, rt.secret, merchant_id=shop.merchant, store_id=shop.store, code=code,
                           request_id=key, now=at)
    page = client.get(f"{M}/redemptions", headers=headers, query_string={"limit": 1}).get_json()
    rest = client.get(f"{M}/redemptions", headers=headers,
                      query_string={"limit": 1, "cursor": page["next_cursor"]}).get_json()
    assert [r["redeemed_at"] > rest["redemptions"][0]["redeemed_at"] for r in page["redemptions"]] == [True]
    assert rest["next_cursor"] is None


def _member(session, openid, now):
    return members.sign_in(session, openid=openid, unionid=None, now=now)[0].id
