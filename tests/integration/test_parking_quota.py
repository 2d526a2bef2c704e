"""Merchants' parking-coupon quota at the service level: bought, reserved by claims and issues, returned on
expiry; the quota row always equals the sum of its entries and never goes negative."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from factories import parking_coupon_deal, race, wide_runtime
from sqlalchemy import func, select

from mallapp.domain import coupons, deals, members, rewards
from mallapp.domain.campaigns import delivery
from mallapp.domain.parking import merchant_coupons, quota
from mallapp.domain.parking.models import ParkingBenefit, ParkingQuotaEntry
from mallapp.errors import MallError


def _member(rt, openid: str) -> int:
    with rt.sessions.begin() as s:
        return members.sign_in(s, openid=openid, unionid=None, now=rt.now())[0].id


def _claim(rt, member_id: int, deal_id: int) -> Any:
    try:
        with rt.sessions.begin() as s:
            return coupons.claim(s, rt.settings, member_id, deal_id, rt.now()).coupon.id
    except MallError as exc:
        return exc


def _balance(rt, merchant_id: int) -> quota.Balance:
    with rt.sessions.begin() as s:
        return quota.balance(s, merchant_id)


def _sound(rt) -> None:
    with rt.sessions.begin() as s:
        assert quota.check_invariants(s) == []


def _reasons(rt, merchant_id: int) -> Counter:
    with rt.sessions.begin() as s:
        return Counter(s.scalars(select(ParkingQuotaEntry.reason).where(ParkingQuotaEntry.merchant_id == merchant_id)))


def test_a_claim_reserves_the_coupons_value_and_refuses_once_the_quota_is_used_up(rt):
    made = parking_coupon_deal(rt, value=2, quota_bought=5, deal_quota=10)
    claims = [_claim(rt, _member(rt, f"o-park-{i}"), made.deal) for i in range(3)]

    assert [isinstance(c, int) for c in claims] == [True, True, False]
    assert claims[2].code == "parking.quota_exhausted" and claims[2].status == 409
    assert claims[2].details == {"unit": "hours", "balance": 1, "needed": 2}
    assert _balance(rt, made.merchant) == quota.Balance(made.merchant, 1, 0)
    with rt.sessions.begin() as s:  # the refused claim changed nothing
        deal = s.get(deals.Deal, made.deal)
        assert deal.claimed == 2
        assert s.scalar(select(func.count()).select_from(coupons.Coupon)) == 2
    assert _reasons(rt, made.merchant) == {"bought": 1, "reserved": 2}
    _sound(rt)


def test_an_amount_coupon_reserves_fen(rt):
    made = parking_coupon_deal(rt, kind="parking_amount", value=1000, quota_bought=2500)
    _claim(rt, _member(rt, "o-amount"), made.deal)
    assert _balance(rt, made.merchant) == quota.Balance(made.merchant, 0, 1500)
    _sound(rt)


def test_a_purchase_prices_hours_from_the_setting_and_a_retry_returns_the_first(rt):
    made = parking_coupon_deal(rt, quota_bought=0)
    with rt.sessions.begin() as s:
        first = quota.buy(s, rt.settings, made.merchant, unit="hours", amount=40, idempotency_key="k1", now=rt.now())
        again = quota.buy(s, rt.settings, made.merchant, unit="hours", amount=40, idempotency_key="k1", now=rt.now())
        fen = quota.buy(s, rt.settings, made.merchant, unit="fen", amount=8000, idempotency_key="k2", now=rt.now())
        with pytest.raises(MallError) as reused:
            quota.buy(s, rt.settings, made.merchant, unit="hours", amount=41, idempotency_key="k1", now=rt.now())
    assert first.entry.price_fen == 40 * rt.settings.parking.quota_price_fen_per_hour
    assert fen.entry.price_fen == 8000  # amount quota sells at face value
    assert again.replayed and again.entry.id == first.entry.id
    assert reused.value.code == "parking.quota_key_reused"
    assert _balance(rt, made.merchant) == quota.Balance(made.merchant, 40, 8000)
    _sound(rt)


def test_an_adjustment_never_takes_the_quota_below_zero(rt):
    made = parking_coupon_deal(rt, quota_bought=3)
    with rt.sessions.begin() as s:
        quota.adjust(s, made.merchant, unit="hours", delta=-2, reason="typo in the invoice", by="ops-admin",
                     idempotency_key="fix-1", now=rt.now())
    with rt.sessions.begin() as s, pytest.raises(MallError) as refused:
        quota.adjust(s, made.merchant, unit="hours", delta=-2, reason="again", by="ops-admin", idempotency_key="fix-2",
                     now=rt.now())
    assert refused.value.code == "parking.quota_exhausted"
    assert _balance(rt, made.merchant).hours == 1
    with rt.sessions.begin() as s:
        [entry] = [e for e in quota.entries(s, made.merchant) if e.reason == "adjusted"]
        assert entry.note == "ops-admin: typo in the invoice"
    _sound(rt)


def test_expired_unused_coupons_return_their_quota_once_even_when_the_job_runs_twice(rt, clock):
    made = parking_coupon_deal(rt, value=2, quota_bought=10, days=3)
    used, lapsed = _member(rt, "o-used"), _member(rt, "o-lapsed")
    used_coupon, lapsed_coupon = _claim(rt, used, made.deal), _claim(rt, lapsed, made.deal)
    with rt.sessions.begin() as s:  # one is used in a parking payment (as parkpay marks it)
        s.get(coupons.Coupon, used_coupon).redeemed_at = rt.now()
    assert merchant_coupons.return_expired(rt.sessions, rt.now()) == 0  # nothing expired yet
    clock.now += timedelta(days=4)

    assert merchant_coupons.return_expired(rt.sessions, rt.now(), batch=1) == 1
    assert merchant_coupons.return_expired(rt.sessions, rt.now()) == 0
    assert _balance(rt, made.merchant).hours == 8  # 10 - 2 - 2 + 2
    with rt.sessions.begin() as s:
        assert quota.return_coupons(s, made.merchant, [lapsed_coupon], rt.now()) == 0  # once per coupon
    _sound(rt)


def test_the_job_returns_in_batches_and_leaves_coupons_it_never_reserved(rt, clock):
    made = parking_coupon_deal(rt, value=1, quota_bought=10, deal_quota=10, days=1)
    for i in range(5):
        _claim(rt, _member(rt, f"o-batch-{i}"), made.deal)
    with rt.sessions.begin() as s:  # a coupon from before quotas existed: nothing was reserved for it
        s.add(coupons.Coupon(deal_id=made.deal, member_id=_member(rt, "o-old"), code="OLDCOUPON",
                             claimed_at=rt.now()))
    clock.now += timedelta(days=2)
    assert merchant_coupons.return_expired(rt.sessions, rt.now(), batch=2) == 5
    assert _balance(rt, made.merchant).hours == 10
    assert _reasons(rt, made.merchant) == {"bought": 1, "reserved": 5, "returned": 5}
    _sound(rt)


def test_a_campaign_issues_no_more_parking_coupons_than_the_quota_covers(rt):
    made = parking_coupon_deal(rt, value=3, quota_bought=7, deal_quota=100)
    ids = [_member(rt, f"o-camp-{i}") for i in range(4)]
    with rt.sessions.begin() as s:
        campaign = type("C", (), {"id": 99, "name": "Free parking week"})()
        offer = {"kind": "coupon", "deal_id": made.deal, "title": "停车券", "coupon_valid_days": 7}
        delivery._step(s, rt.settings, campaign, 0, offer, ids, rt.now())
    with rt.sessions.begin() as s:
        assert s.scalar(select(func.count()).select_from(coupons.Coupon)) == 2
    assert _balance(rt, made.merchant).hours == 1
    _sound(rt)


def test_an_issue_reserves_once_per_key_and_is_refused_before_writing_when_the_quota_is_short(rt):
    made = parking_coupon_deal(rt, value=2, quota_bought=2)
    with rt.sessions.begin() as s:
        deal = s.get(deals.Deal, made.deal)
        first = members.sign_in(s, openid="o-pack-1", unionid=None, now=rt.now())[0]
        second = members.sign_in(s, openid="o-pack-2", unionid=None, now=rt.now())[0]
        assert coupons.issue(s, rt.settings, first.id, deal, key="pack:t:1", valid_until=rt.now() + timedelta(days=30),
                             now=rt.now()) is not None
        assert coupons.issue(s, rt.settings, first.id, deal, key="pack:t:1", valid_until=rt.now() + timedelta(days=30),
                             now=rt.now()) is None  # the same key, even with the quota used up: a repeat
        with pytest.raises(MallError) as refused:
            coupons.issue(s, rt.settings, second.id, deal, key="pack:t:2", valid_until=rt.now() + timedelta(days=30),
                          now=rt.now())
        assert refused.value.code == "parking.quota_exhausted"
    assert _reasons(rt, made.merchant) == {"bought": 1, "reserved": 1}
    _sound(rt)


_PARKING_PACK = {"new_member_pack": {"coupons": [
    {"key": "welcome-parking", "title": "新人停车券 / Welcome parking", "store": "Parking Partner store",
     "benefit": {"kind": "parking_hours", "hours": 2}},
    {"key": "welcome-coffee", "title": "Welcome coffee", "store": "Parking Partner store",
     "benefit": {"kind": "amount_off", "amount_fen": 500}}]}}


@pytest.mark.parametrize("settings_overrides", [_PARKING_PACK], indirect=False)
def test_the_new_member_pack_carries_a_parking_coupon_while_the_quota_lasts_then_skips_it(rt):
    made = parking_coupon_deal(rt, value=2, quota_bought=2)
    given = []
    for openid in ("o-pack-1", "o-pack-2"):
        with rt.sessions.begin() as s:
            member, created = rewards.sign_in(s, rt.settings, openid=openid, unionid=None, now=rt.now())
            assert created
            given.append(sorted(h.deal.benefit_kind for h in coupons.wallet(s, member.id, rt.now())))
    # The first member gets both; the second signs up all the same, without the parking coupon.
    assert given == [["amount_off", "parking_hours"], ["amount_off"]]
    assert _balance(rt, made.merchant).hours == 0
    _sound(rt)


def test_usage_counts_claims_uses_expiries_and_returns_per_day(rt, clock):
    made = parking_coupon_deal(rt, value=2, quota_bought=20, days=1)
    first_day = rt.settings.mall.local_day(rt.now())
    a, b = _claim(rt, _member(rt, "o-u1"), made.deal), _claim(rt, _member(rt, "o-u2"), made.deal)
    with rt.sessions.begin() as s:  # a used (a parking payment's benefit row, as parkpay writes it)
        from mallapp.domain.parking.models import CarPark, ParkingPayment, ParkingSession
        park = CarPark(code="P1", name="P1", vendor_park_code="KT-1", fee_source="carpark", tariff={}, rules={},
                       active=True, created_at=rt.now(), updated_at=rt.now())
        s.add(park)
        s.flush()
        stay = ParkingSession(car_park_id=park.id, plate="沪A12345", order_no="o-1", entered_at=rt.now(),
                              status="parked", created_at=rt.now())
        s.add(stay)
        s.flush()
        pay = ParkingPayment(session_id=stay.id, seq=1, order_id="PK1", payer="member", status="paid", gross_fen=1500,
                             discount_fen=1000, cash_fen=500, points=0, items=[], quoted_at=rt.now(),
                             local_day=first_day, created_at=rt.now(), refunded_fen=0)
        s.add(pay)
        s.flush()
        s.add(ParkingBenefit(payment_id=pay.id, session_id=stay.id, member_id=s.get(coupons.Coupon, a).member_id,
                             kind="coupon", seconds=7200, fen=1000, points=0, coupon_id=a, local_day=first_day,
                             created_at=rt.now()))
        s.get(coupons.Coupon, a).redeemed_at = rt.now()
    clock.now += timedelta(days=2)
    merchant_coupons.return_expired(rt.sessions, rt.now())
    last_day = rt.settings.mall.local_day(rt.now())
    with rt.sessions.begin() as s:
        report = merchant_coupons.usage(s, rt.settings, made.merchant, first_day, last_day, rt.now())
    totals = merchant_coupons.totals(report)
    assert len(report.days) == 3
    assert (totals["claimed"], totals["claimed_hours"], totals["used"], totals["used_seconds"]) == (2, 4, 1, 7200)
    assert (totals["expired"], totals["expired_hours"], totals["returned_hours"]) == (1, 2, 2)
    assert report.days[0].claimed == 2 and report.days[0].used == 1 and isinstance(b, int)


# --- PostgreSQL: concurrent claims on two deals and issues never overspend one quota --------------

WORKERS = 40


@pytest.fixture
def wide_rt(settings, redis_client, clock) -> Iterator[Any]:
    yield from wide_runtime(settings, redis_client, clock, WORKERS)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_concurrent_claims_and_issues_on_two_deals_never_overspend_the_quota(wide_rt):
    rt = wide_rt
    made = parking_coupon_deal(rt, value=2, quota_bought=21, deal_quota=100)  # covers 10 coupons
    with rt.sessions.begin() as s:
        deal = s.get(deals.Deal, made.deal)
        twin = deals.create(s, made.merchant, title="Second parking deal", store_id=made.store,
                            starts_at=deal.starts_at, ends_at=deal.ends_at, quota=100, per_member_limit=1,
                            benefit={"kind": "parking_hours", "hours": 2}, now=rt.now())
        twin.status = "live"
        s.flush()
        twin_id = twin.id
    ids = [_member(rt, f"o-race-{i}") for i in range(WORKERS)]

    def work(i: int) -> Any:
        if i % 4 == 3:  # a quarter are issues (a campaign, a reward), the rest claims of either deal
            with rt.sessions.begin() as s:
                deal = s.get(deals.Deal, made.deal)
                return coupons.issue(s, rt.settings, ids[i], deal, key=f"race:{i}",
                                     valid_until=rt.now() + timedelta(days=3), now=rt.now()).coupon.id
        with rt.sessions.begin() as s:
            return coupons.claim(s, rt.settings, ids[i], made.deal if i % 2 else twin_id, rt.now()).coupon.id

    results = race(WORKERS, work)

    assert [r for r in results if isinstance(r, Exception) and not isinstance(r, MallError)] == []
    outcome = Counter("ok" if isinstance(r, int) else r.code for r in results)
    assert outcome == {"ok": 10, "parking.quota_exhausted": WORKERS - 10}
    assert _balance(rt, made.merchant).hours == 1
    _sound(rt)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_concurrent_retries_of_one_purchase_buy_once_and_runs_of_the_job_return_once(wide_rt, clock):
    rt = wide_rt
    made = parking_coupon_deal(rt, value=1, quota_bought=0, deal_quota=100, days=1)

    def buy(i: int) -> Any:
        with rt.sessions.begin() as s:
            return quota.buy(s, rt.settings, made.merchant, unit="hours", amount=30, idempotency_key="retry",
                             now=rt.now()).replayed

    assert Counter(race(20, buy)) == {False: 1, True: 19}
    for i in range(20):
        _claim(rt, _member(rt, f"o-lapse-{i}"), made.deal)
    clock.now += timedelta(days=2)
    returned = race(8, lambda i: merchant_coupons.return_expired(rt.sessions, rt.now(), batch=3))
    assert [r for r in returned if isinstance(r, Exception)] == []
    assert sum(returned) == 20
    assert _balance(rt, made.merchant).hours == 30
    assert _reasons(rt, made.merchant) == {"bought": 1, "reserved": 20, "returned": 20}
    _sound(rt)
