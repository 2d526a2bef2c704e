"""Every error code the OpenAPI document lists is really answered, with the status it documents.

One scenario per documented code drives the API through the test client until it refuses with that
code. Each scenario names the status the API promises for it: the test fails when the answer differs
from that, or from what the document states (the raise site's class, mallapp.api.error_index), so a
raise site whose class changes fails here until the promise is changed on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from typing import Any

import pytest
from factories import (
    UUID,
    build_venue,
    parked_car_for_pay,
    parking_coupon_for,
    parking_history,
    reports_world,
    signed,
    small_graph,
)
from sqlalchemy import update

from mallapp.api.error_index import error_index
from mallapp.api.openapi import documented_errors, operations
from mallapp.domain import merchants, ops, venue_admin
from mallapp.domain.parking.models import ParkingPayment

SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the statuses do not depend on the database

M, OPS, ME = "/api/v1/merchant", "/api/v1/ops", "/api/v1/me"
PASSWORD = "a long enough passphrase"
TOMORROW = date(2026, 3, 11)  # the conftest clock is 10:00 on 10 March, mall time
SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10]]
LOGIN_PATH = "/sns/jscode2session"


pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class World:
    """What the scenarios drive: the client and, built on first use, callers and things to refuse."""

    client: Any
    rt: Any
    clock: Any
    emulator: Any
    members_api: Any
    merchant: dict[str, Any]
    ops_admin: dict[str, Any]

    # --- callers -------------------------------------------------------------------------------------
    def member(self, openid: str = "o-member-1") -> dict[str, Any]:
        return self.members_api.sign_in(openid=openid)

    @cached_property
    def me(self) -> dict[str, str]:
        return self.member()["headers"]

    @property
    def key(self) -> dict[str, str]:
        return self.merchant["headers"]

    @property
    def ops(self) -> dict[str, str]:
        return self.ops_admin["headers"]

    def staff(self, username: str, role: str, key: dict[str, str] | None = None) -> dict[str, Any]:
        added = self.client.post(f"{M}/staff", json={"username": username, "role": role, "password": PASSWORD},
                                 headers=key or self.key)
        assert added.status_code == 201, added.get_json()
        signed_in = self.client.post(f"{M}/auth", json={"username": username, "password": PASSWORD}).get_json()
        return {"id": added.get_json()["id"], "headers": _bearer(signed_in["token"])}

    @cached_property
    def manager(self) -> dict[str, Any]:
        return self.staff("shop-manager", "manager")

    @cached_property
    def cashier(self) -> dict[str, Any]:
        return self.staff("shop-cashier", "cashier")

    # --- the merchant's store, another merchant's --------------------------------------------------------
    @cached_property
    def store(self) -> int:
        with self.rt.sessions.begin() as s:
            return venue_admin.create_store(s, name="Noodle House", floor=1, x=0, y=0,
                                            merchant_id=self.merchant["id"], now=self.rt.now()).id

    @cached_property
    def other(self) -> dict[str, Any]:
        with self.rt.sessions.begin() as s:
            row, key = merchants.create(s, "Harbour Books", self.rt.now())
            store = venue_admin.create_store(s, name="Harbour", floor=1, x=9, y=0, merchant_id=row.id,
                                             now=self.rt.now()).id
        return {"id": row.id, "store": store, "headers": _bearer(key)}

    # --- points --------------------------------------------------------------------------------------
    def card(self, headers: dict[str, str] | None = None) -> str:
        return self.client.get(f"{ME}/card", headers=headers or self.me).get_json()["code"]

    def purchase(self, receipt_no: str = "R-1", amount_fen: int = 10_000, **over: Any):
        body = {"member_code": self.card(), "amount_fen": amount_fen, "receipt_no": receipt_no,
                "occurred_at": self.clock.now.isoformat(), **over}
        return self.client.post(f"{M}/purchases", json=body, headers=self.key)

    def refund(self, refund_no: str, amount_fen: int):
        return self.client.post(f"{M}/refunds", json={"receipt_no": "R-1", "refund_no": refund_no,
                                                      "amount_fen": amount_fen}, headers=self.key)

    def redeem_gift(self, key: str, gift_code: str = "coffee"):
        return self.client.post(f"{ME}/points/redemptions", json={"gift_code": gift_code},
                                headers={**self.me, "Idempotency-Key": key})

    # --- deals and coupons ---------------------------------------------------------------------------
    def deal_body(self, **over: Any) -> dict[str, Any]:
        return {"title": "Flat white for 5 yuan", "store_id": self.store,
                "starts_at": (self.clock.now - timedelta(hours=1)).isoformat(),
                "ends_at": (self.clock.now + timedelta(days=7)).isoformat(), "quota": 3,
                "benefit": {"kind": "amount_off", "amount_fen": 500}, **over}

    def new_deal(self, **over: Any):
        return self.client.post(f"{M}/deals", json=self.deal_body(**over), headers=self.key)

    def draft(self, **over: Any) -> int:
        created = self.new_deal(**over)
        assert created.status_code == 201, created.get_json()
        return created.get_json()["id"]

    def live_deal(self, **over: Any) -> int:
        deal_id = self.draft(**over)
        assert self.client.post(f"{M}/deals/{deal_id}/submit", headers=self.key).status_code == 200
        approved = self.client.post(f"{OPS}/deals/{deal_id}/approve", headers=self.ops)
        assert approved.get_json()["status"] == "live", approved.get_json()
        return deal_id

    def claim(self, deal_id: int, headers: dict[str, str] | None = None):
        return self.client.post(f"/api/v1/deals/{deal_id}/claim", headers=headers or self.me)

    def coupon(self, **over: Any) -> dict[str, Any]:
        claimed = self.claim(self.live_deal(**over))
        assert claimed.status_code == 201, claimed.get_json()
        return claimed.get_json()

    def redeem(self, request_id: str = "till-1", headers: dict[str, str] | None = None, **body: Any):
        return self.client.post(f"{M}/coupons/redeem", json={"store_id": self.store, "request_id": request_id,
                                                              **body}, headers=headers or self.key)

    # --- reservations --------------------------------------------------------------------------------
    def publish(self, **over: Any):
        body = {"first_day": TOMORROW.isoformat(), "times": ["12:00", "18:00"], "duration_minutes": 90,
                "bands": [{"min_party": 1, "max_party": 2, "tables": 2}, {"min_party": 3, "max_party": 4,
                                                                          "tables": 1}], **over}
        return self.client.post(f"{M}/stores/{self.store}/reservation-slots", json=body, headers=self.key)

    @cached_property
    def slots(self) -> dict[str, int]:
        """Tomorrow's slots by "HH:MM/min_party" (UTC: mall time less 8 hours)."""
        done = self.publish()
        assert done.status_code == 200, done.get_json()
        return {f"{int(s['starts_at'][11:13]) + 8:02}:00/{s['min_party']}": s["id"] for s in done.get_json()["slots"]}

    def book(self, slot: str, party: int = 2, request_id: str = "r-1", headers: dict[str, str] | None = None):
        return self.client.post(f"{ME}/reservations", json={"slot_id": self.slots[slot], "party_size": party,
                                                             "request_id": request_id}, headers=headers or self.me)

    def booking(self, slot: str = "12:00/1") -> int:
        booked = self.book(slot)
        assert booked.status_code == 201, booked.get_json()
        return booked.get_json()["id"]

    # --- queues --------------------------------------------------------------------------------------
    @cached_property
    def queue(self) -> str:
        url = f"{M}/stores/{self.store}/queue"
        assert self.client.post(f"{url}/open", json={}, headers=self.key).status_code == 200
        return url

    def take(self, party: int = 2, headers: dict[str, str] | None = None):
        assert self.queue
        return self.client.post(f"/api/v1/stores/{self.store}/queue/tickets", json={"party_size": party},
                                headers=headers or self.me)

    def ticket(self) -> int:
        taken = self.take()
        assert taken.status_code == 201, taken.get_json()
        return taken.get_json()["id"]

    # --- the venue (ops) -----------------------------------------------------------------------------
    def ops_post(self, path: str, body: dict[str, Any]):
        return self.client.post(f"{OPS}{path}", json=body, headers=self.ops)

    def made(self, path: str, body: dict[str, Any]) -> int:
        created = self.ops_post(path, body)
        assert created.status_code == 201, created.get_json()
        return created.get_json()["id"]

    def zone(self, **over: Any) -> int:
        return self.made("/zones", {"name": "Atrium", "kind": "area", "floor": 1, "polygon": SQUARE, **over})

    def beacon_body(self, **over: Any) -> dict[str, Any]:
        return {"uuid": UUID, "major": 1, "minor": 1, "floor": 1, "x": 1.0, "y": 1.0, **over}

    @cached_property
    def venue(self):
        return build_venue(self.rt)

    def gateway(self, payload: dict[str, Any] | None = None, at=None, key: str | None = None, nonce=None,
                body: bytes | None = None):
        sent, headers = signed(key or self.venue.gateway_key, payload or {"sightings": [self.sighting()]},
                               at or self.clock.now, nonce)
        return self.client.post("/api/v1/gateway/sightings", data=body or sent, headers=headers)

    def sighting(self, **over: Any) -> dict[str, Any]:
        return {"t": self.clock.now.timestamp(), "kind": "ibeacon", "rssi": -70, "uuid": UUID, "major": 1,
                "minor": 1, "measured_power": -59, "address": "C1:00:00:00:00:01", **over}

    def sightings(self, *beacons: dict[str, Any], **body: Any):
        return self.client.post("/api/v1/sightings", json={"beacons": list(beacons), **body}, headers=self.me)


