"""Tills post purchases and refunds; points follow exactly, retries are safe."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mallapp.domain import merchants


def _post(client, merchant, **body):
    return client.post("/api/v1/merchant/purchases", headers=merchant["headers"], json=body)


def _refund(client, merchant, **body):
    return client.post("/api/v1/merchant/refunds", headers=merchant["headers"], json=body)


def _balance(client, member):
    return client.get("/api/v1/me", headers=member["headers"]).get_json()["points"]["balance"]


@pytest.fixture
def purchase(client, merchant, card, clock):
    def post(receipt_no="R-1001", amount_fen=25_880, member_code=None, occurred_at=None):
        return _post(client, merchant, member_code=member_code or card, amount_fen=amount_fen,
                     receipt_no=receipt_no, occurred_at=(occurred_at or clock.now).isoformat())
    return post


def test_purchase_awards_one_point_per_ten_yuan(purchase, client, member):
    response = purchase(amount_fen=25_880)
    assert response.status_code == 201
    body = response.get_json()
    assert (body["points_earned"], body["birthday_bonus"], body["points_total"]) == (25, 0, 25)
    assert body["replayed"] is False
    assert _balance(client, member) == 25


def test_purchase_retry_returns_the_first_result_and_adds_nothing(purchase, client, member):
    first = purchase().get_json()
    retry = purchase()
    assert retry.status_code == 200
    assert retry.get_json() == {**first, "replayed": True}
    assert _balance(client, member) == 25


def test_same_receipt_with_another_amount_is_a_conflict(purchase, client, member):
    purchase(amount_fen=25_880)
    response = purchase(amount_fen=99_999)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "purchase.receipt_conflict"
    assert _balance(client, member) == 25


def test_retry_is_answered_after_the_member_code_expired(purchase, client, member, clock, rt):
    first = purchase()
    clock.advance(seconds=rt.settings.auth.card_ttl_s + 60)
    retry = purchase()
    assert retry.status_code == 200 and retry.get_json()["points_total"] == first.get_json()["points_total"]
    new = purchase(receipt_no="R-new")
    assert new.status_code == 400 and new.get_json()["error"]["code"] == "card.expired"


def test_birthday_purchase_earns_double(purchase, client, member, clock):
    client.patch("/api/v1/me", headers=member["headers"], json={"birthday": "1990-03-10"})
    body = purchase(amount_fen=10_000).get_json()
    assert (body["points_earned"], body["birthday_bonus"], body["points_total"]) == (10, 10, 20)
    history = client.get("/api/v1/me/points", headers=member["headers"]).get_json()["entries"]
    # Setting the birthday in the birthday month also brought the yearly birthday gift.
    assert [(e["reason"], e["delta"]) for e in history] == [("birthday_bonus", 10), ("purchase", 10),
                                                            ("birthday_gift", 100)]


@pytest.mark.parametrize("offset", [timedelta(days=-31), timedelta(hours=1)])
def test_purchase_time_must_be_recent_and_not_in_the_future(purchase, clock, offset):
    response = purchase(occurred_at=clock.now + offset)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "purchase.time_out_of_range"


@pytest.mark.parametrize(("change", "field"), [
    ({"amount_fen": "25880"}, "amount_fen"),
    ({"amount_fen": 0}, "amount_fen"),
    ({"amount_fen": -100}, "amount_fen"),
    ({"amount_fen": 12.5}, "amount_fen"),
    ({"receipt_no": ""}, "receipt_no"),
    ({"receipt_no": "R 1"}, "receipt_no"),
    ({"occurred_at": "2026-03-10T10:00:00"}, "occurred_at"),  # no offset: ambiguous
    ({"occurred_at": "yesterday"}, "occurred_at"),
    ({"points": 1000}, "points"),
])
def test_purchase_rejects_bad_fields(client, merchant, card, clock, change, field):
    body = {"member_code": card, "amount_fen": 25_880, "receipt_no": "R-1", "occurred_at": clock.now.isoformat()}
    response = _post(client, merchant, **{**body, **change})
    assert response.status_code == 400
    assert [p["field"] for p in response.get_json()["error"]["details"]["problems"]] == [field]


def test_forged_member_code_is_refused(purchase):
    response = purchase(member_code="MC1.1.9999999999.AAAAAAAAAAAAAAAAAAAA")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "card.invalid"


def test_partial_refunds_add_up_to_the_whole(purchase, client, merchant, member):
    purchase(amount_fen=100_000)  # 100 points
    taken = []
    for n, amount in enumerate((33_333, 33_333, 33_334)):
        response = _refund(client, merchant, receipt_no="R-1001", refund_no=f"F{n}", amount_fen=amount)
        assert response.status_code == 201
        taken.append(response.get_json()["points_reversed"])
    assert sum(taken) == 100
    assert _balance(client, member) == 0
    over = _refund(client, merchant, receipt_no="R-1001", refund_no="F9", amount_fen=1)
    assert over.status_code == 422 and over.get_json()["error"]["code"] == "refund.exceeds_purchase"


def test_refund_retry_is_idempotent(purchase, client, merchant, member):
    purchase(amount_fen=100_000)
    first = _refund(client, merchant, receipt_no="R-1001", refund_no="F1", amount_fen=50_000)
    retry = _refund(client, merchant, receipt_no="R-1001", refund_no="F1", amount_fen=50_000)
    assert retry.status_code == 200 and retry.get_json() == {**first.get_json(), "replayed": True}
    assert _balance(client, member) == 50
    clash = _refund(client, merchant, receipt_no="R-1001", refund_no="F1", amount_fen=10_000)
    assert clash.status_code == 409 and clash.get_json()["error"]["code"] == "refund.number_conflict"


def test_refund_of_spent_points_leaves_a_debt_settled_by_later_earnings(purchase, client, merchant, member, card, clock):
    purchase(amount_fen=300_000)  # 300 points
    spend = client.post("/api/v1/me/points/redemptions", json={"gift_code": "tote"},
                        headers={**member["headers"], "Idempotency-Key": "k"})
    assert spend.status_code == 201  # 200 spent, 100 left
    refund = _refund(client, merchant, receipt_no="R-1001", refund_no="F1", amount_fen=300_000).get_json()
    assert (refund["points_reversed"], refund["points_taken"], refund["points_owed"]) == (300, 100, 200)
    me = client.get("/api/v1/me", headers=member["headers"]).get_json()["points"]
    assert (me["balance"], me["owed"]) == (0, 200)
    purchase(receipt_no="R-2", amount_fen=250_000)  # earns 250: 200 settle the debt
    me = client.get("/api/v1/me", headers=member["headers"]).get_json()["points"]
    assert (me["balance"], me["owed"]) == (50, 0)


def test_refund_does_not_take_back_points_that_already_lapsed(purchase, client, merchant, member, card, clock):
    from datetime import UTC, datetime

    purchase(amount_fen=100_000)  # 100 points, expiring at the end of 2027
    purchase(receipt_no="R-2", amount_fen=50_000)  # 50 more, same expiry
    clock.now = datetime(2028, 1, 2, tzinfo=UTC)  # all lapsed
    refund = _refund(client, merchant, receipt_no="R-1001", refund_no="F1", amount_fen=100_000).get_json()
    assert (refund["points_reversed"], refund["points_lapsed"], refund["points_taken"], refund["points_owed"]) == \
        (100, 100, 0, 0)
    me = client.get("/api/v1/me", headers=member["headers"]).get_json()["points"]
    assert (me["balance"], me["owed"]) == (0, 0)


def test_partial_refunds_count_a_lapse_once(purchase, client, merchant, member, clock):
    from datetime import UTC, datetime

    purchase(amount_fen=300_000)  # 300 points, expiring at the end of 2027
    spend = client.post("/api/v1/me/points/redemptions", json={"gift_code": "tote"},
                        headers={**member["headers"], "Idempotency-Key": "k"})
    assert spend.status_code == 201  # 200 spent, 100 left
    clock.now = datetime(2028, 1, 2, tzinfo=UTC)  # the 100 left lapse
    first = _refund(client, merchant, receipt_no="R-1001", refund_no="F1", amount_fen=150_000).get_json()
    second = _refund(client, merchant, receipt_no="R-1001", refund_no="F2", amount_fen=150_000).get_json()
    # The lapsed 100 are forgiven once; the 200 that were spent are owed.
    assert [(r["points_reversed"], r["points_lapsed"], r["points_owed"]) for r in (first, second)] == \
        [(150, 100, 50), (150, 0, 150)]


def test_merchants_see_and_refund_only_their_own_receipts(purchase, client, rt):
    purchase()
    with rt.sessions.begin() as session:
        _other, key = merchants.create(session, "Harbour Books", rt.now())
    other = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/merchant/purchases/R-1001", headers=other).status_code == 404
    response = client.post("/api/v1/merchant/refunds", headers=other,
                           json={"receipt_no": "R-1001", "refund_no": "F1", "amount_fen": 100})
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "purchase.not_found"


def test_merchant_reads_its_purchase(purchase, client, merchant):
    purchase()
    body = client.get("/api/v1/merchant/purchases/R-1001", headers=merchant["headers"]).get_json()
    assert (body["receipt_no"], body["amount_fen"], body["points_total"]) == ("R-1001", 25_880, 25)


def test_disabled_merchant_key_stops_working(purchase, client, merchant, rt):
    with rt.sessions.begin() as session:
        session.get(merchants.Merchant, merchant["id"]).active = False
    assert purchase().status_code == 401
