"""Paying for parking through the API: quotes, member and public payments, the notify endpoint, failures.

The car park is the real emulator on loopback (billing with the MixC tariff our car_parks row holds, on
the test clock); WeChat Pay is the WeChat emulator's (signed orders, signed and encrypted notifications).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from factories import (
    WECHATPAY_NOTIFY_PATH,
    api_error,
    carpark_for_pay,
    parked_car_for_pay,
    parking_coupon_for,
    wechatpay_paid,
)
from sqlalchemy import select

from mallapp.domain import points, purchases
from mallapp.domain.parking import payments
from mallapp.domain.parking.models import ParkingBenefit, ParkingPayment, ParkingSession

PLATE = "沪A12345"
ME = "/api/v1/me/parking"


@pytest.fixture
def park(rt, clock):
    clock.now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai: the day band, before the night's
    emulator = carpark_for_pay(rt, clock)
    yield emulator
    emulator.stop()


@pytest.fixture
def pay(emulator):
    """WeChat Pay: the WeChat emulator's (the conftest wires rt.wechatpay to it)."""
    return emulator


def _order(pay, order_id: str) -> dict:
    return next(order for order in pay.orders() if order["out_trade_no"] == order_id)


def _paid(client, rt, pay, order_id: str):
    """The payer pays; the emulator's signed notification is posted to our notify endpoint."""
    return wechatpay_paid(client, pay, order_id, success_time=rt.now())


def _give_points(rt, member_id: int, amount: int) -> None:
    with rt.sessions.begin() as s:
        points.credit(s, rt.settings, member_id, amount, "adjustment", source_ref="test", idempotency_key=f"t{amount}",
                      now=rt.now())


def _balance(rt, member_id: int) -> int:
    with rt.sessions() as s:
        return points.balance(s, member_id)


def _pay_body(quote: dict, key: str = "pay-key-0001", **over) -> dict:
    return {"plate": PLATE, "points_hours": 0, "coupon_ids": [], "expected_cash_fen": quote["cash_fen"],
            "idempotency_key": key, **over}