def _beacon(**over: Any) -> dict[str, Any]:
    return {"uuid": UUID, "major": 1, "minor": 1, "rssi": -60, **over}


@dataclass(frozen=True)
class Scenario:
    status: int  # what the API promises for the code
    run: Callable[[World], Any]
    settings: dict[str, Any] | None = None


SCENARIOS: dict[str, Scenario] = {}


def scenario(code: str, status: int, settings: dict[str, Any] | None = None):
    def register(run: Callable[[World], Any]) -> Callable[[World], Any]:
        assert code not in SCENARIOS, code
        SCENARIOS[code] = Scenario(status, run, settings)
        return run
    return register


def _repeat(times: int, call: Callable[[], Any]):
    response = None
    for _ in range(times):
        response = call()
    return response


# --- members: sign-in, profile, points, check-in ------------------------------------------------------

scenario("wechat.invalid_code", 400)(lambda w: w.client.post("/api/v1/auth/wechat", json={"code": "bogus"}))


@scenario("wechat.code_used", 409)
def _(w):
    code = w.emulator.login()
    w.client.post("/api/v1/auth/wechat", json={"code": code})
    return w.client.post("/api/v1/auth/wechat", json={"code": code})


@scenario("wechat.rate_limited", 429)
def _(w):
    w.emulator.script(LOGIN_PATH, {"errcode": 45011, "errmsg": "api minute-quota reach limit"})
    return w.client.post("/api/v1/auth/wechat", json={"code": w.emulator.login()})


@scenario("wechat.unreachable", 502)
def _(w):
    w.emulator.script_status(LOGIN_PATH, 503)
    return w.client.post("/api/v1/auth/wechat", json={"code": w.emulator.login()})


@scenario("member.birthday_locked", 409)
def _(w):
    w.client.patch(ME, json={"birthday": "1990-05-17"}, headers=w.me)
    return w.client.patch(ME, json={"birthday": "1991-01-01"}, headers=w.me)


scenario("points.insufficient", 422)(lambda w: w.redeem_gift("k1"))
scenario("gift.not_found", 404)(lambda w: w.redeem_gift("k1", "yacht"))
scenario("request.idempotency_key_required", 400)(lambda w: w.client.post(
    f"{ME}/points/redemptions", json={"gift_code": "coffee"}, headers=w.me))


@scenario("points.idempotency_mismatch", 409)
def _(w):
    assert w.purchase(amount_fen=10_000_000).status_code == 201
    assert w.redeem_gift("k1", "coffee").status_code == 201
    return w.redeem_gift("k1", "tote")


@scenario("checkin.already_today", 409)
def _(w):
    w.client.post("/api/v1/checkins", json={}, headers=w.me)
    return w.client.post("/api/v1/checkins", json={}, headers=w.me)


_LOCATION = {"mall": {"checkin_requires_location": True}}
scenario("checkin.location_required", 400, _LOCATION)(
    lambda w: w.client.post("/api/v1/checkins", json={}, headers=w.me))
scenario("checkin.too_far", 422, _LOCATION)(lambda w: w.client.post("/api/v1/checkins", headers=w.me, json={
    "latitude": w.rt.settings.mall.latitude + 0.01, "longitude": w.rt.settings.mall.longitude}))

# --- the till: purchases and refunds --------------------------------------------------------------------

scenario("card.invalid", 400)(lambda w: w.purchase(member_code="NOT-A-CARD"))


@scenario("card.expired", 400)
def _(w):
    card = w.card()
    w.clock.advance(seconds=w.rt.settings.auth.card_ttl_s + 1)
    return w.purchase(member_code=card)


@scenario("purchase.receipt_conflict", 409)
def _(w):
    w.purchase()
    return w.purchase(amount_fen=20_000)


scenario("purchase.time_out_of_range", 422)(
    lambda w: w.purchase(occurred_at=(w.clock.now + timedelta(days=1)).isoformat()))
scenario("purchase.not_found", 404)(lambda w: w.client.get(f"{M}/purchases/none", headers=w.key))


@scenario("refund.exceeds_purchase", 422)
def _(w):
    w.purchase()
    return w.refund("F1", 20_000)


@scenario("refund.number_conflict", 409)
def _(w):
    w.purchase()
    w.refund("F1", 5_000)
    return w.refund("F1", 1_000)


# --- staff and password sign-in ----------------------------------------------------------------------

scenario("merchant.bad_credentials", 401)(lambda w: w.client.post(f"{M}/auth", json={
    "username": "nobody", "password": "wrong"}))
scenario("ops.bad_credentials", 401)(lambda w: w.client.post(f"{OPS}/auth", json={
    "username": w.ops_admin["username"], "password": "wrong"}))
