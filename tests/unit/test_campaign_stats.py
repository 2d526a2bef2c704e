"""The campaign report's statistics against values computed by hand, and the control draw."""

from __future__ import annotations

import math

import pytest

from mallapp.domain.campaigns.delivery import draw
from mallapp.domain.campaigns.stats import Moments, newcombe, welch, wilson


def test_wilson_matches_the_score_interval_worked_by_hand():
    # 81 of 263: p = 0.30798; z^2 = 3.84146; centre = (p + z^2/526) / (1 + z^2/263) = 0.31077;
    # half = z / 1.014606 * sqrt(p(1-p)/263 + z^2/(4*263^2)) = 0.05546.
    low, high = wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


@pytest.mark.parametrize(("x1", "n1", "x2", "n2", "low", "high"), [
    # Newcombe (1998), Table II, method 10 (hybrid score, no continuity correction).
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (6, 7, 2, 7, 0.0582, 0.8062),
    (5, 56, 0, 29, -0.0381, 0.1926),
])
def test_newcombe_reproduces_the_published_hybrid_score_intervals(x1, n1, x2, n2, low, high):
    interval = newcombe(x1, n1, x2, n2)
    assert interval is not None
    assert interval.estimate == pytest.approx(x1 / n1 - x2 / n2)
    assert (round(interval.low, 4), round(interval.high, 4)) == (low, high)


def test_newcombe_says_nothing_about_an_empty_arm():
    assert newcombe(3, 10, 0, 0) is None


def test_welch_matches_the_interval_worked_by_hand():
    # a: 10, 20, 30 (mean 20, variance 100); b: 5, 5, 5, 15 (mean 7.5, variance 25).
    # se^2 = 100/3 + 25/4 = 39.5833; df = se^4 / ((100/3)^2/2 + (25/4)^2/3) = 1566.84 / 568.58 = 2.7557;
    # t(0.975, 2.7557) = 3.3481 (between the tables' 4.303 at 2 and 3.182 at 3 degrees of freedom)
    a, b = Moments.of([10, 20, 30]), Moments.of([5, 5, 5, 15])
    interval = welch(a, b)
    assert interval is not None
    assert interval.estimate == 12.5
    half = 3.3481 * math.sqrt(39.5833)  # 21.065
    assert interval.low == pytest.approx(12.5 - half, abs=0.01)
    assert interval.high == pytest.approx(12.5 + half, abs=0.01)


def test_welch_needs_two_values_per_arm_and_is_exact_without_spread():
    assert welch(Moments.of([1.0]), Moments.of([1.0, 2.0])) is None
    same = welch(Moments.of([3.0, 3.0]), Moments.of([1.0, 1.0]))
    assert same is not None and (same.low, same.estimate, same.high) == (2.0, 2.0, 2.0)


def test_the_control_draw_is_deterministic_per_campaign_and_near_its_share():
    members = range(1, 100_001)
    first = [draw(12345, m, 10) for m in members]
    assert first == [draw(12345, m, 10) for m in members]  # a rerun assigns the same
    share = first.count("control") / len(first)
    assert 0.095 < share < 0.105  # 10% within five standard errors (0.00095)
    other = [draw(54321, m, 10) for m in range(1, 1001)]
    assert other != first[:1000]  # another campaign draws another control group
    assert all(draw(7, m, 0) == "treated" for m in range(1, 1001))