def test_the_public_quote_shows_the_fee_and_no_personal_data(client, rt, park, member):
    parked_car_for_pay(rt, park, PLATE, minutes=130, member_id=member["member"]["id"], tier="major")
    response = client.post("/api/v1/parking/quote", json={"plate": "沪a·12345"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["plate"] == "沪A1***5" and (body["due_fen"], body["cash_fen"]) == (2500, 2500)
    assert set(body) == {"plate", "car_park", "entered_at", "quoted_at", "gross_fen", "paid_fen", "due_fen", "cash_fen"}


def test_a_plate_not_parked_is_404_and_a_bad_plate_400(client, rt, park):
    assert api_error(client.post("/api/v1/parking/quote", json={"plate": "沪B99999"}), "parking.no_session")
    assert api_error(client.post("/api/v1/parking/quote", json={"plate": "hello"}), "parking.plate_invalid")


def test_the_member_quote_itemises_tier_and_points(client, rt, park, member):
    member_id = member["member"]["id"]
    parked_car_for_pay(rt, park, PLATE, minutes=400, member_id=member_id, tier="major")  # 6 h 40 min: 60.00
    _give_points(rt, member_id, 1500)
    response = client.post(f"{ME}/quote", json={"plate": PLATE, "points_hours": 5}, headers=member["headers"])
    body = response.get_json()
    assert response.status_code == 200, body
    assert [(i["code"], i["seconds"], i["value_fen"], i["points"]) for i in body["items"]] == [
        ("tier", 3 * 3600, 2000, 0), ("points", 2 * 3600, 2000, 1200)]
    assert (body["due_fen"], body["discount_fen"], body["cash_fen"], body["points_balance"]) == (6000, 4000, 2000, 1500)


def test_another_members_plate_is_refused(client, rt, park, shoppers):
    parked_car_for_pay(rt, park, PLATE, minutes=90, member_id=shoppers["ada"]["member"]["id"], tier="vip")
    response = client.post(f"{ME}/quote", json={"plate": PLATE}, headers=shoppers["bo"]["headers"])
    assert api_error(response, "parking.plate_not_yours")


def test_points_that_cover_the_bill_pay_it_and_the_car_park_gets_the_items(client, rt, park, member):
    member_id = member["member"]["id"]
    session_id = parked_car_for_pay(rt, park, PLATE, minutes=130, member_id=member_id)  # 10.00 + 3 steps: 25.00
    _give_points(rt, member_id, 3000)
    quote = client.post(f"{ME}/quote", json={"plate": PLATE, "points_hours": 3}, headers=member["headers"]).get_json()
    assert quote["cash_fen"] == 0 and quote["points"] == 1200  # two hours are enough: 1,200 points, not 1,800
    response = client.post(f"{ME}/payments", json=_pay_body(quote, points_hours=3), headers=member["headers"])
    body = response.get_json()
    assert response.status_code == 201, body
    assert (body["status"], body["cash_fen"], body["points"]) == ("paid", 0, 1200)
    assert _balance(rt, member_id) == 1800
    [taken] = park.payments()
    assert taken["payAmount"] == 0 and taken["discountAmount"] == 2500
    assert park.drive_out(PLATE) is True  # the barrier opens
    with rt.sessions() as s:
        assert s.get(ParkingSession, session_id).paid_at == rt.now()
        assert [(b.kind, b.seconds, b.points) for b in s.scalars(select(ParkingBenefit))] == [("points", 2 * 3600, 1200)]


def test_a_members_quote_names_its_lines_in_the_members_language(client, rt, park, member):
    member_id = member["member"]["id"]
    parked_car_for_pay(rt, park, PLATE, minutes=190, member_id=member_id, tier="ordinary")
    _give_points(rt, member_id, 3000)
    body = {"plate": PLATE, "points_hours": 1}
    quote = client.post(f"{ME}/quote", json=body, headers=member["headers"]).get_json()  # zh-CN, the default
    assert [i["name"] for i in quote["items"]] == ["银卡免费 2 小时", "600 积分抵 1 小时"]
    assert client.patch("/api/v1/me", json={"locale": "en"}, headers=member["headers"]).status_code == 200
    quote = client.post(f"{ME}/quote", json=body, headers=member["headers"]).get_json()
    assert [i["name"] for i in quote["items"]] == ["Silver tier: 2 h free", "600 points: 1 h"]


def test_cash_goes_through_wechat_pay_and_the_notification_settles_it(client, rt, park, pay, member):
    member_id = member["member"]["id"]
    parked_car_for_pay(rt, park, PLATE, minutes=190, member_id=member_id, tier="ordinary")  # 35.00
    quote = client.post(f"{ME}/quote", json={"plate": PLATE}, headers=member["headers"]).get_json()
    assert (quote["discount_fen"], quote["cash_fen"]) == (2000, 1500)  # silver: 2 h free
    created = client.post(f"{ME}/payments", json=_pay_body(quote), headers=member["headers"]).get_json()
    assert created["status"] == "pending" and created["prepay"]["jsapi"]["package"].startswith("prepay_id=")
    assert _order(pay, created["order_id"])["payer"]["openid"] == "o-member-1"
    answer = _paid(client, rt, pay, created["order_id"])
    assert (answer.status_code, answer.get_json()["code"]) == (200, "SUCCESS")
    status = client.get(f"/api/v1/parking/payments/{created['order_id']}").get_json()
    assert (status["status"], status["cash_fen"]) == ("paid", 1500)
    [taken] = park.payments()
    assert (taken["payAmount"], taken["discountAmount"]) == (1500, 2000)
    # the same notification again changes nothing
    headers, raw = pay.pay_order(created["order_id"], deliver=False)
    assert client.post(WECHATPAY_NOTIFY_PATH, data=raw, headers=headers).status_code == 200
    assert len(park.payments()) == 1


def test_anyone_pays_by_plate_with_a_native_code_without_joining(client, rt, park, pay):
    parked_car_for_pay(rt, park, PLATE, minutes=70)
    quote = client.post("/api/v1/parking/quote", json={"plate": PLATE}).get_json()
    body = {"plate": PLATE, "expected_cash_fen": quote["cash_fen"], "idempotency_key": "public-key-1"}
    created = client.post("/api/v1/parking/payments", json=body).get_json()
    assert created["payer"] == "public" and created["prepay"]["code_url"].startswith("weixin://")
    _paid(client, rt, pay, created["order_id"])
    assert client.get(f"/api/v1/parking/payments/{created['order_id']}").get_json()["status"] == "paid"


def test_a_public_payer_in_the_mini_program_pays_by_jsapi_and_no_member_is_created(client, rt, park, pay, emulator):
    parked_car_for_pay(rt, park, PLATE, minutes=70)
    code = emulator.login(openid="o-passer-by")
    body = {"plate": PLATE, "expected_cash_fen": 1500, "idempotency_key": "public-key-2", "wx_code": code}
    created = client.post("/api/v1/parking/payments", json=body).get_json()
    assert created["prepay"]["jsapi"] and _order(pay, created["order_id"])["payer"]["openid"] == "o-passer-by"
    with rt.sessions() as s:
        from mallapp.domain.members import Member
        assert s.scalar(select(Member).where(Member.openid == "o-passer-by")) is None


def test_an_amount_that_no_longer_adds_up_is_refused_with_the_fresh_quote(client, rt, park, member):
    parked_car_for_pay(rt, park, PLATE, minutes=130, member_id=member["member"]["id"])
    response = client.post(f"{ME}/payments", json=_pay_body({"cash_fen": 500}), headers=member["headers"])
    error = api_error(response, "parking.quote_changed")
    assert error["details"]["quote"]["cash_fen"] == 2500
    with rt.sessions() as s:
        assert s.scalar(select(ParkingPayment)) is None


def test_a_stay_is_paid_once(client, rt, park, pay, member):
    parked_car_for_pay(rt, park, PLATE, minutes=130, member_id=member["member"]["id"])
    first = client.post(f"{ME}/payments", json=_pay_body({"cash_fen": 2500}), headers=member["headers"]).get_json()
    again = client.post(f"{ME}/payments", json=_pay_body({"cash_fen": 2500}, key="pay-key-0002"),
                        headers=member["headers"])
    assert api_error(again, "parking.payment_pending")
    _paid(client, rt, pay, first["order_id"])
    paid_again = client.post(f"{ME}/payments", json=_pay_body({"cash_fen": 0}, key="pay-key-0003"),
                             headers=member["headers"])
    assert api_error(paid_again, "parking.already_paid")


def test_a_retry_returns_the_first_result_and_another_body_is_refused(client, rt, park, pay, member):
    parked_car_for_pay(rt, park, PLATE, minutes=130, member_id=member["member"]["id"])
    first = client.post(f"{ME}/payments", json=_pay_body({"cash_fen": 2500}), headers=member["headers"])
    retry = client.post(f"{ME}/payments", json=_pay_body({"cash_fen": 2500}), headers=member["headers"])
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.get_json()["order_id"] == first.get_json()["order_id"] and retry.get_json()["replayed"] is True
    other = client.post(f"{ME}/payments", json=_pay_body({"cash_fen": 2500}, points_hours=1), headers=member["headers"])
    assert api_error(other, "parking.idempotency_mismatch")


def test_a_car_park_refusal_gives_back_points_and_refunds_the_cash(client, rt, park, pay, member):
    member_id = member["member"]["id"]
    parked_car_for_pay(rt, park, PLATE, minutes=190, member_id=member_id)  # 35.00; an hour of points: 10.00
    _give_points(rt, member_id, 600)
    body = _pay_body({"cash_fen": 2500}, points_hours=1)
    created = client.post(f"{ME}/payments", json=body, headers=member["headers"]).get_json()
    assert created["points"] == 600 and _balance(rt, member_id) == 0
    park.fail_next("bill/pay", code=2005)  # AmountMismatch
    _paid(client, rt, pay, created["order_id"])
    status = client.get(f"/api/v1/parking/payments/{created['order_id']}").get_json()
    assert (status["status"], status["failure_code"], status["refunded_fen"]) == ("failed", "carpark.amount_mismatch",
                                                                                  2500)
    [refund] = pay.pay.refunds()
    assert _balance(rt, member_id) == 600 and refund["amount"]["refund"] == 2500
    with rt.sessions() as s:
        assert all(b.voided_at is not None for b in s.scalars(select(ParkingBenefit)))
    # the stay can be paid again
    quote = client.post(f"{ME}/quote", json={"plate": PLATE, "points_hours": 1}, headers=member["headers"]).get_json()
    assert quote["cash_fen"] == 2500


def test_an_unavailable_car_park_leaves_the_payment_paying_until_the_clock_resends_it(client, rt, clock, park, member):
    member_id = member["member"]["id"]
    parked_car_for_pay(rt, park, PLATE, minutes=70, member_id=member_id, tier="vip")
    quote = client.post(f"{ME}/quote", json={"plate": PLATE}, headers=member["headers"]).get_json()
    assert quote["cash_fen"] == 0
    park.fail_next("bill/pay", status=503)
    created = client.post(f"{ME}/payments", json=_pay_body(quote), headers=member["headers"]).get_json()
    assert created["status"] == "paying"
    clock.advance(minutes=2)
    assert payments.run_due(rt.sessions, rt.settings, _outside(rt), rt.now()) == 1
    assert client.get(f"/api/v1/parking/payments/{created['order_id']}").get_json()["status"] == "paid"


def test_an_unpaid_order_is_abandoned_after_the_timeout_and_the_points_come_back(client, rt, clock, park, pay, member):
    member_id = member["member"]["id"]
    parked_car_for_pay(rt, park, PLATE, minutes=190, member_id=member_id)
    _give_points(rt, member_id, 600)
    created = client.post(f"{ME}/payments", json=_pay_body({"cash_fen": 2500}, points_hours=1),
                          headers=member["headers"]).get_json()
    clock.advance(minutes=rt.settings.parking.pending_timeout_minutes + 1)
    assert payments.run_due(rt.sessions, rt.settings, _outside(rt), rt.now()) == 1
    status = client.get(f"/api/v1/parking/payments/{created['order_id']}").get_json()
    assert status["status"] == "abandoned" and _order(pay, created["order_id"])["trade_state"] == "CLOSED"
    assert _balance(rt, member_id) == 600
    clock.advance(minutes=20)  # running again changes nothing
    payments.run_due(rt.sessions, rt.settings, _outside(rt), rt.now())
    assert _balance(rt, member_id) == 600


def _unpaid_order(client, rt, pay) -> str:
    park = carpark_for_pay(rt, lambda: rt.now())
    try:
        parked_car_for_pay(rt, park, PLATE, minutes=70)
        body = {"plate": PLATE, "expected_cash_fen": 1500, "idempotency_key": "public-key-9"}
        return client.post("/api/v1/parking/payments", json=body).get_json()["order_id"]
    finally:
        park.stop()


def test_a_forged_notification_is_refused_and_changes_nothing(client, rt, pay):
    headers, raw = pay.pay_order(_unpaid_order(client, rt, pay), deliver=False)
    answer = client.post(WECHATPAY_NOTIFY_PATH, data=raw.replace(b'"', b"'", 1), headers=headers)
    assert (answer.status_code, answer.get_json()["code"]) == (400, "FAIL")
    with rt.sessions() as s:
        assert s.scalar(select(ParkingPayment.status)) == "pending"


def test_an_unknown_order_id_is_404(client, rt):
    assert api_error(client.get("/api/v1/parking/payments/PK000000deadbeef"), "parking.payment_not_found")


def _outside(rt):
    from mallapp.adapters.parking_outside import ParkingOutside

    return ParkingOutside(rt.carpark, lambda: rt.wechatpay)


def test_after_the_grace_period_the_overstay_is_a_second_payment_the_car_park_takes(client, rt, clock, park, pay,
                                                                                    member):
    member_id = member["member"]["id"]
    parked_car_for_pay(rt, park, PLATE, minutes=70, member_id=member_id, tier="vip")
    first = client.post(f"{ME}/payments", json=_pay_body({"cash_fen": 0}), headers=member["headers"]).get_json()
    assert first["status"] == "paid"
    clock.advance(hours=1)  # stayed past the grace period; the VIP's free stay was used once today
    quote = client.post(f"{ME}/quote", json={"plate": PLATE}, headers=member["headers"]).get_json()
    assert quote["items"] == [] and quote["cash_fen"] > 0
    second = client.post(f"{ME}/payments", json=_pay_body(quote, key="pay-key-0002"), headers=member["headers"])
    assert second.status_code == 201, second.get_json()
    _paid(client, rt, pay, second.get_json()["order_id"])
    status = client.get(f"/api/v1/parking/payments/{second.get_json()['order_id']}").get_json()
    assert status["status"] == "paid", status  # the car park valued the first payment's free time as we did
    assert [p["payAmount"] for p in park.payments()] == [0, quote["cash_fen"]]


def test_coupons_are_used_by_a_payment_and_given_back_when_it_is_abandoned(client, rt, clock, park, pay, member,
                                                                           merchant):
    member_id = member["member"]["id"]
    parked_car_for_pay(rt, park, PLATE, minutes=190, member_id=member_id)  # 35.00
    hour = parking_coupon_for(rt, merchant["id"], member_id, hours=1)
    money = parking_coupon_for(rt, merchant["id"], member_id, amount_fen=500)
    quote = client.post(f"{ME}/quote", json={"plate": PLATE, "coupon_ids": [hour, money]},
                        headers=member["headers"]).get_json()
    assert {c["id"] for c in quote["coupons_available"]} == {hour, money}
    assert [(i["code"], i["value_fen"]) for i in quote["items"]] == [(f"coupon:{hour}", 1000), (f"coupon:{money}", 500)]
    created = client.post(f"{ME}/payments", json=_pay_body(quote, coupon_ids=[hour, money]),
                          headers=member["headers"]).get_json()
    assert created["cash_fen"] == 2000
    again = client.post(f"{ME}/quote", json={"plate": PLATE}, headers=member["headers"]).get_json()
    assert again["coupons_available"] == []  # used by the pending payment
    clock.advance(minutes=rt.settings.parking.pending_timeout_minutes + 1)
    payments.run_due(rt.sessions, rt.settings, _outside(rt), rt.now())
    back = client.post(f"{ME}/quote", json={"plate": PLATE}, headers=member["headers"]).get_json()
    assert {c["id"] for c in back["coupons_available"]} == {hour, money}


def test_todays_spend_gives_its_hours_once_across_the_days_visits(client, rt, clock, park, pay, member, merchant):
    member_id = member["member"]["id"]
    with rt.sessions.begin() as s:  # 250 yuan today: two hours (cap 3)
        purchases.record_purchase(s, rt.settings, merchant_id=merchant["id"], member_id=member_id, receipt_no="r-1",
                                  amount_fen=25_000, occurred_at=rt.now(), now=rt.now())
    first_visit = parked_car_for_pay(rt, park, PLATE, minutes=190, member_id=member_id)  # 35.00; 2 h off: 15.00
    quote = client.post(f"{ME}/quote", json={"plate": PLATE}, headers=member["headers"]).get_json()
    assert [(i["code"], i["seconds"], i["value_fen"]) for i in quote["items"]] == [("spend", 7200, 2000)]
    paid = client.post(f"{ME}/payments", json=_pay_body(quote), headers=member["headers"]).get_json()
    _paid(client, rt, pay, paid["order_id"])
    park.drive_out(PLATE)
    with rt.sessions.begin() as s:  # the exit (parkcore's webhook records it)
        s.get(ParkingSession, first_visit).exited_at = rt.now()
    clock.advance(minutes=30)
    parked_car_for_pay(rt, park, PLATE, minutes=0, member_id=None)  # back in, the same plate (still bound)
    clock.advance(minutes=130)
    again = client.post(f"{ME}/quote", json={"plate": PLATE}, headers=member["headers"]).get_json()
    assert again["items"] == [] and again["cash_fen"] == again["due_fen"] > 0  # the two hours were used today


def test_an_order_wechat_pay_refuses_fails_the_payment_and_gives_the_points_back(client, rt, park, pay, member):
    member_id = member["member"]["id"]
    parked_car_for_pay(rt, park, PLATE, minutes=190, member_id=member_id)
    _give_points(rt, member_id, 600)
    pay.fail_next("/v3/pay/transactions", status=503)
    response = client.post(f"{ME}/payments", json=_pay_body({"cash_fen": 2500}, points_hours=1),
                           headers=member["headers"])
    assert response.status_code == 502 and response.get_json()["error"]["code"] == "wechatpay.unavailable"
    assert _balance(rt, member_id) == 600
    with rt.sessions() as s:
        assert s.scalar(select(ParkingPayment.status)) == "failed"
    # the stay can be paid with a new attempt
    retry = client.post(f"{ME}/payments", json=_pay_body({"cash_fen": 2500}, key="pay-key-0002", points_hours=1),
                        headers=member["headers"])
    assert retry.status_code == 201 and retry.get_json()["status"] == "pending"


def test_a_car_park_whose_fee_the_mall_computes_is_quoted_by_our_tariff_and_told_the_same(client, rt, park, pay,
                                                                                          member):
    member_id = member["member"]["id"]
    parked_car_for_pay(rt, park, PLATE, minutes=400, member_id=member_id, fee_source="mall", tier="major")
    _give_points(rt, member_id, 1200)
    quote = client.post(f"{ME}/quote", json={"plate": PLATE, "points_hours": 2}, headers=member["headers"]).get_json()
    assert (quote["due_fen"], quote["discount_fen"], quote["cash_fen"]) == (6000, 4000, 2000)
    created = client.post(f"{ME}/payments", json=_pay_body(quote, points_hours=2), headers=member["headers"]).get_json()
    _paid(client, rt, pay, created["order_id"])
    assert client.get(f"/api/v1/parking/payments/{created['order_id']}").get_json()["status"] == "paid"
    assert park.drive_out(PLATE) is True


def test_a_refund_still_processing_counts_only_when_wechat_pay_says_it_reached_the_payer(client, rt, park, pay,
                                                                                         member):
    parked_car_for_pay(rt, park, PLATE, minutes=190, member_id=member["member"]["id"])
    created = client.post(f"{ME}/payments", json=_pay_body({"cash_fen": 3500}), headers=member["headers"]).get_json()
    park.fail_next("bill/pay", code=2005)  # the car park refuses: the cash goes back
    pay.pay.refunds_processing()
    _paid(client, rt, pay, created["order_id"])
    status = client.get(f"/api/v1/parking/payments/{created['order_id']}").get_json()
    assert (status["status"], status["refunded_fen"]) == ("failed", 0)  # on its way, not back yet
    # The clock asks again with the same refund number: still PROCESSING, still not counted, no second refund.
    payments.run_due(rt.sessions, rt.settings, _outside(rt), rt.now())
    [refund] = pay.pay.refunds()
    assert client.get(f"/api/v1/parking/payments/{created['order_id']}").get_json()["refunded_fen"] == 0
    # WeChat Pay's signed refund notification: now it counts (and a repeat of it changes nothing).
    headers, body = pay.pay.complete_refund(refund["out_refund_no"], deliver=False)
    for _ in range(2):
        answer = client.post(WECHATPAY_NOTIFY_PATH, data=body, headers=headers)
        assert answer.status_code == 200, answer.get_json()
    assert client.get(f"/api/v1/parking/payments/{created['order_id']}").get_json()["refunded_fen"] == 3500
    assert len(pay.pay.refunds()) == 1


def test_cash_taken_in_another_amount_than_the_payments_is_refunded_not_settled(client, rt, park, pay, member):
    member_id = member["member"]["id"]
    parked_car_for_pay(rt, park, PLATE, minutes=190, member_id=member_id)
    _give_points(rt, member_id, 600)
    created = client.post(f"{ME}/payments", json=_pay_body({"cash_fen": 2500}, points_hours=1),
                          headers=member["headers"]).get_json()
    pay.pay_order(created["order_id"], deliver=False)  # WeChat Pay took it; its word comes with another amount
    state = payments.PayState(paid=True, total_fen=1, transaction_id="4200-odd", success_time=rt.now())
    assert payments.paid(rt.sessions, rt.settings, _outside(rt), created["order_id"], state, now=rt.now()) == "failed"
    status = client.get(f"/api/v1/parking/payments/{created['order_id']}").get_json()
    assert (status["failure_code"], status["refunded_fen"]) == ("wechatpay.amount_mismatch", 2500)
    assert _balance(rt, member_id) == 600 and park.payments() == []