scenario("auth.too_many_attempts", 429)(lambda w: _repeat(
    w.rt.settings.auth.sign_in_attempts + 1,
    lambda: w.client.post(f"{M}/auth", json={"username": "nobody", "password": "wrong"})))
scenario("ops.user_not_found", 404)(lambda w: w.client.post(f"{OPS}/users/999999/unlock", headers=w.ops))
scenario("merchant.role_required", 403)(lambda w: w.client.get(f"{M}/deals", headers=w.cashier["headers"]))


@scenario("staff.username_taken", 409)
def _(w):
    w.staff("shop-cashier", "cashier")
    return w.client.post(f"{M}/staff", json={"username": "shop-cashier", "role": "cashier", "password": PASSWORD},
                         headers=w.other["headers"])


scenario("staff.not_found", 404)(lambda w: w.client.patch(f"{M}/staff/4242", json={"active": False},
                                                          headers=w.key))
scenario("staff.self_lockout", 409)(lambda w: w.client.patch(
    f"{M}/staff/{w.manager['id']}", json={"active": False}, headers=w.manager["headers"]))

# --- deals and coupons --------------------------------------------------------------------------------

scenario("deal.not_found", 404)(lambda w: w.claim(999_999))
scenario("deal.store_not_yours", 422)(lambda w: w.new_deal(store_id=w.other["store"]))
scenario("deal.invalid_window", 400)(lambda w: w.new_deal(ends_at=(w.clock.now - timedelta(days=1)).isoformat()))
scenario("venue.unknown_zone", 422)(lambda w: w.new_deal(targeting={"zone_ids": [999]}))
scenario("venue.unknown_store", 422)(lambda w: w.new_deal(targeting={"store_ids": [999]}))
scenario("venue.unknown_sale_item", 422)(lambda w: w.new_deal(targeting={"sale_item_ids": [999]}))
scenario("deal.target_not_yours", 422)(lambda w: w.new_deal(targeting={"store_ids": [w.other["store"]]}))
scenario("deal.invalid_state", 409)(lambda w: w.client.post(f"{M}/deals/{w.draft()}/pause", headers=w.key))


@scenario("deal.terms_locked", 409)
def _(w):
    deal_id = w.live_deal()
    w.claim(deal_id)
    return w.client.patch(f"{M}/deals/{deal_id}", json={"benefit": {"kind": "percent_off", "percent": 50}},
                          headers=w.key)


@scenario("deal.quota_below_claimed", 422)
def _(w):
    deal_id = w.live_deal(per_member_limit=2)
    w.claim(deal_id)
    w.claim(deal_id)
    return w.client.patch(f"{M}/deals/{deal_id}", json={"quota": 1}, headers=w.key)


scenario("deal.not_available", 422)(lambda w: w.claim(w.live_deal(
    starts_at=(w.clock.now + timedelta(days=1)).isoformat())))
scenario("deal.member_not_eligible", 422)(lambda w: w.claim(w.live_deal(
    targeting={"member_rule": "birthday_month"})))


@scenario("deal.sold_out", 422)
def _(w):
    deal_id = w.live_deal(quota=1)
    w.claim(deal_id)
    return w.claim(deal_id, w.member("o-member-2")["headers"])


@scenario("deal.limit_reached", 422)
def _(w):
    deal_id = w.live_deal()
    w.claim(deal_id)
    return w.claim(deal_id)


scenario("merchant.not_found", 404)(lambda w: w.client.patch(f"{OPS}/merchants/999", headers=w.ops,
                                                             json={"auto_approve_deals": True}))


@scenario("ops.admin_required", 403)
def _(w):
    with w.rt.sessions.begin() as session:
        ops.create_user(session, "ops-viewer", "viewer", PASSWORD, w.rt.now())
    token = w.client.post(f"{OPS}/auth", json={"username": "ops-viewer", "password": PASSWORD}).get_json()["token"]
    return w.client.post(f"{OPS}/zones", headers=_bearer(token),
                         json={"name": "Atrium", "kind": "area", "floor": 1, "polygon": SQUARE})


scenario("coupon.not_found", 404)(lambda w: w.redeem(code="NOPE-NOPE-NO"))
scenario("coupon.invalid_qr", 400)(lambda w: w.redeem(qr=w.coupon()["qr"][:-4] + "AAAA"))
scenario("coupon.wrong_store", 422)(lambda w: w.redeem(code=w.coupon()["code"], store_id=_second_store(w)))


def _second_store(w: World) -> int:
    with w.rt.sessions.begin() as s:
        return venue_admin.create_store(s, name="Noodle House 2", floor=2, x=0, y=0, merchant_id=w.merchant["id"],
                                        now=w.rt.now()).id


@scenario("coupon.already_used", 409)
def _(w):
    code = w.coupon()["code"]
    w.redeem(code=code)
    return w.redeem("till-2", code=code)


@scenario("coupon.not_yet_valid", 422)
def _(w):
    code = w.coupon()["code"]
    w.clock.advance(hours=-2)  # the till's clock is before the deal's start
    return w.redeem(code=code)


@scenario("coupon.expired", 422)
def _(w):
    code = w.coupon()["code"]
    w.clock.advance(days=8)
    return w.redeem(code=code)


# --- delivery ------------------------------------------------------------------------------------------

scenario("notification.not_found", 404)(lambda w: w.client.post(f"{ME}/inbox/99999999/read", headers=w.me))
scenario("store.not_found", 404)(lambda w: w.client.put(f"{ME}/follows/999999", headers=w.me))

# --- restaurant queues -----------------------------------------------------------------------------------


@scenario("queue.closed", 409)
def _(w):
    w.client.post(f"{w.queue}/close", json={"bands": ["A"]}, headers=w.key)
    return w.take(2)


scenario("queue.party_too_large", 422)(lambda w: w.take(w.rt.settings.queue.max_party + 1))


@scenario("queue.no_band", 422)
def _(w):
    bands = [{"code": "A", "label": "1-2", "min_party": 1, "max_party": 2}, {"code": "C", "label": "6+",
                                                                             "min_party": 6}]
    assert w.client.put(f"{M}/stores/{w.store}/queue/bands", json={"bands": bands}, headers=w.key).status_code == 200
    return w.take(4)


@scenario("queue.ticket_active", 409)
def _(w):
    w.take()
    return w.take()


scenario("queue.ticket_not_found", 404)(lambda w: w.client.get(f"{ME}/queue-tickets/999999", headers=w.me))


@scenario("queue.ticket_closed", 409)
def _(w):
    ticket = w.ticket()
    w.client.post(f"{ME}/queue-tickets/{ticket}/cancel", headers=w.me)
    return w.client.post(f"{w.queue}/tickets/{ticket}/seat", headers=w.key)


scenario("queue.band_not_found", 404)(lambda w: w.client.post(f"{w.queue}/call", headers=w.key, json={
    "band": "Z", "request_id": "call-1"}))
scenario("queue.nobody_waiting", 409)(lambda w: w.client.post(f"{w.queue}/call", headers=w.key, json={
    "band": "A", "request_id": "call-1"}))
scenario("queue.invalid_bands", 400)(lambda w: w.client.put(f"{M}/stores/{w.store}/queue/bands", headers=w.key, json={
    "bands": [{"code": "A", "label": "1-4", "min_party": 1, "max_party": 4},
              {"code": "B", "label": "3+", "min_party": 3}]}))


