"""Member answers that concern a store carry where it is: ``store`` {id, name, name_en, floor, floor_name, unit},
next to store_id, read in one query per list (no query per item)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from factories import Band, book, build_shop, live_deal, publish, staff_headers
from sqlalchemy import event, update

from mallapp.domain import checkin, coupons, merchants, purchases, venue_admin
from mallapp.domain.venue import Store

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

M = "/api/v1/merchant"


@contextmanager
def store_reads(rt) -> Iterator[list[str]]:
    """The SQL statements that read the stores table while the block runs."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if re.search(r"\bFROM stores\b|\bJOIN stores\b", statement):
            seen.append(statement)

    event.listen(rt.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(rt.engine, "before_cursor_execute", record)


@pytest.fixture
def shop(rt, venue, member) -> Any:
    """The test venue's coffee shop (星光咖啡 / Starlight Coffee, L1-02) and a second store of its merchant."""
    built = build_shop(rt, venue)
    with rt.sessions.begin() as s:
        venue_admin.update_store(s, built.store, {"name": "星光咖啡", "name_en": "Starlight Coffee"})
        s.execute(update(Store).where(Store.id == built.other_store).values(name_en="Harbour Books"))
    return built


def _coffee(shop) -> dict[str, Any]:
    return {"id": shop.store, "name": "星光咖啡", "name_en": "Starlight Coffee", "floor": 1, "floor_name": "L1",
            "unit": "L1-02"}


def test_member_deals_carry_their_store_location(client, rt, shop, member):
    live_deal(rt, shop)
    deals = client.get("/api/v1/deals", headers=member["headers"]).get_json()["deals"]
    assert [(d["store_id"], d["store"]) for d in deals] == [(shop.store, _coffee(shop))]


def test_claimed_coupons_and_the_wallet_carry_the_store_location_in_one_query(client, rt, shop, member):
    first = live_deal(rt, shop)
    second = live_deal(rt, shop, title="Two books, one price", store_id=shop.other_store,
                       store_ids=[shop.other_store])
    claimed = client.post(f"/api/v1/deals/{first}/claim", headers=member["headers"]).get_json()
    assert claimed["deal"]["store"] == _coffee(shop) and claimed["deal"]["store_id"] == shop.store
    client.post(f"/api/v1/deals/{second}/claim", headers=member["headers"])
    with store_reads(rt) as reads:
        wallet = client.get("/api/v1/me/coupons", headers=member["headers"]).get_json()["coupons"]
    assert {c["deal"]["store"]["unit"] for c in wallet} == {"L1-02", "L1-03"}
    assert {c["deal"]["store"]["name_en"] for c in wallet} == {"Starlight Coffee", "Harbour Books"}
    assert len(reads) == 1, reads


def test_queue_tickets_carry_the_restaurant_location(client, rt, merchant, members_api):
    with rt.sessions.begin() as s:
        store = venue_admin.create_store(s, name="川味小馆", name_en="Sichuan Bistro", unit="L3-03", category="dining",
                                         floor=3, x=30, y=6, merchant_id=merchant["id"], now=rt.now()).id
    cashier = staff_headers(client, merchant["headers"], "bistro-cashier", "cashier")
    assert client.post(f"{M}/stores/{store}/queue/open", json={}, headers=cashier).status_code == 200
    guest = members_api.sign_in(openid="o-queue-guest")
    where = {"id": store, "name": "川味小馆", "name_en": "Sichuan Bistro", "floor": 3, "floor_name": "L3",
             "unit": "L3-03"}
    taken = client.post(f"/api/v1/stores/{store}/queue/tickets", json={"party_size": 2}, headers=guest["headers"])
    assert taken.status_code == 201 and taken.get_json()["store"] == where
    ticket_id = taken.get_json()["id"]
    listed = client.get("/api/v1/me/queue-tickets", headers=guest["headers"]).get_json()["tickets"]
    assert [(t["store_id"], t["store"]) for t in listed] == [(store, where)]
    assert client.get(f"/api/v1/me/queue-tickets/{ticket_id}", headers=guest["headers"]).get_json()["store"] == where


def test_reservations_carry_the_restaurant_location(client, rt, member):
    with rt.sessions.begin() as s:
        merchant, _ = merchants.create(s, "Kids Fun Ltd", rt.now())
        store = venue_admin.create_store(s, name="童趣乐园", name_en="Kids Fun", unit="L3-02", category="kids",
                                         floor=3, x=10, y=24, merchant_id=merchant.id, now=rt.now()).id
        merchant_id = merchant.id
    slot, = publish(rt, merchant_id, store, ["12:00"], [Band(1, 4, 2)])
    booking = book(rt, member["member"]["id"], slot).reservation
    where = {"id": store, "name": "童趣乐园", "name_en": "Kids Fun", "floor": 3, "floor_name": "L3", "unit": "L3-02"}
    mine = client.get("/api/v1/me/reservations", headers=member["headers"]).get_json()["reservations"]
    assert [(r["store_id"], r["store_name"], r["store"]) for r in mine] == [(store, "童趣乐园", where)]
    one = client.get(f"/api/v1/me/reservations/{booking.id}", headers=member["headers"]).get_json()
    assert one["store"] == where


def test_ledger_entries_of_purchases_carry_the_store_and_others_none(client, rt, shop, member):
    member_id = member["member"]["id"]
    with rt.sessions.begin() as s:
        # The shop's merchant runs two stores: a purchase cannot say which; a one-store merchant's can.
        solo, _ = merchants.create(s, "Summit Sports", rt.now())
        sports = venue_admin.create_store(s, name="巅峰运动", name_en="Summit Sports", unit="L1-08", category="sports",
                                          floor=1, x=50, y=6, merchant_id=solo.id, now=rt.now()).id
        purchases.record_purchase(s, rt.settings, merchant_id=solo.id, member_id=member_id, receipt_no="r-1",
                                  amount_fen=20_000, occurred_at=rt.now(), now=rt.now())
        purchases.record_purchase(s, rt.settings, merchant_id=shop.merchant, member_id=member_id, receipt_no="r-2",
                                  amount_fen=10_000, occurred_at=rt.now(), now=rt.now())
        checkin.check_in(s, rt.settings, member_id, now=rt.now())
    with store_reads(rt) as reads:
        entries = client.get("/api/v1/me/points", headers=member["headers"]).get_json()["entries"]
    by_reason = {(e["reason"], e["delta"]): (e["store_id"], e["store"]) for e in entries}
    assert by_reason[("purchase", 20)] == (sports, {"id": sports, "name": "巅峰运动", "name_en": "Summit Sports",
                                                    "floor": 1, "floor_name": "L1", "unit": "L1-08"})
    assert by_reason[("purchase", 10)] == (None, None)
    assert [v for (reason, _), v in by_reason.items() if reason == "checkin"] == [(None, None)]
    assert len(reads) == 2, reads  # the purchases' stores, then their locations


def test_bonus_points_of_a_redeemed_coupon_carry_the_store_that_took_it(client, rt, shop, member):
    deal = live_deal(rt, shop, benefit={"kind": "bonus_points", "points": 50})
    code = client.post(f"/api/v1/deals/{deal}/claim", headers=member["headers"]).get_json()["code"]
    with rt.sessions.begin() as s:
        coupons.redeem(s, rt.settings, rt.secret, merchant_id=shop.merchant, store_id=shop.store, code=code,
                       request_id="till-1", now=rt.now())
    entries = client.get("/api/v1/me/points", headers=member["headers"]).get_json()["entries"]
    bonus = [e for e in entries if e["delta"] == 50]
    assert [(e["store_id"], e["store"]) for e in bonus] == [(shop.store, _coffee(shop))]
