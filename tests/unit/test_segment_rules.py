"""The segmentation's pure rules (mallapp.domain.segment_rules) on small arrays, with the numbers docs/segments.md
works through."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mallapp.domain import segment_rules as rules
from mallapp.domain.segment_rules import (
    ACTIVE,
    LOST,
    NEW,
    NONE,
    REACTIVATED,
    RFM_SEGMENTS,
    WEAKENING,
)
from mallapp.settings import DEMO_SETTINGS_FILE, SettingsError, load_settings


def a(*values, dtype=None) -> np.ndarray:
    return np.array(values, dtype=dtype)


def test_t_tiers_are_often_and_much_above_the_cuts_and_none_without_a_purchase() -> None:
    visits, spend = a(12, 3, 12, 3, 0), a(900_000, 900_000, 1_000, 1_000, 0)
    placed = a(True, True, True, True, False)
    assert rules.t_tiers(visits, spend, placed, 10, 500_000).tolist() == [0, 1, 2, 3, NONE]
    # At the cut is not above it.
    assert rules.t_tiers(a(10), a(500_000), a(True), 10, 500_000).tolist() == [3]


def test_median_cuts_use_only_members_with_a_purchase() -> None:
    assert rules.median_cuts(a(1, 5, 9, 100), a(10, 20, 30, 99), a(True, True, True, False)) == (5.0, 20.0)


@pytest.mark.parametrize(("before", "now", "dropped"), [
    ("T1", "T2", True), ("T1", "T3", True), ("T1", "T4", True), ("T2", "T4", True), ("T3", "T4", True),
    ("T2", "T3", False), ("T3", "T2", False), ("T4", "T1", False), ("T2", "T2", False)])
def test_a_t_tier_drop_is_a_fall_on_one_axis_without_a_rise_on_the_other(before, now, dropped) -> None:
    code = {"T1": 0, "T2": 1, "T3": 2, "T4": 3}
    assert rules.t_tier_dropped(a(code[now]), a(code[before])).tolist() == [dropped]


def test_no_drop_without_a_tier_in_both_months() -> None:
    assert rules.t_tier_dropped(a(3, NONE), a(NONE, 0)).tolist() == [False, False]


def test_cap_largest_damps_a_one_off_purchase_but_not_steady_spending() -> None:
    # One 100,000-yuan purchase; 12 x 2,000 yuan; 10 x 1,000 yuan plus one 100,000-yuan purchase.
    spend = a(10_000_000, 2_400_000, 11_000_000)
    largest = a(10_000_000, 200_000, 10_000_000)
    days = a(1, 12, 11)
    scored = rules.scored_spend(spend, largest, days, guard="cap_largest", cap_ratio=1.0, floor_fen=50_000,
                                min_days=4)
    assert scored.tolist() == [50_000, 2_400_000, 2_000_000]


def test_min_days_and_none_guards() -> None:
    spend, largest, days = a(10_000_000, 2_400_000), a(10_000_000, 200_000), a(1, 12)
    assert rules.scored_spend(spend, largest, days, guard="min_days", cap_ratio=1, floor_fen=0,
                              min_days=4).tolist() == [2_500_000, 2_400_000]
    assert rules.scored_spend(spend, largest, days, guard="none", cap_ratio=1, floor_fen=0,
                              min_days=4).tolist() == [10_000_000, 2_400_000]


def test_level_counts_round_up_cumulatively() -> None:
    assert rules.level_counts(1000, (1, 4, 15)) == [10, 50, 200, 1000]
    assert rules.level_counts(10, (1, 4, 15)) == [1, 1, 2, 10]
    assert rules.level_counts(0, (1, 4, 15)) == [0, 0, 0, 0]


def test_pyramid_levels_by_score_with_ties_sharing_the_better_level() -> None:
    scores = np.arange(100, 0, -1)            # 100 members, distinct scores 100..1
    placed = np.ones(100, dtype=bool)
    levels, floors = rules.pyramid(scores, placed, (1, 4, 15))
    assert np.bincount(levels).tolist() == [1, 4, 15, 80]
    assert floors == [100, 96, 81, 1]
    tied = scores.copy()
    tied[1] = 100                              # the second best equals the best: both vip
    levels, _ = rules.pyramid(tied, placed, (1, 4, 15))
    assert np.bincount(levels).tolist() == [2, 3, 15, 80]


def test_pyramid_places_nobody_without_a_purchase() -> None:
    levels, floors = rules.pyramid(a(5, 0), a(True, False), (1, 4, 15))
    assert levels.tolist() == [0, NONE] and floors[0] == 5


def test_quintile_scores_count_the_edges_below_and_share_ties() -> None:
    values = np.arange(1, 11)                 # 1..10
    edges = rules.quintile_edges(values)
    assert edges == [2.0, 4.0, 6.0, 8.0]
    assert rules.quintile_scores(values, edges).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    skewed = a(1, 1, 1, 1, 1, 1, 2, 3, 5, 9)  # mostly one purchase day
    assert rules.quintile_scores(skewed, rules.quintile_edges(skewed)).tolist() == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]


def test_every_rfm_combination_has_exactly_one_named_segment() -> None:
    combos = np.array(list(itertools.product(range(1, 6), repeat=3)))
    segs = rules.rfm_segments(combos[:, 0], combos[:, 1], combos[:, 2])
    assert (segs >= 0).all()
    named = {tuple(c): RFM_SEGMENTS[s] for c, s in zip(combos.tolist(), segs.tolist(), strict=True)}
    assert named[(5, 5, 5)] == "champions"
    assert named[(5, 5, 1)] == "loyal"
    assert named[(5, 1, 3)] == "new"
    assert named[(4, 1, 3)] == "promising"
    assert named[(4, 3, 3)] == "potential_loyalist"
    assert named[(3, 3, 3)] == "need_attention"
    assert named[(3, 1, 1)] == "about_to_sleep"
    assert named[(1, 5, 5)] == "cant_lose_them"
    assert named[(2, 4, 2)] == "at_risk"
    assert named[(2, 1, 1)] == "hibernating"
    assert named[(1, 1, 1)] == "lost"
    assert set(named.values()) == set(RFM_SEGMENTS)


def test_gap_stats_mean_and_median_per_member() -> None:
    member = a(0, 0, 0, 0, 1, 1, 2)
    day = a(0, 10, 12, 40, 5, 35, 9)
    mean, median = rules.gap_stats(member, day, 4)
    assert mean[:2].tolist() == [pytest.approx(40 / 3), 30.0]
    assert median[:2].tolist() == [10.0, 30.0]
    assert np.isnan(mean[2]) and np.isnan(median[3])


RULES = rules.LifecycleRules(lost_days=365, reactivated_days=30, gap_factor=2.0, p_alive_below=0.3,
                             on_t_tier_drop=True)
TODAY = 20_000


def step(prior, *, prior_day=TODAY - 50, prior_at=0, bought=True, first_at=-5, last_day=TODAY - 5, last_at=10,
         joined=TODAY - 900, gap=np.nan, dropped=False, p_alive=np.nan):
    state, cause = rules.lifecycle_step(
        RULES, prior=a(prior, dtype=np.int8), prior_day=a(prior_day), prior_at=a(prior_at), today=TODAY,
        bought=a(bought), first_at=a(first_at), last_day=a(last_day), last_at=a(last_at), joined_day=a(joined), usual_gap=a(gap, dtype=float),
        dropped=a(dropped), p_alive=a(p_alive, dtype=float))
    return rules.LIFECYCLE_STATES[state[0]], (rules.CAUSES[cause[0]] if cause[0] != NONE else None)


def test_lifecycle_first_classification() -> None:
    assert step(NONE, bought=False, joined=TODAY - 10) == ("new", "joined")
    assert step(NONE, bought=False, joined=TODAY - 365) == ("lost", "never_bought")
    assert step(NONE) == ("active", "purchase")
    assert step(NONE, last_day=TODAY - 365) == ("lost", "no_recent_purchase")
    assert step(NONE, last_day=TODAY - 25, gap=10.0) == ("weakening", "overdue")


def test_lifecycle_transitions_and_causes() -> None:
    assert step(NEW, bought=False, joined=TODAY - 10) == ("new", None)
    assert step(NEW) == ("active", "first_purchase")
    assert step(ACTIVE, dropped=True) == ("weakening", "t_tier_drop")
    assert step(ACTIVE, last_day=TODAY - 21, gap=10.0) == ("weakening", "overdue")
    assert step(ACTIVE, last_day=TODAY - 20, gap=10.0) == ("active", None)      # 20 is not more than 2 x 10
    assert step(ACTIVE, p_alive=0.2) == ("weakening", "p_alive_low")
    assert step(ACTIVE, last_day=TODAY - 365) == ("lost", "no_recent_purchase")
    assert step(WEAKENING, prior_at=100, last_at=50) == ("weakening", None)      # no purchase since
    assert step(WEAKENING, prior_at=100, last_at=150) == ("reactivated", "bought_again")
    assert step(WEAKENING, last_day=TODAY - 400) == ("lost", "no_recent_purchase")
    assert step(LOST, prior_at=100, last_at=150) == ("reactivated", "bought_again")
    assert step(LOST, last_day=TODAY - 400) == ("lost", None)
    assert step(LOST, prior_at=100, first_at=120, last_at=150) == ("reactivated", "first_purchase")  # never bought
    assert step(REACTIVATED, prior_day=TODAY - 10) == ("reactivated", None)
    assert step(REACTIVATED, prior_day=TODAY - 30) == ("active", "settled")
    assert step(REACTIVATED, prior_day=TODAY - 30, dropped=True) == ("weakening", "t_tier_drop")


def test_segment_settings_are_validated() -> None:
    base = load_settings(overlay=DEMO_SETTINGS_FILE, environ={})
    assert base.segments.tier_view == "pyramid" and base.segments.window_months == 12
    with pytest.raises(SettingsError, match="pyramid"):
        load_settings({"segments": {"pyramid_ordinary_pct": 95.0}}, overlay=DEMO_SETTINGS_FILE, environ={})
    with pytest.raises(SettingsError, match="tier_view"):
        load_settings({"segments": {"tier_view": "gold"}}, overlay=DEMO_SETTINGS_FILE, environ={})
    env = load_settings(overlay=DEMO_SETTINGS_FILE, environ={"MALL_SEGMENTS_VISIT_SOURCES": "purchase,checkin"})
    assert env.segments.visit_sources == ("purchase", "checkin")


def test_the_nightly_job_runs_at_the_configured_mall_time() -> None:
    from mallapp.processes import clock

    job = clock.find("member-segments")
    settings = load_settings({"segments": {"run_at": "04:45"}}, overlay=DEMO_SETTINGS_FILE, environ={})
    assert job.trigger == "cron" and job.schedule_for(settings) == {"hour": 4, "minute": 45}