@scenario("queue.busy", 409)
def _(w):
    w.take()
    return w.client.put(f"{M}/stores/{w.store}/queue/bands", headers=w.key, json={
        "bands": [{"code": "A", "label": "anyone", "min_party": 1}]})


# --- table reservations ------------------------------------------------------------------------------------

scenario("reservation.store_not_found", 404)(lambda w: w.client.get("/api/v1/stores/999/reservation-slots",
                                                                    headers=w.me))
scenario("reservation.slot_not_found", 404)(lambda w: w.client.post(f"{ME}/reservations", headers=w.me, json={
    "slot_id": 999_999, "party_size": 2, "request_id": "r-1"}))
scenario("reservation.not_found", 404)(lambda w: w.client.get(f"{ME}/reservations/999999", headers=w.me))
scenario("reservation.party_size_mismatch", 422)(lambda w: w.book("12:00/1", party=3))


@scenario("reservation.slot_not_available", 422)
def _(w):
    assert w.slots
    w.clock.advance(days=1, hours=3)  # 13:00 tomorrow: the 12:00 slot has started
    return w.book("12:00/1")


@scenario("reservation.full", 409)
def _(w):
    w.book("12:00/3", party=3)
    return w.book("12:00/3", party=3, headers=w.member("o-member-2")["headers"])


@scenario("reservation.overlap", 409)
def _(w):
    w.book("12:00/1")
    return w.book("12:00/3", party=3, request_id="r-2")


@scenario("reservation.too_many", 422, {"reservations": {"max_upcoming_per_member": 1}})
def _(w):
    w.book("12:00/1")
    return w.book("18:00/1", request_id="r-2")


@scenario("reservation.request_id_reused", 409)
def _(w):
    w.book("12:00/1")
    return w.book("18:00/1")


@scenario("reservation.not_changeable", 409)
def _(w):
    booked = w.booking()
    w.clock.advance(days=1, hours=3)
    return w.client.post(f"{ME}/reservations/{booked}/cancel", headers=w.me)


@scenario("reservation.not_active", 409)
def _(w):
    booked = w.booking()
    w.client.post(f"{ME}/reservations/{booked}/cancel", headers=w.me)
    return w.client.post(f"{M}/reservations/{booked}/arrive", headers=w.key)


scenario("reservation.not_today", 422)(lambda w: w.client.post(f"{M}/reservations/{w.booking()}/arrive",
                                                               headers=w.key))
scenario("reservation.invalid_range", 400)(lambda w: w.publish(last_day="2026-03-01"))
scenario("reservation.invalid_bands", 400)(lambda w: w.publish(bands=[{"min_party": 3, "max_party": 2,
                                                                       "tables": 1}]))
scenario("reservation.too_many_slots", 400)(lambda w: w.publish(
    last_day=(TOMORROW + timedelta(days=80)).isoformat(), times=[f"{h:02}:{m:02}" for h in range(24)
                                                                 for m in (0, 30)]))


@scenario("reservation.slot_in_use", 409)
def _(w):
    w.booking()
    return w.publish(duration_minutes=60)


@scenario("reservation.capacity_below_booked", 422)
def _(w):
    w.booking()
    return w.client.patch(f"{M}/reservation-slots/{w.slots['12:00/1']}", json={"capacity": 0}, headers=w.key)


# --- the venue (ops) -----------------------------------------------------------------------------------------

scenario("zone.not_found", 404)(lambda w: w.client.get(f"{OPS}/zones/999", headers=w.ops))
scenario("zone.invalid_polygon", 400)(lambda w: w.ops_post("/zones", {"name": "Z", "kind": "area", "floor": 1,
                                                                      "polygon": [[0, 0], [1, 1], [2, 2]]}))
scenario("zone.store_required", 422)(lambda w: w.ops_post("/zones", {"name": "Z", "kind": "store", "floor": 1,
                                                                     "polygon": SQUARE}))
scenario("venue.unknown_merchant", 422)(lambda w: w.ops_post("/stores", {"name": "X", "floor": 1, "x": 0, "y": 0,
                                                                         "merchant_id": 999}))
scenario("sale_item.not_found", 404)(lambda w: w.client.get(f"{OPS}/items/999", headers=w.ops))
scenario("beacon.not_found", 404)(lambda w: w.client.get(f"{OPS}/beacons/999", headers=w.ops))
scenario("gateway.not_found", 404)(lambda w: w.client.get(f"{OPS}/gateways/999", headers=w.ops))
scenario("beacon.unknown_uuid", 422)(lambda w: w.ops_post("/beacons", w.beacon_body(
    uuid="e2c56db5-dffb-48d2-b060-d0f5a71096e0")))


@scenario("beacon.duplicate", 409)
def _(w):
    w.made("/beacons", w.beacon_body())
    return w.ops_post("/beacons", w.beacon_body())


@scenario("beacon.item_not_in_store", 422)
def _(w):
    store = w.made("/stores", {"name": "A", "floor": 1, "x": 0, "y": 0})
    item = w.made(f"/stores/{w.made('/stores', {'name': 'B', 'floor': 1, 'x': 0, 'y': 0})}/items", {"name": "Mug"})
    return w.ops_post("/beacons", w.beacon_body(store_id=store, sale_item_id=item))


@scenario("store.in_use", 409)
def _(w):
    store = w.made("/stores", {"name": "A", "floor": 1, "x": 0, "y": 0})
    w.zone(kind="store", store_id=store)
    return w.client.delete(f"{OPS}/stores/{store}", headers=w.ops)


@scenario("sale_item.in_use", 409)
def _(w):
    store = w.made("/stores", {"name": "A", "floor": 1, "x": 0, "y": 0})
    item = w.made(f"/stores/{store}/items", {"name": "Mug"})
    w.made("/beacons", w.beacon_body(sale_item_id=item))
    return w.client.delete(f"{OPS}/items/{item}", headers=w.ops)


scenario("footfall.invalid_range", 400)(lambda w: w.client.get(f"{OPS}/footfall", headers=w.ops, query_string={
    "since": "2026-03-12T00:00:00Z"}))
scenario("dead_letters.unknown_stream", 422)(lambda w: w.client.post(f"{OPS}/dead-letters/replay", headers=w.ops,
                                                                  json={"stream": "members"}))

# --- sightings and gateways ----------------------------------------------------------------------------------

scenario("sightings.unknown_uuid", 422)(lambda w: w.sightings(_beacon(uuid="11111111-2222-3333-4444-555555555555")))
scenario("sightings.impossible_rssi", 400)(lambda w: w.sightings(_beacon(rssi=12)))
scenario("sightings.invalid_beacon", 400)(lambda w: w.sightings(_beacon(major=70000)))
scenario("sightings.batch_too_large", 413)(lambda w: w.sightings(*[_beacon()] * 101))
scenario("sightings.stale", 422)(lambda w: w.sightings(_beacon(), ts=1_000))
scenario("sightings.from_future", 422)(lambda w: w.sightings(_beacon(), ts=int(w.clock.now.timestamp() * 1000)
                                                             + 120_000))
