"""mallapp.domain.clv_evaluate: the splits, the metrics on hand-computed values, and that the nested
choice never lets the inner CV see the outer test fold."""

from __future__ import annotations

import numpy as np
import pytest

from mallapp.domain import clv_evaluate as ev
from mallapp.errors import InvalidInput


def test_folds_put_every_customer_in_exactly_one_test_fold_of_near_equal_size():
    folds = ev.assign_folds(103, 5, seed=7)
    assert sorted(np.bincount(folds).tolist()) == [20, 20, 21, 21, 21]
    for f in range(5):
        train, test = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        assert np.intersect1d(train, test).size == 0
        assert np.union1d(train, test).size == 103
    assert np.array_equal(folds, ev.assign_folds(103, 5, seed=7))
    assert not np.array_equal(folds, ev.assign_folds(103, 5, seed=8))


def test_folds_refuse_fewer_customers_than_folds():
    with pytest.raises(InvalidInput):
        ev.assign_folds(3, 5, seed=0)


def test_count_metrics_on_hand_computed_values():
    # errors 1, -2, 0, 3: MAE 6/4, RMSE sqrt(14/4), total 2 over an actual total of 10
    m = ev.count_metrics(np.array([2.0, 1.0, 4.0, 6.0]), np.array([1.0, 3.0, 4.0, 3.0]))
    assert m["mae"] == pytest.approx(1.5)
    assert m["rmse"] == pytest.approx(np.sqrt(3.5))
    assert m["total_error_pct"] == pytest.approx(100 * (13 - 11) / 11)


def test_censored_day_errors_clip_to_the_holdout_and_treat_no_purchase_as_the_day_after_it():
    cal, end = 100, 200
    due = np.array([90.0, 150.0, 250.0, np.inf, 150.0, 120.0])
    actual = np.array([110.0, 160.0, np.inf, np.inf, np.inf, 101.0])
    # 90 -> 101 (due now) vs 110: 9; 150 vs 160: 10; past the end vs no purchase: 0; none vs none: 0;
    # 150 vs no purchase (201): 51; 120 vs 101: 19
    assert ev.censored_day_errors(due, actual, cal, end).tolist() == [9.0, 10.0, 0.0, 0.0, 51.0, 19.0]


def _holdout():
    # c1: 1 Jan, 11 Jan, 21 Jan (calibration), 5 Mar (holdout); c2: 1 Jan only; c3: 10 Jan twice the same day,
    # 20 Jan; c4 first buys in the holdout (left out).
    rows = [("c1", "2024-01-01", 10), ("c1", "2024-01-11", 20), ("c1", "2024-01-21", 40), ("c1", "2024-03-05", 8),
            ("c2", "2024-01-01", 5), ("c3", "2024-01-10", 3), ("c3", "2024-01-10", 4), ("c3", "2024-01-20", 9),
            ("c4", "2024-03-01", 1), ("c2", "2024-03-30", 6), ("c2", "2024-03-31", 2)]
    ids, days, amounts = zip(*rows, strict=True)
    return ev.split_in_time(ids, days, amounts, calibration_end="2024-01-31", unit="days")


def test_split_in_time_summarises_both_periods():
    h = _holdout()
    assert h.ids.tolist() == ["c1", "c2", "c3"]
    assert h.frequency.tolist() == [2, 0, 1]
    assert h.recency.tolist() == [20, 0, 10]
    assert h.T.tolist() == [30, 30, 21]
    assert h.monetary.tolist() == [30, 0, 9]
    assert h.mean_spend.tolist() == [pytest.approx(70 / 3), 5, 8]
    assert h.median_gap[[0, 2]].tolist() == [10, 10] and np.isnan(h.median_gap[1])
    assert h.holdout_purchases.tolist() == [1, 2, 0]
    assert h.holdout_spend[:2].tolist() == [8, 4] and np.isnan(h.holdout_spend[2])
    day = np.datetime64("2024-03-05", "D").astype(np.int64)
    assert h.next_day.tolist() == [day, day + 25, np.inf]
    assert h.holdout_length == 60   # 1 February to 31 March 2024


def test_split_in_time_matches_summarise_on_the_calibration_period():
    from mallapp.domain.clv import summarise
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 40, 600).astype(str)
    days = np.datetime64("2024-01-01") + rng.integers(0, 200, 600)
    amounts = rng.integers(1, 100, 600).astype(float)
    h = ev.split_in_time(ids, days, amounts, calibration_end="2024-04-15")
    s = summarise(zip(ids, days, amounts, strict=True), calibration_end="2024-04-15")
    assert h.ids.tolist() == s.ids.tolist()
    for name in ("frequency", "recency", "T", "monetary"):
        assert np.allclose(getattr(h, name), getattr(s, name)), name


def test_split_in_time_needs_a_holdout():
    with pytest.raises(InvalidInput):
        ev.split_in_time(["a", "a"], ["2024-01-01", "2024-02-01"], [1, 2], calibration_end="2024-02-01")


def test_the_due_rule_uses_the_own_gap_from_k_purchase_days_and_bgnbd_otherwise():
    h = _holdout()
    bg = ev.clv.BgNbdParams(r=1.0, alpha=10.0, a=1.0, b=3.0, log_likelihood=0.0)
    idx = np.arange(3)
    e365 = np.array([2.0, 0.5, 4.0])
    last = h.last_day
    cal = h.calibration_end
    assert ev.due_days(h, idx, bg, 3, e365).tolist() == [last[0] + 10, np.inf, cal + np.ceil(365 / 4)]
    assert ev.due_days(h, idx, bg, 2, e365).tolist() == [last[0] + 10, np.inf, last[2] + 10]
    assert ev.due_days(h, idx, bg, None, e365).tolist() == [cal + np.ceil(365 / 2), np.inf, cal + np.ceil(365 / 4)]


