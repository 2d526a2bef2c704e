"""The member reports over a small hand-built world (tests/factories.py ``reports_world``): exact numbers."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from factories import REPORTS_MONTH, reports_world

from mallapp.domain import member_lists, members
from mallapp.domain import member_reports as reports
from mallapp.errors import InvalidInput, NotFound


@pytest.fixture
def world(rt):
    ids = reports_world(rt)
    with rt.sessions.begin() as s:
        reports.precompute(s, rt.settings, REPORTS_MONTH, rt.now())
    return ids


def _body(rt, kind):
    with rt.sessions() as s:
        return reports.read(s, kind).body


def test_cohorts_count_members_active_six_months_after_joining(rt, world):
    cohorts = {c["month"]: c for c in _body(rt, "cohorts")["cohorts"]}
    august = cohorts["2025-08-01"]
    # a bought in September (1 month on), b visited in October (2), a checked in in February (6); b's purchase
    # in the month it joined does not count.
    assert august == {"month": "2025-08-01", "members": 2, "active_after": [1, 1, 0, 0, 0, 1],
                      "remaining": 1, "share": 0.5}
    # September's sixth month is March, not over yet.
    assert cohorts["2025-09-01"]["active_after"][-1] is None
    # c joined on 1 March mall time (28 February in UTC), d today: March's cohort, months not yet over.
    assert cohorts["2026-03-01"]["members"] == 2 and cohorts["2026-03-01"]["active_after"] == [None] * 6
    assert cohorts["2026-02-01"]["members"] == 0
    assert len(cohorts) == rt.settings.reports.cohorts and min(cohorts) == "2024-10-01"


def test_frequent_visitors_and_big_spenders_and_their_shares(rt, world):
    body = _body(rt, "thresholds")
    assert body["members"] == 5 and body["visiting_members"] == 3 and body["buying_members"] == 3
    assert body["frequent_visitors"] == {"threshold_visits": 10, "members": 2, "share_of_members": 0.4,
                                         "share_of_visiting": 0.6667}
    assert body["big_spenders"] == {"threshold_fen": 1_000_000, "members": 1, "share_of_members": 0.2,
                                    "share_of_buying": 0.3333, "spend_fen": 1_200_000, "share_of_spend": 0.8276}


def test_valuable_share_is_the_top_twenty_percents_share_of_spend(rt, world):
    body = _body(rt, "valuable_share")
    assert body["spend_fen"] == 1_450_000 and body["top_20_spend_fen"] == 1_400_000
    assert body["top_20_share"] == 0.9655 and body["t1_t2_share"] == 0.9655
    assert [(r["key"], r["members"], r["spend_fen"]) for r in body["pyramid"]] == [
        ("vip", 1, 1_200_000), ("major", 1, 200_000), ("ordinary", 0, 0), ("small", 1, 50_000), ("none", 2, 0)]


def test_t_tier_counts_and_the_month_to_month_matrix(rt, world):
    body = _body(rt, "t_tiers")
    assert body["previous_month"] == "2026-02-01"
    assert body["counts"] == {"T1": 1, "T2": 1, "T3": 1, "T4": 0, "none": 2}
    moved = {(a, b): n for a, row in body["transitions"].items() for b, n in row.items() if n}
    assert moved == {("T2", "T1"): 1, ("T2", "T2"): 1, ("none", "T3"): 1, ("none", "none"): 2}


def test_lifecycle_counts_and_the_months_flows(rt, world):
    body = _body(rt, "lifecycle")
    assert body["counts"] == {"new": 2, "active": 1, "weakening": 1, "lost": 1, "reactivated": 0}
    assert sorted((f["from_state"] or "", f["to_state"], f["cause"], f["members"]) for f in body["flows"]) == [
        ("", "new", "joined", 1), ("weakening", "reactivated", "purchase", 1)]  # February's loss is not March's


def test_rfm_segment_sizes(rt, world):
    sizes = {r["key"]: r["members"] for r in _body(rt, "rfm")["segments"]}
    assert sizes["champions"] == 1 and sizes["at_risk"] == 1 and sizes["new"] == 1 and sizes["lost"] == 1
    assert sizes["none"] == 1 and sum(sizes.values()) == 5


def test_lifetime_value_distribution(rt, world):
    body = _body(rt, "lifetime_value")
    assert body["members"] == 3 and body["total_fen"] == 521_000 and body["mean_fen"] == 173_667
    assert body["quantiles"]["p10"] == 1_000 and body["quantiles"]["p50"] == 20_000
    assert body["quantiles"]["p90"] == 500_000
    assert {(b["from_fen"], b["members"]) for b in body["histogram"] if b["members"]} == {
        (0, 1), (10_000, 1), (500_000, 1)}


def test_new_members_per_period_count_mall_local_days_and_today_live(rt, world):
    with rt.sessions.begin() as s:
        # Joins after the precompute are counted live.
        s.add(members.Member(openid="late", referral_code="LATE2345", created_at=datetime(2026, 3, 10, 3, tzinfo=UTC)))
    with rt.sessions() as s:
        monthly = reports.new_members(s, rt.settings, rt.now(), period="month", since=date(2025, 8, 1),
                                      until=date(2026, 3, 10))
        daily = reports.new_members(s, rt.settings, rt.now(), period="day", since=date(2026, 2, 28),
                                    until=date(2026, 3, 10))
        weekly = reports.new_members(s, rt.settings, rt.now(), period="week", since=date(2026, 2, 23),
                                     until=date(2026, 3, 10))
    assert monthly == [(date(2025, 8, 1), 2), (date(2025, 9, 1), 0), (date(2025, 10, 1), 0), (date(2025, 11, 1), 0),
                       (date(2025, 12, 1), 0), (date(2026, 1, 1), 0), (date(2026, 2, 1), 0), (date(2026, 3, 1), 3)]
    assert dict(daily)[date(2026, 2, 28)] == 0 and dict(daily)[date(2026, 3, 1)] == 1
    assert dict(daily)[date(2026, 3, 10)] == 2 and len(daily) == 11
    assert weekly == [(date(2026, 2, 23), 1), (date(2026, 3, 2), 0), (date(2026, 3, 9), 2)]


def test_new_members_refuses_a_range_backwards(rt, world):
    with rt.sessions() as s, pytest.raises(InvalidInput) as err:
        reports.new_members(s, rt.settings, rt.now(), period="day", since=date(2026, 3, 2), until=date(2026, 3, 1))
    assert err.value.code == "reports.invalid_range"


def test_lapsed_lists_the_latest_last_purchase_first_a_page_at_a_time(rt, world):
    with rt.sessions() as s:
        first = member_lists.lapsed(s, rt.now(), days=30, limit=1, cursor=None)
        second = member_lists.lapsed(s, rt.now(), days=30, limit=1, cursor=first.next_cursor)
        third = member_lists.lapsed(s, rt.now(), days=30, limit=1, cursor=second.next_cursor)
        fewer = member_lists.lapsed(s, rt.now(), days=60, limit=10, cursor=None)
    assert first.total == 2 and [m.member_id for m in first.members] == [world["b"]]
    assert [m.member_id for m in second.members] == [world["e"]]
    assert third.members == [] and third.next_cursor is None
    assert [m.member_id for m in fewer.members] == [world["e"]] and fewer.next_cursor is None


def test_lost_lists_the_lost_members(rt, world):
    with rt.sessions() as s:
        page = member_lists.lost(s, limit=50, cursor=None)
    assert page.month == REPORTS_MONTH and page.total == 1
    assert [(m.member_id, m.phone) for m in page.members] == [(world["e"], "+8613800000005")]


def test_reports_before_any_run_are_not_found(rt):
    with rt.sessions() as s:
        with pytest.raises(NotFound) as err:
            reports.read(s, "cohorts")
        assert err.value.code == "reports.not_computed"
        with pytest.raises(NotFound):
            member_lists.lost(s, limit=10, cursor=None)


def test_precompute_again_replaces_the_months_reports(rt, world):
    with rt.sessions.begin() as s:
        again = reports.precompute(s, rt.settings, REPORTS_MONTH, rt.now())
    assert again["thresholds"] == _body(rt, "thresholds")


@pytest.mark.parametrize("cursor", ["x", "0001-01-01T00:00:00+01:00~1", "2026-01-15T04:00:00~2",
                                    "2026-01-15T04:00:00Z~99999999999", "2026-01-15T04:00:00Z~0"])
def test_a_cursor_the_list_did_not_give_is_refused(rt, world, cursor):
    with rt.sessions() as s, pytest.raises(InvalidInput) as err:
        member_lists.lapsed(s, rt.now(), days=30, limit=10, cursor=cursor)
    assert err.value.code == "reports.invalid_cursor"
    with rt.sessions() as s, pytest.raises(InvalidInput):
        member_lists.lost(s, limit=10, cursor="99999999999")