scenario("sightings.rate_limited", 429)(lambda w: _repeat(w.rt.settings.beacons.ingest.member_batches_per_minute + 1,
                                                          lambda: w.sightings(_beacon())))
scenario("gateway.unsigned", 401)(lambda w: w.client.post("/api/v1/gateway/sightings", json={"sightings": []}))
scenario("gateway.bad_key", 401)(lambda w: w.gateway(key=w.venue.gateway_key.replace(".1.", ".2.")))
scenario("gateway.stale_signature", 401)(lambda w: w.gateway(at=w.clock.now - timedelta(minutes=6)))


@scenario("gateway.bad_signature", 401)
def _(w):
    body, headers = signed(w.venue.gateway_key, {"sightings": [w.sighting()]}, w.clock.now)
    return w.client.post("/api/v1/gateway/sightings", data=body.replace(b"-70", b"-40"), headers=headers)


@scenario("gateway.replayed", 409)
def _(w):
    body, headers = signed(w.venue.gateway_key, {"sightings": [w.sighting()]}, w.clock.now)
    w.client.post("/api/v1/gateway/sightings", data=body, headers=headers)
    return w.client.post("/api/v1/gateway/sightings", data=body, headers=headers)


# --- the service desk (docs/service-desk.md) ---------------------------------------------------------


def _desk_viewer(w) -> dict[str, str]:
    with w.rt.sessions.begin() as s:
        ops.create_user(s, "desk-viewer", "viewer", PASSWORD, w.rt.now())
    token = w.client.post(f"{OPS}/auth", json={"username": "desk-viewer", "password": PASSWORD}).get_json()["token"]
    return _bearer(token)


def _member_id(w) -> int:
    return w.client.get(f"{ME}", headers=w.me).get_json()["id"]


def _adjust(w, points: int, reason: str = "a lost receipt", headers: dict[str, str] | None = None):
    return w.client.post(f"{OPS}/members/{_member_id(w)}/points-adjustments", headers=headers or w.ops,
                         json={"points": points, "reason": reason, "idempotency_key": "adj-1"})


scenario("ops.desk_required", 403)(lambda w: _adjust(w, 10, headers=_desk_viewer(w)))


@scenario("desk.idempotency_mismatch", 409)
def _(w):
    _adjust(w, 10)
    return _adjust(w, 11)


scenario("member.not_found", 404)(lambda w: w.client.get(f"{OPS}/members/999999", headers=w.ops))
scenario("gift.pickup_not_found", 404)(lambda w: w.client.get(f"{OPS}/gifts/NOSUCHCODE", headers=w.ops))


@scenario("gift.already_handed_over", 409)
def _(w):
    _adjust(w, 500)
    code = w.redeem_gift("g-1").get_json()["pickup_code"]
    w.client.post(f"{OPS}/gifts/{code}/hand-over", json={"request_id": "desk-1"}, headers=w.ops)
    return w.client.post(f"{OPS}/gifts/{code}/hand-over", json={"request_id": "desk-2"}, headers=w.ops)


# --- mall-wide offers and minimum spend ----------------------------------------------------------------


def _mall_coupon(w, **over: Any) -> str:
    body = {"title": "Mall-wide 20 off 100", "store_id": w.store, "participating_store_ids": [w.store],
            "starts_at": (w.clock.now - timedelta(hours=1)).isoformat(),
            "ends_at": (w.clock.now + timedelta(days=7)).isoformat(), "quota": 3,
            "benefit": {"kind": "amount_off", "amount_fen": 2000}, **over}
    created = w.ops_post("/deals", body)
    assert created.status_code == 201, created.get_json()
    return w.claim(created.get_json()["id"]).get_json()["code"]


scenario("ops.marketing_required", 403)(lambda w: w.client.post(f"{OPS}/deals", json={}, headers=_desk_viewer(w)))
scenario("coupon.store_not_participating", 422)(lambda w: w.redeem(code=_mall_coupon(w), store_id=w.other["store"],
                                                                    headers=w.other["headers"]))
scenario("coupon.store_not_yours", 403)(lambda w: w.redeem(code=_mall_coupon(w), headers=w.other["headers"]))
scenario("coupon.amount_required", 422)(lambda w: w.redeem(code=_mall_coupon(w, min_spend_fen=10_000)))
scenario("coupon.below_min_spend", 422)(lambda w: w.redeem(code=_mall_coupon(w, min_spend_fen=10_000),
                                                           amount_fen=9_999))


# --- campaigns -----------------------------------------------------------------------------------------------

_CAMPAIGN = {"name": "Spring member day", "timing": "now",
             "steps": [{"offer": {"kind": "message", "title": "春季会员日"}}]}


def _campaign(w, **over: Any):
    return w.client.post(f"{OPS}/campaigns", json={**_CAMPAIGN, **over}, headers=w.ops)


scenario("campaign.invalid_audience", 400)(lambda w: w.client.post(
    f"{OPS}/campaigns/audience-count", json={"p_alive_min": 0.9, "p_alive_max": 0.1}, headers=w.ops))
scenario("campaign.invalid_offer", 400)(lambda w: _campaign(
    w, steps=[{"offer": {"kind": "points", "title": "积分"}}]))
scenario("campaign.invalid_timing", 400)(lambda w: _campaign(w, timing="lifecycle"))
scenario("campaign.deal_not_live", 422)(lambda w: _campaign(
    w, steps=[{"offer": {"kind": "coupon", "title": "券", "deal_id": w.draft()}}]))
scenario("campaign.not_found", 404)(lambda w: w.client.get(f"{OPS}/campaigns/999999/report", headers=w.ops))


@scenario("campaign.invalid_state", 409)
def _(w):
    made = _campaign(w).get_json()["id"]
    w.client.post(f"{OPS}/campaigns/{made}/cancel", headers=w.ops)
    return w.client.post(f"{OPS}/campaigns/{made}/launch", headers=w.ops)


# --- member segments ------------------------------------------------------------------------------------------


def _ops_viewer(w: World) -> dict[str, str]:
    with w.rt.sessions.begin() as session:
        ops.create_user(session, "segments-viewer", "viewer", PASSWORD, w.rt.now())
    token = w.client.post(f"{OPS}/auth", json={"username": "segments-viewer", "password": PASSWORD}).get_json()
    return _bearer(token["token"])


scenario("segments.run_not_found", 404)(lambda w: w.client.get(f"{OPS}/segments/runs/999", headers=w.ops))


# --- member reports ----------------------------------------------------------------------------------------

scenario("reports.not_computed", 404)(lambda w: w.client.get(f"{OPS}/reports/cohorts", headers=w.ops))
scenario("reports.invalid_range", 400)(lambda w: w.client.get(
    f"{OPS}/reports/new-members?since=2026-03-02&until=2026-03-01", headers=w.ops))


@scenario("reports.invalid_cursor", 400)
def _(w):
    reports_world(w.rt)
    return w.client.get(f"{OPS}/reports/lost?cursor=not-a-cursor", headers=w.ops)


# --- parking (parkcore): car parks, plates, find-my-car, the car park's webhook ------------------------------

PARK_OPS = f"{OPS}/car-parks"
_CARPARK = {"carpark": {"app_id": "park-app", "secret": "park-secret"}}


