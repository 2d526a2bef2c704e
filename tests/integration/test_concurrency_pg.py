"""Races on PostgreSQL: many real threads, each in its own transaction, released together.

Every worker opens its transaction (and holds a pooled connection) before a barrier releases
them all at once, so the database sees them concurrently. The assertions are about outcomes
(how many succeeded, what the ledger holds), never about timing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import factories
import pytest
from factories import (
    NOON,
    book,
    inbox_keys,
    publish,
    race,
    race_in_transactions,
    restaurant,
    slot_figures,
    wide_runtime,
)
from redis import Redis
from sqlalchemy import func, select

from mallapp.domain import checkin, gifts, members, merchants, offers, points, purchases
from mallapp.domain.notifications import Notification
from mallapp.domain.points import PointsAccount, PointsEntry
from mallapp.domain.reservation_admin import Band
from mallapp.errors import Conflict, MallError, RuleViolation
from mallapp.runtime import Runtime
from mallapp.settings import Settings

pytestmark = pytest.mark.postgres

WORKERS = 50


@pytest.fixture
def backend() -> str:
    return "postgresql"


@pytest.fixture
def rt(settings: Settings, redis_client: Redis, clock) -> Iterator[Runtime]:
    """The conftest runtime, with a pool wide enough for every worker to hold a connection at once."""
    yield from wide_runtime(settings, redis_client, clock, WORKERS)


def codes(results: list[Any]) -> Counter:
    """How many succeeded ("ok") and how many failed, by error code."""
    return Counter(r.code if isinstance(r, MallError) else type(r).__name__ if isinstance(r, Exception) else "ok"
                   for r in results)


def unexpected(results: list[Any]) -> list[Exception]:
    return [r for r in results if isinstance(r, Exception) and not isinstance(r, MallError)]


def new_member(rt: Runtime, openid: str = "o-race-1", credit: int = 0) -> int:
    with rt.sessions.begin() as session:
        member, _ = members.sign_in(session, openid=openid, unionid=None, now=rt.now())
        if credit:
            points.credit(session, rt.settings, member.id, credit, "adjustment", source_ref="setup",
                          idempotency_key=f"setup:{openid}", now=rt.now())
        return member.id


def new_merchant(rt: Runtime) -> int:
    with rt.sessions.begin() as session:
        return merchants.create(session, "Race Track Cafe", rt.now())[0].id


def reasons(rt: Runtime, member_id: int) -> Counter:
    with rt.sessions.begin() as session:
        return Counter(session.scalars(select(PointsEntry.reason).where(PointsEntry.member_id == member_id)))


def account(rt: Runtime, member_id: int) -> PointsAccount:
    with rt.sessions.begin() as session:
        return session.get(PointsAccount, member_id)


def count(rt: Runtime, model) -> int:
    with rt.sessions.begin() as session:
        return session.scalar(select(func.count()).select_from(model))


# --- service level ---------------------------------------------------------------------------------

def test_concurrent_redemptions_never_overdraw_exactly_as_many_succeed_as_the_balance_covers(rt):
    member_id = new_member(rt, credit=255)

    results = race_in_transactions(rt, WORKERS, lambda session, i: points.redeem(
        session, member_id, 10, source_ref="gift:race", idempotency_key=f"race:{i}", now=rt.now()))

    assert unexpected(results) == []
    assert codes(results) == {"ok": 25, "points.insufficient": 25}
    assert all(isinstance(r, RuleViolation) for r in results if not isinstance(r, points.Posted))
    assert sorted(r.entry.balance_after for r in results if isinstance(r, points.Posted)) == list(range(5, 255, 10))
    assert account(rt, member_id).balance == 5
    assert reasons(rt, member_id) == {"adjustment": 1, "redemption": 25}


def test_concurrent_check_ins_of_one_member_award_exactly_once(rt):
    member_id = new_member(rt)

    results = race_in_transactions(rt, 20, lambda session, i: checkin.check_in(
        session, rt.settings, member_id, now=rt.now()).points)

    assert unexpected(results) == []
    assert codes(results) == {"ok": 1, "checkin.already_today": 19}
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, Exception))
    assert account(rt, member_id).balance == 5
    assert reasons(rt, member_id) == {"checkin": 1}
    assert count(rt, checkin.Checkin) == 1


def test_one_receipt_posted_concurrently_is_recorded_and_awarded_once(rt):
    member_id = new_member(rt)
    merchant_id = new_merchant(rt)

    def post(session, i):
        recorded = purchases.record_purchase(session, rt.settings, merchant_id=merchant_id, member_id=member_id,
                                             receipt_no="R-RACE", amount_fen=1_234_500, occurred_at=rt.now(),
                                             now=rt.now())
        return recorded.purchase.id, recorded.purchase.points_total, recorded.replayed

    results = race_in_transactions(rt, 20, post)

    assert [r for r in results if isinstance(r, Exception)] == []
    assert len({(purchase_id, total) for purchase_id, total, _ in results}) == 1
    assert Counter(replayed for _, _, replayed in results) == {True: 19, False: 1}
    assert count(rt, purchases.Purchase) == 1
    assert reasons(rt, member_id) == {"purchase": 1}
    assert account(rt, member_id).balance == 1234


def test_one_refund_number_posted_concurrently_refunds_once(rt):
    member_id = new_member(rt)
    merchant_id = new_merchant(rt)
    with rt.sessions.begin() as session:
        purchases.record_purchase(session, rt.settings, merchant_id=merchant_id, member_id=member_id,
                                  receipt_no="R-1", amount_fen=500_000, occurred_at=rt.now(), now=rt.now())

    def post(session, i):
        done = purchases.refund(session, merchant_id=merchant_id, receipt_no="R-1", refund_no="F-RACE",
                                amount_fen=200_000, now=rt.now())
        return done.refund.id, done.refund.points_reversed, done.replayed

    results = race_in_transactions(rt, 20, post)

    assert [r for r in results if isinstance(r, Exception)] == []
    assert len({(refund_id, reversed_) for refund_id, reversed_, _ in results}) == 1
    assert Counter(replayed for _, _, replayed in results) == {True: 19, False: 1}
    assert count(rt, purchases.Refund) == 1
    assert reasons(rt, member_id) == {"purchase": 1, "reversal": 1}
    assert account(rt, member_id).balance == 300
    with rt.sessions.begin() as session:
        assert purchases.find(session, merchant_id, "R-1").refunded_fen == 200_000


def test_one_refund_number_racing_on_different_receipts_refunds_once_and_answers_409_to_the_rest(rt):
    # The purchase row lock serializes refunds of one receipt, not of several: here the unique
    # (merchant, refund_no) row must decide. Receipts belong to two members, so no account lock
    # serializes them either.
    merchant_id = new_merchant(rt)
    member_ids = [new_member(rt, "o-race-a"), new_member(rt, "o-race-b")]
    with rt.sessions.begin() as session:
        for i in range(20):
            purchases.record_purchase(session, rt.settings, merchant_id=merchant_id, member_id=member_ids[i % 2],
                                      receipt_no=f"R-{i}", amount_fen=100_000, occurred_at=rt.now(), now=rt.now())

    results = race_in_transactions(rt, 20, lambda session, i: purchases.refund(
        session, merchant_id=merchant_id, receipt_no=f"R-{i}", refund_no="F-SAME", amount_fen=40_000, now=rt.now()))

    assert unexpected(results) == []
    assert codes(results) == {"ok": 1, "refund.number_conflict": 19}
    assert count(rt, purchases.Refund) == 1
    balances = sorted(account(rt, m).balance for m in member_ids)
    assert balances == [960, 1000]  # 10 purchases of 100 points each; one refund took 40
    assert sum(reasons(rt, m)["reversal"] for m in member_ids) == 1


def test_different_refund_numbers_racing_on_one_receipt_never_refund_more_than_paid(rt):
    member_id = new_member(rt)
    merchant_id = new_merchant(rt)
    with rt.sessions.begin() as session:
        purchases.record_purchase(session, rt.settings, merchant_id=merchant_id, member_id=member_id,
                                  receipt_no="R-1", amount_fen=100_000, occurred_at=rt.now(), now=rt.now())

    results = race_in_transactions(rt, 20, lambda session, i: purchases.refund(
        session, merchant_id=merchant_id, receipt_no="R-1", refund_no=f"F-{i}", amount_fen=30_000, now=rt.now()))

    assert unexpected(results) == []
    assert codes(results) == {"ok": 3, "refund.exceeds_purchase": 17}
    assert sorted(r.refund.points_reversed for r in results if isinstance(r, purchases.Refunded)) == [30, 30, 30]
    assert account(rt, member_id).balance == 10


def test_concurrent_redemptions_with_the_same_idempotency_key_debit_once(rt):
    member_id = new_member(rt, credit=100)

    results = race_in_transactions(rt, 20, lambda session, i: points.redeem(
        session, member_id, 30, source_ref="gift:race", idempotency_key="one-key", now=rt.now()))

    assert [r for r in results if isinstance(r, Exception)] == []
    assert len({r.entry.id for r in results}) == 1
    assert Counter(r.replayed for r in results) == {True: 19, False: 1}
    assert account(rt, member_id).balance == 70
    assert reasons(rt, member_id) == {"adjustment": 1, "redemption": 1}


def test_concurrent_gift_redemptions_with_the_same_key_create_one_redemption(rt):
    member_id = new_member(rt, credit=1000)

    def redeem(session, i):
        redemption, replayed = gifts.redeem_gift(session, rt.settings, member_id, gift_code="umbrella", quantity=1,
                                                 idempotency_key="gift-key", now=rt.now())
        return redemption.id, redemption.pickup_code, replayed

    results = race_in_transactions(rt, 20, redeem)

    assert [r for r in results if isinstance(r, Exception)] == []
    assert len({(rid, code) for rid, code, _ in results}) == 1
    assert Counter(replayed for _, _, replayed in results) == {True: 19, False: 1}
    assert count(rt, gifts.GiftRedemption) == 1
    assert account(rt, member_id).balance == 700


def test_mixed_concurrent_traffic_with_lazy_and_swept_expiry_keeps_the_ledger_sound(rt):
    """Purchases, redemptions, refunds and expiry sweeps of three members, all at once."""
    merchant_id = new_merchant(rt)
    member_ids = [new_member(rt, f"o-mixed-{k}", credit=1000) for k in range(3)]
    with rt.sessions.begin() as session:
        for member_id in member_ids:  # 300 points that are already past due when the race starts
            points.credit(session, rt.settings, member_id, 300, "adjustment", source_ref="short",
                          idempotency_key=f"short:{member_id}", now=rt.now(),
                          expires_at=rt.now() + timedelta(days=1))
    rt.clock.advance(days=2)
    now = rt.now()

    def work(i: int) -> None:
        member_id = member_ids[i % 3]
        if i % 8 == 0:
            with rt.sessions.begin() as session:
                points.expire_due(session, now)
        with rt.sessions.begin() as session:
            purchases.record_purchase(session, rt.settings, merchant_id=merchant_id, member_id=member_id,
                                      receipt_no=f"W-{i}", amount_fen=100_000, occurred_at=now, now=now)
        with rt.sessions.begin() as session:
            points.redeem(session, member_id, 50, source_ref="gift:race", idempotency_key=f"w:{i}", now=now)
        with rt.sessions.begin() as session:
            purchases.refund(session, merchant_id=merchant_id, receipt_no=f"W-{i}", refund_no=f"WF-{i}",
                             amount_fen=50_000, now=now)
        with rt.sessions.begin() as session:  # a till retrying everything changes nothing
            assert purchases.record_purchase(session, rt.settings, merchant_id=merchant_id, member_id=member_id,
                                             receipt_no=f"W-{i}", amount_fen=100_000, occurred_at=now,
                                             now=now).replayed
            assert purchases.refund(session, merchant_id=merchant_id, receipt_no=f"W-{i}", refund_no=f"WF-{i}",
                                    amount_fen=50_000, now=now).replayed

    results = race(48, work)

    assert [r for r in results if isinstance(r, Exception)] == []
    for member_id in member_ids:
        # 1000 + 16 x (100 earned - 50 redeemed - 50 refunded); the short-lived 300 expired exactly once.
        assert (account(rt, member_id).balance, account(rt, member_id).debt) == (1000, 0)
        assert reasons(rt, member_id) == {"adjustment": 2, "expiry": 1, "purchase": 16, "redemption": 16,
                                          "reversal": 16}
    with rt.sessions.begin() as session:
        assert points.check_invariants(session) == []


# --- through the HTTP API --------------------------------------------------------------------------

def test_concurrent_check_in_requests_award_once_and_answer_409_to_the_rest(rt, app, member):
    headers = member["headers"]

    def post(i: int):
        response = app.test_client().post("/api/v1/checkins", json={}, headers=headers)
        return response.status_code, response.get_json()

    results = race(20, post)

    assert [r for r in results if isinstance(r, Exception)] == []
    assert Counter(status for status, _ in results) == {201: 1, 409: 19}
    [(_, won)] = [r for r in results if r[0] == 201]
    assert (won["points"], won["streak"], won["balance"]) == (5, 1, 5)
    assert {body["error"]["code"] for status, body in results if status == 409} == {"checkin.already_today"}
    me = app.test_client().get("/api/v1/me/points", headers=headers).get_json()
    assert me["balance"] == 5
    assert [e["reason"] for e in me["entries"]] == ["checkin"]


def test_concurrent_gift_redemption_requests_with_one_idempotency_key_spend_once(rt, app, member):
    member_id = member["member"]["id"]
    with rt.sessions.begin() as session:
        points.credit(session, rt.settings, member_id, 500, "adjustment", source_ref="setup",
                      idempotency_key="setup", now=rt.now())
    headers = {**member["headers"], "Idempotency-Key": "tap-once"}

    def post(i: int):
        response = app.test_client().post("/api/v1/me/points/redemptions", json={"gift_code": "coffee"},
                                          headers=headers)
        return response.status_code, response.get_json()

    results = race(20, post)

    assert [r for r in results if isinstance(r, Exception)] == []
    assert Counter(status for status, _ in results) == {201: 1, 200: 19}
    assert len({(body["id"], body["pickup_code"]) for _, body in results}) == 1
    assert account(rt, member_id).balance == 380


# --- deals and coupons -----------------------------------------------------------------------------

def live_deal(rt: Runtime, quota: int, per_member_limit: int, benefit: dict | None = None) -> int:
    from mallapp.domain import deals, venue_admin

    now = rt.now()
    with rt.sessions.begin() as session:
        merchant_id = merchants.create(session, "Flash Sale Shoes", now)[0].id
        store = venue_admin.create_store(session, name="Flash", floor=1, x=0, y=0, merchant_id=merchant_id, now=now)
        deal = deals.create(session, merchant_id, title="First 100 pairs", store_id=store.id,
                            starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=1), quota=quota,
                            per_member_limit=per_member_limit,
                            benefit=benefit or {"kind": "percent_off", "percent": 50}, now=now)
        deals.transition(session, merchant_id, deal.id, "submit", now)
        deals.review(session, deal.id, approve=True, now=now)
        return deal.id


def test_a_thousand_concurrent_claims_on_a_hundred_coupon_deal_yield_exactly_a_hundred(rt):
    from mallapp.domain import coupons, deals

    deal_id = live_deal(rt, quota=100, per_member_limit=2)
    with rt.sessions.begin() as session:
        member_ids = [members.sign_in(session, openid=f"o-flash-{i}", unionid=None, now=rt.now())[0].id
                      for i in range(200)]

    def claim(i: int) -> Any:
        # 200 members, 5 attempts each, all released together; the pool hands out connections in turn.
        with rt.sessions.begin() as session:
            return coupons.claim(session, rt.settings, member_ids[i % 200], deal_id, rt.now())

    results = race(1000, claim)

    assert unexpected(results) == []
    outcome = codes(results)
    assert outcome["ok"] == 100 and set(outcome) <= {"ok", "deal.sold_out", "deal.limit_reached"}
    with rt.sessions.begin() as session:
        held = session.execute(select(coupons.Coupon.member_id, func.count())
                               .where(coupons.Coupon.deal_id == deal_id).group_by(coupons.Coupon.member_id)).all()
        assert sum(n for _, n in held) == 100
        assert max(n for _, n in held) <= 2
        assert session.get(deals.Deal, deal_id).claimed == 100
        assert len(set(session.scalars(select(coupons.Coupon.code)))) == 100


def test_concurrent_redemptions_of_one_coupon_use_it_once_and_credit_its_points_once(rt):
    from mallapp.domain import coupons, deals

    deal_id = live_deal(rt, quota=1, per_member_limit=1, benefit={"kind": "bonus_points", "points": 40})
    member_id = new_member(rt, "o-bonus")
    with rt.sessions.begin() as session:
        code = coupons.claim(session, rt.settings, member_id, deal_id, rt.now()).coupon.code
        deal = session.get(deals.Deal, deal_id)
        merchant_id, store_id = deal.merchant_id, deal.store_id

    # Half the tills retry one request id, the other half send their own: one redemption either way.
    results = race_in_transactions(rt, WORKERS, lambda session, i: coupons.redeem(
        session, rt.settings, rt.secret, merchant_id=merchant_id, store_id=store_id, code=code,
        request_id="till-a" if i % 2 else f"till-{i}", now=rt.now()))

    assert unexpected(results) == []
    first = [r for r in results if isinstance(r, coupons.Redeemed) and not r.replayed]
    assert len(first) == 1
    replays = sum(1 for r in results if isinstance(r, coupons.Redeemed) and r.replayed)
    assert replays + codes(results)["coupon.already_used"] == WORKERS - 1
    assert reasons(rt, member_id) == {"coupon": 1}
    assert account(rt, member_id).balance == 40
    with rt.sessions.begin() as session:
        assert session.get(deals.Deal, deal_id).redeemed == 1


# --- rewards (mallapp.domain.rewards) ---------------------------------------------------------------------

def test_concurrent_birthday_gift_calls_credit_once(rt):
    from datetime import date

    from mallapp.domain import rewards

    member_id = new_member(rt, "o-birthday")
    with rt.sessions.begin() as session:
        session.get(members.Member, member_id).birthday = date(1990, 3, 20)  # the clock's month

    def work(session, i: int) -> Any:
        if i % 2:  # the clock's sweep and members opening their profile, at once
            return rewards.issue_birthday_gifts(session, rt.settings, rt.now())
        return rewards.issue_birthday_gift(session, rt.settings, members.get(session, member_id), rt.now())

    results = race_in_transactions(rt, 10, work)
    assert unexpected(results) == []
    assert reasons(rt, member_id) == Counter({"birthday_gift": 1})
    assert account(rt, member_id).balance == rt.settings.birthday.gift_points


def test_concurrent_pack_issues_for_one_member_give_each_coupon_once(rt):
    from mallapp.domain import rewards, venue_admin
    from mallapp.domain.coupons import Coupon
    from mallapp.domain.deals import Deal

    with rt.sessions.begin() as session:
        merchant_id = merchants.create(session, "Mall Operations", rt.now())[0].id
        venue_admin.create_store(session, name=rt.settings.new_member_pack.house_store, floor=1, x=0, y=0,
                                 merchant_id=merchant_id, now=rt.now())
    member_id = new_member(rt, "o-pack")  # the pack deals do not exist yet: the race creates them too

    results = race_in_transactions(rt, 10, lambda session, i: len(rewards.issue_new_member_pack(
        session, rt.settings, members.get(session, member_id), rt.now())))
    assert unexpected(results) == [] and sum(results) == 4
    with rt.sessions.begin() as session:
        assert session.scalar(select(func.count()).select_from(Coupon).where(Coupon.member_id == member_id)) == 4
        assert session.scalar(select(func.count()).select_from(Deal)) == 4
        assert session.scalar(select(func.sum(Deal.claimed))) == 4


def test_concurrent_first_purchases_of_a_referred_member_reward_the_referrer_once(rt):
    from mallapp.domain.rewards import Referral

    referrer_id = new_member(rt, "o-referrer")
    newcomer_id = new_member(rt, "o-newcomer")
    with rt.sessions.begin() as session:
        session.get(members.Member, newcomer_id).referred_by_id = referrer_id
    merchant_id = new_merchant(rt)

    results = race_in_transactions(rt, 10, lambda session, i: purchases.record_purchase(
        session, rt.settings, merchant_id=merchant_id, member_id=newcomer_id, receipt_no=f"R-{i}",
        amount_fen=10_000, occurred_at=rt.now(), now=rt.now()))
    assert unexpected(results) == [] and codes(results) == Counter({"ok": 10})
    with rt.sessions.begin() as session:
        assert session.scalar(select(func.count()).select_from(Referral)) == 1
    assert reasons(rt, referrer_id) == Counter({"referral": 2})
    assert account(rt, referrer_id).balance == rt.settings.referral.reward_points + 10



# --- proximity offers ------------------------------------------------------------------------------

@pytest.fixture
def shop(rt, venue) -> factories.Shop:
    return factories.build_shop(rt, venue)


def test_concurrent_offer_decisions_for_one_member_stay_within_the_daily_cap(rt, shop):
    # Six deals at the shop, and 50 consumers deciding the member's dwell there at once: without
    # the lock on the member's row each would count the day's offers as none and offer one.
    deal_ids = {factories.live_deal(rt, shop, title=f"Deal {n}", quota=100) for n in range(6)}

    def decide(session, _i):
        recorded = offers.offer(session, rt.settings, factories.at_store(rt, shop), rt.now())
        return None if recorded is None else recorded.notification_id

    results = race_in_transactions(rt, WORKERS, decide)
    assert unexpected(results) == []
    offered = [r for r in results if r is not None]
    with rt.sessions.begin() as session:
        pushed = list(session.scalars(select(Notification.deal_id).where(Notification.member_id == shop.member)))
    assert len(offered) == len(pushed) == rt.settings.offers.max_pushes_per_day
    assert len(set(pushed)) == len(pushed) and set(pushed) <= deal_ids


# --- table reservations ----------------------------------------------------------------------------

def test_a_thousand_concurrent_bookings_of_a_hundred_table_slot_yield_exactly_a_hundred(rt):
    from mallapp.domain import reservations

    merchant_id, store_id = restaurant(rt)
    slot_id = publish(rt, merchant_id, store_id, ["12:00"], [Band(1, 4, 100)])[0]
    with rt.sessions.begin() as session:
        member_ids = [members.sign_in(session, openid=f"o-diner-{i}", unionid=None, now=rt.now())[0].id
                      for i in range(250)]

    def attempt(i: int) -> Any:
        # 250 members, 4 attempts each with their own request ids, all released together.
        with rt.sessions.begin() as session:
            return reservations.book(session, rt.settings, member_ids[i % 250], slot_id, 2, f"req-{i}", rt.now())

    results = race(1000, attempt)

    assert unexpected(results) == []
    outcome = codes(results)
    assert outcome["ok"] == 100 and set(outcome) <= {"ok", "reservation.full", "reservation.overlap"}
    assert slot_figures(rt, slot_id) == (100, 100)
    with rt.sessions.begin() as session:
        per_member = session.execute(select(reservations.Reservation.member_id, func.count())
                                     .group_by(reservations.Reservation.member_id)).all()
    assert len(per_member) == 100 and {n for _, n in per_member} == {1}


def test_concurrent_bookings_by_one_member_of_overlapping_slots_at_one_restaurant_hold_exactly_one(rt):
    from mallapp.domain import reservations

    merchant_id, store_id = restaurant(rt)
    slot_ids = publish(rt, merchant_id, store_id, [f"12:{m:02d}" for m in range(WORKERS)], [Band(1, 4, 5)])
    member_id = new_member(rt, "o-hoarder")

    results = race_in_transactions(rt, WORKERS, lambda session, i: reservations.book(
        session, rt.settings, member_id, slot_ids[i], 2, f"req-{i}", rt.now()))

    assert unexpected(results) == []
    assert codes(results) == {"ok": 1, "reservation.overlap": WORKERS - 1}


def test_concurrent_retries_of_one_booking_take_one_table(rt):
    from mallapp.domain import reservations

    merchant_id, store_id = restaurant(rt)
    slot_id = publish(rt, merchant_id, store_id, ["12:00"], [Band(1, 4, 5)])[0]
    member_id = new_member(rt, "o-retrier")

    results = race_in_transactions(rt, WORKERS, lambda session, i: reservations.book(
        session, rt.settings, member_id, slot_id, 2, "one-tap", rt.now()))

    assert unexpected(results) == []
    assert sum(1 for r in results if not r.replayed) == 1
    assert len({r.reservation.id for r in results}) == 1
    assert slot_figures(rt, slot_id) == (1, 1)


def test_concurrent_changes_in_opposite_directions_neither_deadlock_nor_overfill(rt):
    from mallapp.domain import reservations

    merchant_id, store_id = restaurant(rt)
    lunch, dinner = publish(rt, merchant_id, store_id, ["12:00", "18:00"], [Band(1, 4, 30)])
    held = []
    for i in range(WORKERS):
        member_id = new_member(rt, f"o-mover-{i}")
        held.append((member_id, book(rt, member_id, lunch if i % 2 else dinner).reservation.id, i % 2))

    results = race_in_transactions(rt, WORKERS, lambda session, i: reservations.change(
        session, rt.settings, held[i][0], held[i][1], slot_id=dinner if held[i][2] else lunch, now=rt.now()))

    assert unexpected(results) == []
    assert set(codes(results)) <= {"ok", "reservation.full"}
    for slot_id in (lunch, dinner):
        booked, holding = slot_figures(rt, slot_id)
        assert booked == holding <= 30
    assert sum(slot_figures(rt, s)[0] for s in (lunch, dinner)) == WORKERS


def test_two_clocks_releasing_and_reminding_at_once_do_each_booking_once(rt, clock):
    from mallapp.domain import reservations

    merchant_id, store_id = restaurant(rt)
    slot_ids = publish(rt, merchant_id, store_id, ["12:00"], [Band(1, 2, 20), Band(3, 4, 20)])
    diners = [new_member(rt, f"o-clock-{i}") for i in range(30)]
    for i, member_id in enumerate(diners):
        book(rt, member_id, slot_ids[i % 2], party=2 if i % 2 == 0 else 3)

    clock.now = NOON - timedelta(minutes=30)
    reminded = race(10, lambda _i: reservations.remind_due(rt.sessions, rt.settings, rt.senders, rt.now(), limit=4))
    clock.now = NOON + timedelta(hours=1)
    released = race(10, lambda _i: reservations.release_no_shows(rt.sessions, rt.settings, rt.senders, rt.now(),
                                                                  limit=4))

    assert unexpected(reminded + released) == []
    assert sum(reminded) == sum(released) == 30
    assert [slot_figures(rt, s) for s in slot_ids] == [(0, 0), (0, 0)]
    for member_id in diners:
        assert [key.split(":")[2] for key in inbox_keys(rt, member_id)] == ["booked", "reminder", "no_show"]


# --- restaurant queues -----------------------------------------------------------------------------

def _open_restaurant(rt: Runtime) -> tuple[int, int]:
    from mallapp.domain import queueing, venue_admin

    merchant_id = new_merchant(rt)
    with rt.sessions.begin() as session:
        store_id = venue_admin.create_store(session, name="Race Noodles", floor=3, x=0, y=0,
                                            merchant_id=merchant_id, now=rt.now()).id
        queueing.set_open(session, rt.settings, merchant_id, store_id, True, None, rt.now())
    return merchant_id, store_id


def test_members_taking_numbers_at_once_get_unique_consecutive_numbers_and_true_places(rt):
    from mallapp.domain import queueing

    _, store_id = _open_restaurant(rt)
    diners = [new_member(rt, f"o-queue-{i}") for i in range(WORKERS)]
    results = race_in_transactions(rt, WORKERS, lambda session, i: queueing.take(
        session, rt.settings, diners[i], store_id, 1 + i % 2, rt.now()).ticket.ticket_no)

    assert unexpected(results) == [] and codes(results) == {"ok": WORKERS}
    assert sorted(results) == [f"A{n:03d}" for n in range(1, WORKERS + 1)]
    from mallapp.domain.queueing.models import QueueTicket

    with rt.sessions.begin() as session:
        taken = session.execute(select(QueueTicket.number, QueueTicket.ahead_at_take)).all()
    # Each saw exactly the parties numbered before it: the numbering and the counting agree.
    assert sorted(ahead for _, ahead in taken) == list(range(WORKERS))
    assert all(ahead == number - 1 for number, ahead in taken)


def test_one_member_taking_numbers_at_once_in_every_band_holds_one_ticket(rt):
    from mallapp.domain import queueing
    from mallapp.domain.queueing.models import QueueCounter, QueueTicket

    _, store_id = _open_restaurant(rt)
    member_id = new_member(rt, "o-hoarder")
    n = 12
    results = race_in_transactions(rt, n, lambda session, i: queueing.take(
        session, rt.settings, member_id, store_id, (2, 4, 6)[i % 3], rt.now()))

    assert unexpected(results) == []
    assert codes(results) == {"ok": 1, "queue.ticket_active": n - 1}
    with rt.sessions.begin() as session:
        assert session.scalar(select(func.count()).select_from(QueueTicket)) == 1
        # A refused take burns no number.
        assert session.scalar(select(func.sum(QueueCounter.last_number))) == 1


def test_a_walk_in_sent_again_at_once_from_the_till_gets_one_ticket_and_burns_no_number(rt):
    from mallapp.domain import queueing
    from mallapp.domain.queueing.models import QueueCounter

    merchant_id, store_id = _open_restaurant(rt)
    n = 12
    results = race_in_transactions(rt, n, lambda session, i: queueing.walk_in(
        session, rt.settings, merchant_id, store_id, 2, f"till-{i % 2}", rt.now()))

    assert unexpected(results) == [] and codes(results) == {"ok": n}
    # Two request ids: two tickets, every retry answered with its first; the retries' numbers went back.
    assert sorted({r.ticket.ticket_no for r in results}) == ["A001", "A002"]
    assert sum(not r.replayed for r in results) == 2
    with rt.sessions.begin() as session:
        assert session.scalar(select(QueueCounter.last_number)) == 2


def test_a_call_double_clicked_at_the_till_calls_one_party(rt):
    from mallapp.domain import queueing

    merchant_id, store_id = _open_restaurant(rt)
    for i in range(5):
        with rt.sessions.begin() as session:
            queueing.take(session, rt.settings, new_member(rt, f"o-line-{i}"), store_id, 2, rt.now())
    n = 20
    results = race_in_transactions(rt, n, lambda session, i: queueing.call_next(
        session, rt.senders, rt.settings, merchant_id, store_id, "A", f"till-{i % 2}", rt.now()))

    assert unexpected(results) == []
    # Two request ids: two parties called, every retry answered with its first call.
    assert {r.ticket.ticket_no for r in results} == {"A001", "A002"}
    assert sum(not r.replayed for r in results) == 2
    with rt.sessions.begin() as session:
        called = [t for t in queueing.active_tickets(session, store_id) if t.status == "called"]
    assert len(called) == 2


def test_two_clocks_lapsing_at_once_lapse_and_tell_each_ticket_once(rt, clock):
    from mallapp.domain import queueing

    merchant_id, store_id = _open_restaurant(rt)
    diners = [new_member(rt, f"o-lapse-{i}") for i in range(10)]
    for i, member_id in enumerate(diners):
        with rt.sessions.begin() as session:
            queueing.take(session, rt.settings, member_id, store_id, 2, rt.now())
        with rt.sessions.begin() as session:
            queueing.call_next(session, rt.senders, rt.settings, merchant_id, store_id, "A", f"c-{i}", rt.now())
    clock.advance(seconds=rt.settings.queue.grace_s)
    lapsed = race(6, lambda _i: queueing.lapse_due(rt.sessions, rt.settings, rt.senders, rt.now()))

    assert unexpected(lapsed) == [] and sum(lapsed) == 10
    with rt.sessions.begin() as session:
        assert session.scalar(select(func.count()).where(Notification.key.like("queue:%:lapsed"))) == 10
