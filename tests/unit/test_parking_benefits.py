"""Member benefits on a parking bill (mallapp.domain.parking.benefits): worked examples and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mallapp.domain.parking.benefits import HOUR, Coupon, Facts, Stay, Used, breakdown
from mallapp.domain.parking.rules import parse_rules
from mallapp.domain.parking.tariff import fee, parse_tariff
from mallapp.errors import RuleViolation

SHANGHAI = ZoneInfo("Asia/Shanghai")
MIXC_TARIFF = parse_tariff({
    "grace_minutes": 15,
    "plans": {
        "small": {"free_minutes": 15, "first_period_minutes": 60, "first_period_fen": 1000, "step_minutes": 30,
                  "bands": [{"name": "白天 day", "start": "08:00", "end": "22:00", "step_fen": 500},
                            {"name": "夜间 night", "start": "22:00", "end": "08:00", "step_fen": 200}],
                  "overnight": {"start": "22:00", "end": "08:00", "cap_fen": 1000},
                  "daily_cap_fen": 6000},
        "new_energy": {"free_minutes": 30, "first_period_minutes": 60, "first_period_fen": 500, "step_minutes": 30,
                       "bands": [{"name": "全天 all day", "start": "00:00", "end": "00:00", "step_fen": 250}],
                       "daily_cap_fen": 3000},
    },
})
MIXC_RULES = parse_rules({
    "order": ["tier", "spend", "points", "coupon"],
    "tier": {"hours": {"vip": "all", "major": 3, "ordinary": 2}, "first_exit_only": True},
    "spend": {"fen_per_hour": 10000, "max_hours_per_visit": 3, "max_hours_per_day": 3},
    "points": {"points_per_hour": 600, "max_hours_per_visit": None, "max_hours_per_day": None},
    "coupon": {"max_per_visit": 2, "max_per_day": 4},
})
ENTERED = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def stay(hours: float, **over) -> Stay:
    return Stay(MIXC_TARIFF, over.pop("vehicle_type", "small"), ENTERED, ENTERED + timedelta(hours=hours),
                SHANGHAI, **over)


def test_without_facts_the_whole_due_is_cash() -> None:
    result = breakdown(stay(3), MIXC_RULES)
    assert (result.due_fen, result.items, result.cash_fen) == (3000, (), 3000)


def test_worked_example_gold_member_with_spend_points_and_a_coupon() -> None:
    # In 10:00, quoted 16:40 (6 h 40 min): first hour 10.00 + 12 steps of 5.00 = 70.00, capped at 60.00.
    facts = Facts(tier="major", spend_fen_today=15_000, points_balance=5000, points_hours=2,
                  coupons=(Coupon(7, "星巴克", amount_fen=500),))
    result = breakdown(stay(6 + 40 / 60), MIXC_RULES, facts)
    assert result.due_fen == 6000
    assert [(i.code, i.seconds, i.fen, i.value_fen, i.points) for i in result.items] == [
        ("tier", 3 * HOUR, 0, 2000, 0),        # 16:40 -> 13:40: 60.00 (capped) -> 40.00
        ("spend", 1 * HOUR, 0, 1000, 0),       # 150 yuan: one hour; 13:40 -> 12:40: 40.00 -> 30.00
        ("points", 2 * HOUR, 0, 2000, 1200),   # 12:40 -> 10:40: 30.00 -> 10.00
        ("coupon:7", 0, 500, 500, 0),
    ]
    assert (result.discount_fen, result.cash_fen, result.points) == (5500, 500, 1200)
    assert result.items[0].name.startswith("金卡免费 3 小时 / Gold tier")


def test_vip_parks_free_for_the_whole_stay() -> None:
    result = breakdown(stay(30), MIXC_RULES, Facts(tier="vip", points_hours=3))
    assert [i.code for i in result.items] == ["tier"] and result.cash_fen == 0
    assert result.items[0].value_fen == result.due_fen


def test_tier_hours_only_on_the_first_exit_and_once_a_day() -> None:
    assert breakdown(stay(3), MIXC_RULES, Facts(tier="major", first_exit_today=False)).items == ()
    assert breakdown(stay(3), MIXC_RULES, Facts(tier="major", used=Used(tier_today=True))).items == ()


def test_points_are_cut_to_the_hours_that_lower_the_fee_and_to_the_balance() -> None:
    two_hours = breakdown(stay(2), MIXC_RULES, Facts(points_balance=10_000, points_hours=10))
    assert [(i.seconds, i.points) for i in two_hours.items] == [(2 * HOUR, 1200)] and two_hours.cash_fen == 0
    poor = breakdown(stay(5), MIXC_RULES, Facts(points_balance=1300, points_hours=4))
    assert [i.points for i in poor.items] == [1200]


def test_spend_hours_respect_what_was_used_today() -> None:
    result = breakdown(stay(5), MIXC_RULES, Facts(spend_fen_today=50_000, used=Used(spend_seconds_today=2 * HOUR)))
    assert [i.seconds for i in result.items] == [1 * HOUR]


def test_more_coupons_than_allowed_are_refused() -> None:
    coupons = tuple(Coupon(i, "店", hours=1) for i in range(3))
    with pytest.raises(RuleViolation) as caught:
        breakdown(stay(5), MIXC_RULES, Facts(coupons=coupons))
    assert caught.value.code == "parking.coupon_limit"
    with pytest.raises(RuleViolation):
        breakdown(stay(5), MIXC_RULES, Facts(coupons=coupons[:1], used=Used(coupons_today=4)))


def test_a_carpark_bill_caps_the_value_at_what_it_says_is_due() -> None:
    result = breakdown(stay(3, bill_due_fen=700), MIXC_RULES, Facts(tier="major"))
    assert [i.value_fen for i in result.items] == [700] and result.cash_fen == 0


def test_after_a_payment_only_the_overstay_is_due() -> None:
    paid_at = ENTERED + timedelta(hours=2)
    result = breakdown(stay(3, paid=((paid_at, 2000),)), MIXC_RULES, Facts(points_balance=600, points_hours=1))
    assert result.due_fen == 1000 and [i.value_fen for i in result.items] == [1000]


# --- properties --------------------------------------------------------------------------------------

HOURS_CAP = st.one_of(st.none(), st.integers(1, 6))
rules_docs = st.fixed_dictionaries({
    "order": st.permutations(["tier", "spend", "points", "coupon"]).flatmap(
        lambda kinds: st.integers(0, 4).map(lambda n: kinds[:n] if n else kinds)),
    "tier": st.fixed_dictionaries({"hours": st.fixed_dictionaries(
        {"vip": st.one_of(st.just("all"), st.integers(1, 5)), "major": st.integers(1, 5)}),
        "first_exit_only": st.booleans()}),
    "spend": st.fixed_dictionaries({"fen_per_hour": st.sampled_from([5000, 10000, 20000]),
                                    "max_hours_per_visit": HOURS_CAP, "max_hours_per_day": HOURS_CAP}),
    "points": st.fixed_dictionaries({"points_per_hour": st.sampled_from([300, 600]),
                                     "max_hours_per_visit": HOURS_CAP, "max_hours_per_day": HOURS_CAP}),
    "coupon": st.fixed_dictionaries({"max_per_visit": st.integers(0, 3), "max_per_day": st.integers(0, 4)}),
})
coupons = st.lists(st.one_of(st.builds(lambda h: ("h", h), st.integers(1, 3)),
                             st.builds(lambda f: ("f", f), st.integers(1, 5000))), max_size=3)
facts_strategy = st.builds(
    lambda tier, spend, balance, first, hours, chosen, used: Facts(
        tier=tier, spend_fen_today=spend, points_balance=balance, first_exit_today=first, points_hours=hours,
        coupons=tuple(Coupon(i + 1, "店", hours=v if k == "h" else 0, amount_fen=v if k == "f" else 0)
                      for i, (k, v) in enumerate(chosen)),
        used=used),
    st.sampled_from([None, "vip", "major", "small"]), st.integers(0, 80_000), st.integers(0, 6000), st.booleans(),
    st.integers(0, 12), coupons,
    st.builds(Used, tier_today=st.booleans(), spend_seconds_today=st.sampled_from([0, HOUR, 2 * HOUR]),
              points_seconds_today=st.sampled_from([0, HOUR, 3 * HOUR]), coupons_today=st.integers(0, 3)))
stays = st.builds(
    lambda start, minutes, vt, bill: Stay(MIXC_TARIFF, vt, start, start + timedelta(minutes=minutes), SHANGHAI,
                                          bill_due_fen=bill),
    st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31), timezones=st.just(UTC)),
    st.integers(0, 3 * 24 * 60), st.sampled_from(["small", "new_energy"]), st.one_of(st.none(), st.integers(0, 9000)))


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(stays, rules_docs, facts_strategy)
def test_benefits_add_up_never_exceed_the_due_and_keep_caps_and_order(the_stay, doc, facts) -> None:
    rules = parse_rules(doc)
    try:
        result = breakdown(the_stay, rules, facts)
    except RuleViolation as refused:
        assert refused.code == "parking.coupon_limit" and "coupon" in rules.order
        assert len(facts.coupons) > min(rules.coupon.max_per_visit - facts.used.coupons_visit,
                                        rules.coupon.max_per_day - facts.used.coupons_today)
        return
    values = [item.value_fen for item in result.items]
    # add up exactly; cash never negative; never more benefit than due; no item worth nothing
    assert sum(values) + result.cash_fen == result.due_fen == the_stay.due_fen
    assert result.cash_fen >= 0 and all(v > 0 for v in values)
    # order respected
    kinds = [item.kind for item in result.items]
    assert kinds == sorted(kinds, key=list(rules.order).index)
    # caps
    spend, points = result.seconds("spend") // HOUR, result.seconds("points") // HOUR
    for cap, used in ((rules.spend.max_hours_per_day, facts.used.spend_seconds_today // HOUR),
                      (rules.spend.max_hours_per_visit, 0)):
        assert cap is None or spend <= max(0, cap - used)
    assert spend <= max(0, facts.spend_fen_today // rules.spend.fen_per_hour - facts.used.spend_seconds_today // HOUR)
    for cap, used in ((rules.points.max_hours_per_day, facts.used.points_seconds_today // HOUR),
                      (rules.points.max_hours_per_visit, 0)):
        assert cap is None or points <= max(0, cap - used)
    assert points <= facts.points_hours and result.points == points * rules.points.points_per_hour
    assert result.points <= facts.points_balance
    assert "tier" not in kinds or not facts.used.tier_today
    # time items are valued as the tariff does: the fee minus the fee of the shortened stay
    if the_stay.bill_due_fen is None and result.items and all(item.fen == 0 for item in result.items):
        seconds = sum(item.seconds for item in result.items)
        end = max(the_stay.entered_at, the_stay.now - timedelta(seconds=seconds))
        shortened = fee(MIXC_TARIFF, the_stay.vehicle_type, the_stay.entered_at, end, tz=SHANGHAI).due_fen
        assert result.discount_fen == result.due_fen - shortened