def _car_park(w: World) -> int:
    from factories import parkcore_car_park

    return parkcore_car_park(w.rt)


def _car_park_body(**over: Any) -> dict[str, Any]:
    from factories import PARKCORE_TARIFF

    return {"code": "P9", "name": "P9", "vendor_park_code": "P009", "tariff": PARKCORE_TARIFF, **over}


def _parked(w: World, plate: str = "沪A12345") -> int:
    from factories import parkcore_parked_car

    park = _car_park(w)
    w.client.post(f"{ME}/plates", json={"plate": plate}, headers=w.me)
    parkcore_parked_car(w.rt, park, plate, member_id=w.member()["member"]["id"])
    return park


def _notify(w: World, secret: str = "park-secret", **over: Any):
    from mallapp.adapters.carpark_open import sign

    stamp = int(w.clock.now.timestamp() * 1000)
    body = {"event": "entry", "plateNo": "沪A12345", "orderNo": "P001-1", "entryTime": stamp, "appId": "park-app",
            "parkCode": "P001", "timestamp": stamp, "nonce": "nonce-1", **over}
    body["sign"] = sign(body, secret)
    return w.client.post("/api/v1/parking/carpark/notify", json=body)


scenario("parking.tariff_invalid", 400)(lambda w: w.client.post(PARK_OPS, json=_car_park_body(tariff={"plans": {}}),
                                                                headers=w.ops))
scenario("parking.car_park_not_found", 404)(lambda w: w.client.get(f"{PARK_OPS}/999", headers=w.ops))
scenario("parking.rules_invalid", 400)(lambda w: w.client.put(f"{PARK_OPS}/{_car_park(w)}/rules",
                                                              json={"order": ["tier", "tier"]}, headers=w.ops))
scenario("parking.level_not_found", 404)(lambda w: w.client.patch(f"{PARK_OPS}/{_car_park(w)}/levels/999",
                                                                  json={"spaces": 1}, headers=w.ops))
scenario("parking.bay_invalid", 400)(lambda w: w.client.post(f"{PARK_OPS}/{_car_park(w)}/bays",
                                                             json={"code": "B1C001"}, headers=w.ops))
scenario("parking.level_unknown", 422)(lambda w: w.client.post(f"{PARK_OPS}/{_car_park(w)}/bays",
                                                               json={"code": "B7-C001"}, headers=w.ops))
scenario("parking.bay_exists", 409)(lambda w: w.client.post(f"{PARK_OPS}/{_car_park(w)}/bays",
                                                            json={"code": "B1-C001"}, headers=w.ops))
scenario("parking.bay_range_invalid", 400)(lambda w: w.client.post(
    f"{PARK_OPS}/{_car_park(w)}/bays/range", json={"prefix": "B1-C", "first": 9, "last": 2}, headers=w.ops))
scenario("parking.bay_not_found", 404)(lambda w: w.client.get(f"{PARK_OPS}/{_car_park(w)}/bays/999/qr", headers=w.ops))
scenario("parking.level_exists", 409)(lambda w: w.client.post(
    f"{PARK_OPS}/{_car_park(w)}/levels", json={"code": "B1", "name": "B1", "floor": -1, "spaces": 1}, headers=w.ops))
@scenario("parking.gate_exists", 409)
def _(w):
    url = f"{PARK_OPS}/{_car_park(w)}/gates"
    return _repeat(2, lambda: w.client.post(url, json={"code": "IN-1", "name": "in", "kind": "entrance"}, headers=w.ops))


@scenario("parking.car_park_exists", 409)
def _(w):
    w.client.post(PARK_OPS, json=_car_park_body(), headers=w.ops)
    return w.client.post(PARK_OPS, json=_car_park_body(), headers=w.ops)


scenario("parking.plate_invalid", 400)(lambda w: w.client.post(f"{ME}/plates", json={"plate": "ABC"}, headers=w.me))
scenario("parking.plate_not_bound", 404)(lambda w: w.client.delete(f"{ME}/plates/沪A12345", headers=w.me))


@scenario("parking.plate_taken", 409)
def _(w):
    w.client.post(f"{ME}/plates", json={"plate": "沪A12345"}, headers=w.me)
    return w.client.post(f"{ME}/plates", json={"plate": "沪A12345"}, headers=w.member("o-other")["headers"])


@scenario("parking.plate_limit", 422)
def _(w):
    w.client.post(f"{ME}/plates", json={"plate": "沪A12345"}, headers=w.me)
    return w.client.post(f"{ME}/plates", json={"plate": "沪A54321"}, headers=w.me)


@scenario("parking.plate_cooling_down", 422)
def _(w):
    w.client.post(f"{ME}/plates", json={"plate": "沪A12345"}, headers=w.me)
    w.client.delete(f"{ME}/plates/沪A12345", headers=w.me)
    return w.client.post(f"{ME}/plates", json={"plate": "沪A12345"}, headers=w.member("o-other")["headers"])


@scenario("parking.plate_changes_exhausted", 422, settings={"parking": {"plate_binds_per_30_days": 1}})
def _(w):
    w.client.post(f"{ME}/plates", json={"plate": "沪A12345"}, headers=w.me)
    w.client.delete(f"{ME}/plates/沪A12345", headers=w.me)
    return w.client.post(f"{ME}/plates", json={"plate": "沪A54321"}, headers=w.me)


scenario("parking.bay_input", 400)(lambda w: w.client.post(f"{ME}/parking/car/bay", json={}, headers=w.me))
scenario("parking.not_parked", 404)(lambda w: w.client.post(f"{ME}/parking/car/bay", json={"bay": "B1-C001"},
                                                            headers=w.me))


@scenario("parking.qr_invalid", 400)
def _(w):
    _parked(w)
    return w.client.post(f"{ME}/parking/car/bay", json={"qr": "PB1.1.1.forged"}, headers=w.me)


@scenario("parking.plate_required", 422)
def _(w):
    from factories import parkcore_parked_car

    from mallapp.domain.members import Member

    park = _parked(w)
    with w.rt.sessions.begin() as session:
        session.get(Member, _member_id(w)).tier = "vip"
    w.client.post(f"{ME}/plates", json={"plate": "沪B54321"}, headers=w.me)
    parkcore_parked_car(w.rt, park, "沪B54321")
    return w.client.post(f"{ME}/parking/car/bay", json={"bay": "B1-C001"}, headers=w.me)


scenario("parking.notify_app_unknown", 403, _CARPARK)(lambda w: _notify(w, appId="someone-else"))
scenario("parking.notify_signature", 403, _CARPARK)(lambda w: _notify(w, secret="not-the-secret"))
scenario("parking.notify_stale", 403, _CARPARK)(lambda w: _notify(w, timestamp=0))
scenario("parking.car_park_unknown", 404, _CARPARK)(lambda w: _notify(w))
scenario("parking.notify_invalid", 400, _CARPARK)(lambda w: _car_park(w) and _notify(w, entryTime=None))


@scenario("parking.notify_replayed", 409, _CARPARK)
def _(w):
    _car_park(w)
    _notify(w)
    return _notify(w)