def test_the_inner_cv_never_sees_the_outer_test_fold():
    n, k = 60, 4
    folds = ev.assign_folds(n, k, seed=1)
    calls: list[tuple[str, np.ndarray]] = []
    errors = np.random.default_rng(0).random((n, 3))

    def fit(train):
        calls.append(("fit", train.copy()))
        return train

    def evaluate(model, test):
        calls.append(("evaluate", test.copy()))
        return {c: errors[test, c] for c in range(3)}

    nested = ev.nested_cv(folds, [0, 1, 2], fit, evaluate, inner_folds=3, seed=5)
    # Per outer fold: 3 inner (fit, evaluate) pairs, then the outer fit and evaluate.
    per_fold = 2 * 3 + 2
    assert len(calls) == k * per_fold
    for f in range(k):
        test = np.flatnonzero(folds == f)
        block = calls[f * per_fold:(f + 1) * per_fold]
        for _kind, seen in block[:-1]:      # every inner call and the outer fit: none of the test fold
            assert np.intersect1d(seen, test).size == 0
        assert block[-1][0] == "evaluate" and np.array_equal(block[-1][1], test)
        # the choice is the inner CV's: the best mean error over the training folds alone
        train = np.flatnonzero(folds != f)
        assert nested.chosen[f] == int(np.argmin(errors[train].mean(axis=0)))
    assert np.array_equal(nested.errors, errors[np.arange(n), [nested.chosen[f] for f in folds]])


def _drawn(members: int, seed: int, equal_amounts: bool = False):
    """Purchases drawn from BG/NBD on a day grid over 300 days (first purchases in the first 100), amounts
    from Gamma-Gamma (or all 50)."""
    rng = np.random.default_rng(seed)
    ids, days = [], []
    for m in range(members):
        rate, drop = rng.gamma(1.0, 1 / 20), rng.beta(1.0, 4.0)
        day = float(rng.integers(0, 100))
        ids.append(m)
        days.append(int(day))
        while True:
            day += rng.exponential(1 / rate)
            if day >= 300:
                break
            ids.append(m)
            days.append(int(day))
            if rng.random() < drop:
                break
    nu = rng.gamma(4.0, 1 / 300, members)   # Gamma-Gamma: each member's own scale of spending
    amounts = np.full(len(ids), 50.0) if equal_amounts else rng.gamma(6.0, 1 / nu[np.array(ids)])
    return ev.split_in_time(np.array(ids), np.datetime64("2024-01-01") + np.array(days), amounts, unit="days")


def test_evaluate_pools_each_customer_once_and_the_procedure_figure_is_the_chosen_k_per_fold():
    data = _drawn(400, seed=11)
    out = ev.evaluate(data, folds=4, seed=3, grid=(2, 3, None))
    p, due = out["purchases"], out["next_purchase_due"]
    assert out["customers"] == data.n and out["folds"] == 4 and out["inner_folds"] == 4
    assert p["mae_ratio"]["population_rate"] == pytest.approx(p["bgnbd"]["mae"] / p["population_rate"]["mae"])
    folds = ev.assign_folds(data.n, 4, 3)   # the pooled MAE is the size-weighted mean of the folds'
    sizes = np.bincount(folds)
    assert p["bgnbd"]["mae"] == pytest.approx(np.dot(sizes, p["fold_mae"]["bgnbd"]) / data.n)
    assert due["grid"] == [2, 3, "never"]
    by_k = due["outer_mae_days_by_k"]
    if len(set(due["procedure"]["chosen_per_fold"])) == 1:   # one k everywhere: the procedure's figure is its
        assert due["procedure"]["mae_days"] == pytest.approx(by_k[str(due["procedure"]["chosen_per_fold"][0])])
    assert due["procedure"]["mae_days"] == pytest.approx(np.dot(sizes, due["procedure"]["fold_mae_days"]) / data.n)
    assert out["spend"]["gamma_gamma"]["mae"] is not None and out["spend"]["gamma_gamma_errors"] == []


def test_evaluate_without_a_gamma_gamma_fit_leaves_its_spend_figures_out_and_says_why():
    out = ev.evaluate(_drawn(300, seed=5, equal_amounts=True), folds=3, seed=0, grid=(3, None))
    assert out["spend"]["gamma_gamma"] == {"mae": None, "rmse": None}
    assert out["spend"]["mae_ratio"]["own_mean"] is None
    assert any("clv.fit.degenerate" in e for e in out["spend"]["gamma_gamma_errors"])
    assert out["purchases"]["bgnbd"]["mae"] > 0
    assert "no Gamma-Gamma on a training fold" in "\n".join(ev.table(out))


def test_metrics_without_holdout_purchases_give_no_percent_rather_than_nan():
    assert ev.count_metrics(np.array([0.5, 0.0]), np.array([0.0, 0.0])) == {
        "mae": 0.25, "rmse": pytest.approx(np.sqrt(0.125)), "total_error_pct": None}
    assert ev._ratio(1.0, 0.0) is None and ev._ratio(None, 2.0) is None and ev._ratio(1.0, 2.0) == 0.5