@scenario("parking.times_out_of_order", 400, _CARPARK)
def _(w):
    _car_park(w)
    stamp = int(w.clock.now.timestamp() * 1000)
    return _notify(w, event="exit", entryTime=stamp, exitTime=stamp - 60_000, payableAmount=0)

# --- parking for operations (parkops) ----------------------------------------------------------------------

_DOWN_CARPARK = {"carpark": {"api_base": "http://127.0.0.1:9", "app_id": "park-app", "secret": "s", "retries": 0,
                             "timeout_s": 0.5}}  # nothing listens on the discard port


def _reconcile(w, day: str = "2026-03-09"):
    parking_history(w.rt)
    return w.ops_post("/parking/reconciliations", {"car_park": "P1", "day": day})


scenario("parking.invalid_cursor", 400)(lambda w: w.client.get(f"{OPS}/parking/sessions?before_id=42",
                                                               headers=w.ops))
scenario("parking.session_not_found", 404)(lambda w: w.client.get(f"{OPS}/parking/sessions/42", headers=w.ops))
scenario("parking.invalid_range", 400)(lambda w: w.client.get(
    f"{OPS}/parking/reconciliations?from=2026-03-09&to=2026-03-01", headers=w.ops))
scenario("parking.day_not_over", 400)(lambda w: _reconcile(w, day="2026-03-10"))
scenario("carpark.unavailable", 502, settings=_DOWN_CARPARK)(_reconcile)

# --- parking coupons (parkcoupons) ------------------------------------------------------------------------------


def _buy_quota(w, hours: int, key: str = "buy-1"):
    return w.client.post(f"{M}/parking/quota/purchases", json={"unit": "hours", "amount": hours},
                         headers={**w.key, "Idempotency-Key": key})


def _parking_deal(w, hours_bought: int) -> int:
    if hours_bought:
        assert _buy_quota(w, hours_bought).status_code == 201
    return w.live_deal(benefit={"kind": "parking_hours", "hours": 2})


scenario("parking.quota_exhausted", 409)(lambda w: w.claim(_parking_deal(w, 1)))
scenario("coupon.parking_only", 422)(lambda w: w.redeem(code=w.claim(_parking_deal(w, 2)).get_json()["code"]))
scenario("parking.quota_key_reused", 409)(lambda w: (_buy_quota(w, 5), _buy_quota(w, 6))[1])

# --- parking payments (parkpay) ----------------------------------------------------------------------------

PLATE = "沪A12345"


def _parked_for_pay(w, minutes: int = 130, bound: bool = True) -> None:
    """A car in a car park whose fee the mall computes (no car-park call before paying), bound to w.me."""
    parked_car_for_pay(w.rt, None, PLATE, minutes=minutes, member_id=_member_id(w) if bound else None,
                       fee_source="mall")


def _park_pay(w, cash: int, key: str = "pay-key-0001", **over: Any):
    return w.client.post(f"{ME}/parking/payments", headers=w.me, json={
        "plate": PLATE, "expected_cash_fen": cash, "idempotency_key": key, **over})


scenario("parking.no_session", 404)(lambda w: w.client.post("/api/v1/parking/quote", json={"plate": PLATE}))


@scenario("parking.unconfigured", 503)
def _(w):
    # The car park computes its own fee, and this installation has no [carpark] to ask it with.
    parked_car_for_pay(w.rt, None, PLATE, minutes=130, fee_source="carpark")
    return w.client.post("/api/v1/parking/quote", json={"plate": PLATE})


@scenario("wechatpay.unconfigured", 503)
def _(w):
    _parked_for_pay(w, bound=False)
    cfg = w.rt.settings
    w.rt.settings = cfg.model_copy(update={"wechatpay": cfg.wechatpay.model_copy(update={"mchid": ""})})
    w.rt.__dict__.pop("wechatpay", None)  # the cached client: built again from the settings without WeChat Pay
    due = w.client.post("/api/v1/parking/quote", json={"plate": PLATE}).get_json()["cash_fen"]
    return w.client.post("/api/v1/parking/payments", json={"plate": PLATE, "expected_cash_fen": due,
                                                           "idempotency_key": "unconfigured-1"})
scenario("parking.payment_not_found", 404)(lambda w: w.client.get("/api/v1/parking/payments/PK0000000000"))


@scenario("parking.plate_not_yours", 403)
def _(w):
    _parked_for_pay(w, bound=False)
    return w.client.post(f"{ME}/parking/quote", headers=w.me, json={"plate": PLATE})


@scenario("parking.quote_changed", 409)
def _(w):
    _parked_for_pay(w)
    return _park_pay(w, 1)


@scenario("parking.payment_pending", 409)
def _(w):
    _parked_for_pay(w)
    _park_pay(w, 2500)
    return _park_pay(w, 2500, key="pay-key-0002")


@scenario("parking.already_paid", 409)
def _(w):
    _parked_for_pay(w)
    order_id = _park_pay(w, 2500).get_json()["order_id"]
    with w.rt.sessions.begin() as s:  # as if WeChat Pay and the car park took it
        s.execute(update(ParkingPayment).where(ParkingPayment.order_id == order_id)
                  .values(status="paid", settled_at=w.rt.now()))
    return _park_pay(w, 0, key="pay-key-0002")


@scenario("parking.nothing_due", 422)
def _(w):
    _parked_for_pay(w, minutes=10)
    return _park_pay(w, 0)


@scenario("parking.idempotency_mismatch", 409)
def _(w):
    _parked_for_pay(w)
    _park_pay(w, 2500)
    return _park_pay(w, 2400)


scenario("parking.coupon_unusable", 422)(lambda w: (_parked_for_pay(w), w.client.post(
    f"{ME}/parking/quote", headers=w.me, json={"plate": PLATE, "coupon_ids": [999]}))[1])


@scenario("parking.coupon_limit", 422)
def _(w):
    _parked_for_pay(w)
    coupon_ids = [_parking_coupon(w) for _ in range(3)]
    return w.client.post(f"{ME}/parking/quote", headers=w.me, json={"plate": PLATE, "coupon_ids": coupon_ids})


def _parking_coupon(w) -> int:
    return parking_coupon_for(w.rt, w.merchant["id"], _member_id(w), hours=1)


# --- the till ------------------------------------------------------------------------------------------------


@scenario("till.phone_lookups_exhausted", 429, settings={"till": {"phone_lookups_per_hour": 1}})
def _(w):
    find = lambda: w.client.post(f"{M}/members/find-by-phone", json={"phone": "13800138000"},  # noqa: E731
                                 headers=w.cashier["headers"])
    assert find().status_code == 404
    return find()

# --- merchants and ops users from the ops console (opspeople) ----------------------------------------------


@scenario("merchant.idempotency_mismatch", 409)
def _(w):
    headers = {**w.ops, "Idempotency-Key": "onboard-1"}
    assert w.client.post(f"{OPS}/merchants", json={"name": "Tea House"}, headers=headers).status_code == 201
    return w.client.post(f"{OPS}/merchants", json={"name": "Book House"}, headers=headers)


scenario("ops.weak_password", 400)(lambda w: w.client.post(f"{OPS}/users", headers=w.ops, json={
    "username": "new-desk", "role": "desk", "password": "short"}))
scenario("ops.username_taken", 409)(lambda w: w.client.post(f"{OPS}/users", headers=w.ops, json={
    "username": w.ops_admin["username"], "role": "desk"}))
scenario("ops.last_admin", 409)(lambda w: w.client.patch(f"{OPS}/users/{w.ops_admin['id']}", headers=w.ops,
                                                         json={"role": "viewer"}))

# --- fleet alerts (opsfloor) ------------------------------------------------------------------------------

scenario("alert.not_found", 404)(lambda w: w.client.post(f"{OPS}/alerts/999/acknowledge", headers=w.ops))

# --- floors ops define (zones, docs/positioning.md) ------------------------------------------------------------

scenario("floors.invalid_number", 400)(lambda w: w.client.put(f"{OPS}/floors/999", headers=w.ops, json={
    "name": "顶层", "name_en": "Roof", "outline": [[0, 0], [10, 0], [10, 10]]}))
scenario("floors.invalid_outline", 400)(lambda w: w.client.put(f"{OPS}/floors/1", headers=w.ops, json={
    "name": "一层", "name_en": "Ground floor", "outline": [[0, 0], [10, 10], [10, 0], [0, 10]]}))  # a bow tie


# --- the store directory (dir) ------------------------------------------------------------------------------

scenario("store.unknown_category", 400)(lambda w: w.client.get("/api/v1/stores", query_string={"category": "food"}))
scenario("store.invalid_hours", 400)(lambda w: w.ops_post("/stores", {
    "name": "A", "floor": 1, "x": 0, "y": 0, "hours": {"mon": [["10:00", "25:00"]]}}))
scenario("store.invalid_tags", 400)(lambda w: w.ops_post("/stores", {
    "name": "A", "floor": 1, "x": 0, "y": 0, "tags": ["a" * 21]}))
scenario("store.invalid_logo_url", 400)(lambda w: w.ops_post("/stores", {
    "name": "A", "floor": 1, "x": 0, "y": 0, "logo_url": "http://example.com/logo.png"}))

# --- the walkable graph (graph, issue 17) ---------------------------------------------------------------------

WF = f"{OPS}/wayfinding/graph"


def _with_graph(w: World) -> None:
    _ = w.venue  # the store small_graph's door names (unit L1-02)
    assert w.client.put(WF, headers=w.ops, json=small_graph()).status_code == 200


scenario("wayfinding.invalid_graph", 422)(lambda w: w.client.put(WF, headers=w.ops, json={
    "type": "FeatureCollection", "features": [{"type": "Feature", "id": "x", "properties": {},
                                               "geometry": {"type": "Point", "coordinates": [0, 0]}}]}))
scenario("wayfinding.no_graph", 404)(lambda w: w.client.delete(f"{WF}/edges/e1", headers=w.ops))
scenario("wayfinding.node_not_found", 404)(lambda w: (_with_graph(w), w.client.delete(
    f"{WF}/nodes/nowhere", headers=w.ops))[1])
scenario("wayfinding.edge_not_found", 404)(lambda w: (_with_graph(w), w.client.patch(
    f"{WF}/edges/nowhere", headers=w.ops, json={"closed": True}))[1])
scenario("wayfinding.feature_exists", 409)(lambda w: (_with_graph(w), w.client.post(
    f"{WF}/edges", headers=w.ops, json=small_graph()["features"][-1]))[1])


# --- routes (routes, issue 17) --------------------------------------------------------------------------------

ROUTES = "/api/v1/routes"


def _route(w: World, frm: str, to: str, headers: dict[str, str] | None = None, **more: str):
    return w.client.get(ROUTES, query_string={"from": frm, "to": to, **more}, headers=headers or {})


scenario("auth.required", 401)(lambda w: _route(w, "me", "amenity:toilets"))
scenario("auth.invalid_token", 401)(lambda w: _route(w, "me", "amenity:toilets",
                                                      headers={"Authorization": "Bearer mt_not-a-live-token"}))
scenario("auth.wrong_caller", 403)(lambda w: _route(w, "node:1-j1", "car", headers=w.ops))
scenario("routes.no_graph", 409)(lambda w: _route(w, "node:1-j1", "amenity:toilets"))
scenario("routes.store_not_found", 404)(lambda w: (_with_graph(w), _route(w, "store:999", "amenity:toilets"))[1])
scenario("routes.bay_not_found", 404)(lambda w: (_with_graph(w), _route(w, "bay:B9-C999", "amenity:toilets"))[1])
scenario("routes.node_not_found", 404)(lambda w: (_with_graph(w), _route(w, "node:nowhere", "amenity:toilets"))[1])
scenario("routes.item_not_found", 404)(lambda w: (_with_graph(w), _route(w, "node:1-j1", "item:999"))[1])
scenario("routes.no_position", 409)(lambda w: (_with_graph(w), _route(w, "me", "amenity:toilets", w.me))[1])
scenario("routes.no_car", 409)(lambda w: (_with_graph(w), _route(w, "node:1-j1", "car", w.me))[1])
scenario("routes.unreachable", 422)(lambda w: (_with_graph(w), w.client.patch(
    f"{WF}/edges/lift-1-2", headers=w.ops, json={"closed": True}),
    _route(w, "node:1-j1", "amenity:toilets", profile="step_free"))[2])


# --- the floor plan for shoppers (floormap, issue 17) ----------------------------------------------------------

scenario("floor_map.unknown_floor", 404)(lambda w: (_with_graph(w), w.client.get("/api/v1/floors/B9/map"))[1])


# --- the checks ----------------------------------------------------------------------------------------------


@pytest.fixture
def settings_overrides(request) -> dict[str, Any]:
    code = getattr(request.node, "callspec", None) and request.node.callspec.params.get("code")
    return (SCENARIOS[code].settings if code in SCENARIOS else None) or {}


@pytest.fixture
def world(client, rt, clock, emulator, members_api, merchant, ops_admin) -> World:
    return World(client, rt, clock, emulator, members_api, merchant, ops_admin)


@SQLITE
def test_every_documented_error_code_has_a_scenario(app):
    documented = {code for _, op in operations(app) for code in documented_errors(op)}
    assert sorted(documented - set(SCENARIOS)) == []  # a documented code the API never answers
    assert sorted(set(SCENARIOS) - documented) == []


@SQLITE
@pytest.mark.parametrize("code", sorted(SCENARIOS))
def test_the_api_answers_each_documented_code_with_its_status(world, code):
    expected = SCENARIOS[code]
    response = expected.run(world)
    assert response.is_json, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == code, response.get_json()
    assert response.status_code == expected.status
    assert error_index().status(code) == expected.status  # what the OpenAPI document states


# --- the document against the index of raise sites (mallapp.api.error_index) ------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_documented_error_code_is_raised_somewhere(app):
    documented = {code for _, op in operations(app) for code in documented_errors(op)}
    assert documented, "no operation documents an error code"
    assert sorted(documented - set(error_index().classes)) == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_document_states_each_code_under_its_raise_sites_status(client, app):
    doc = client.get("/api/v1/openapi.json").get_json()
    for path, op in operations(app):
        responses = doc["paths"][path][op.method.lower()]["responses"]
        for code in documented_errors(op):
            status = str(error_index().status(code))
            assert code in responses[status]["description"], (path, op.method, code)
