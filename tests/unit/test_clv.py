"""Lifetime value (mallapp.domain.clv): the published CDNOW estimates, the hypergeometric expectation
against a numerical integral, the failure modes, and the properties every member's figures keep."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special

import mallapp.domain.clv as clv_module
import mallapp.domain.clv_optimise as clv_optimise
from beacons.datasets import shared_data_dir
from mallapp.domain import clv
from mallapp.domain.clv_summary import read_transactions
from mallapp.errors import InvalidInput

CDNOW_BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # Fader, Hardie and Lee (2005)
CDNOW_LL = -9582.4
CDNOW_GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}                 # Fader and Hardie (2013)


@pytest.fixture(scope="module")
def cdnow():
    folder = shared_data_dir() / "cdnow"
    if not (folder / "CDNOW_sample.txt").exists():
        pytest.skip(f"the CDNOW data set is not at {folder}: put ../shared/data beside the project or set "
                    "MALL_SHARED_DATA")
    return folder


def _published(bg: clv.BgNbdParams) -> None:
    for name, value in CDNOW_BG.items():
        assert round(getattr(bg, name), 3) == value, (name, getattr(bg, name))
    assert round(bg.log_likelihood, 1) == CDNOW_LL


def _published_gg(gg: clv.GammaGammaParams, digits: int | None = None) -> None:
    """Equal to the published figures as printed, or to ``digits`` significant digits."""
    for name, value in CDNOW_GG.items():
        ours = getattr(gg, name)
        if digits is None:
            assert round(ours, len(str(value).split(".")[1])) == value, (name, ours)
        else:
            assert f"{ours:.{digits}g}" == f"{value:.{digits}g}", (name, ours)


# --- the CDNOW reproduction ----------------------------------------------------------------------------

def test_summarise_of_raw_cdnow_matches_the_shipped_summary_files(cdnow):
    summary = clv.summarise(read_transactions(cdnow / "CDNOW_sample.txt"), calibration_end="1997-09-30")
    shipped = np.genfromtxt(cdnow / "cdnow_customers_summary.csv", delimiter=",", names=True)
    with_money = np.genfromtxt(cdnow / "cdnow_customers_summary_with_transactions.csv", delimiter=",", names=True)
    assert summary.ids.size == shipped.size == 2357
    # The summary files are in the order of the sample's own id (the raw file's second column).
    sample_id = {}
    for line in (cdnow / "CDNOW_sample.txt").read_text().splitlines():
        customer, sample = line.split()[:2]
        sample_id[customer] = int(sample)
    order = np.argsort([sample_id[c] for c in summary.ids])
    summary = clv.Summary(*(getattr(summary, f)[order] for f in ("ids", "frequency", "recency", "T", "monetary")))
    assert np.array_equal(summary.frequency, shipped["frequency"])
    assert np.allclose(summary.recency, shipped["recency"], atol=0.006)
    assert np.allclose(summary.T, shipped["T"], atol=0.006)
    assert np.allclose(summary.monetary, with_money["zbar"], atol=0.006)


def test_bgnbd_and_gamma_gamma_reproduce_the_published_cdnow_estimates_from_the_raw_purchases(cdnow):
    summary = clv.summarise(read_transactions(cdnow / "CDNOW_sample.txt"), calibration_end=dt.date(1997, 9, 30),
                            unit="weeks")
    _published(clv.fit_bgnbd(summary.frequency, summary.recency, summary.T))
    _published_gg(clv.fit_gamma_gamma(summary.frequency, summary.monetary))


def test_bgnbd_and_gamma_gamma_reproduce_the_published_cdnow_estimates_from_the_summary_files(cdnow):
    shipped = np.genfromtxt(cdnow / "cdnow_customers_summary.csv", delimiter=",", names=True)
    _published(clv.fit_bgnbd(shipped["frequency"], shipped["recency"], shipped["T"]))
    with_money = np.genfromtxt(cdnow / "cdnow_customers_summary_with_transactions.csv", delimiter=",", names=True)
    # The shipped means are rounded to the cent, which moves gamma to 15.448: 3 significant digits.
    _published_gg(clv.fit_gamma_gamma(with_money["x"], with_money["zbar"]), digits=3)


def test_conditional_expectation_of_the_paper_s_example_customer():
    # FHL 2005: a customer with x = 2, t_x = 30.43, T = 38.86 is expected to buy 1.226 times in 39 weeks.
    bg = clv.BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0)
    assert round(float(clv.expected_purchases(bg, 39, [2], [30.43], [38.86])[0]), 3) == 1.226


# --- the hypergeometric expectation --------------------------------------------------------------------

def _integrated(bg: clv.BgNbdParams, t: float, x: float, t_x: float, T: float) -> float:
    """E[Y(t)] = P(alive) * E over p ~ Beta(a, b+x) of (1 - (1 + p t/(alpha+T))^-(r+x)) / p, by quadrature."""
    s = t / (bg.alpha + T)
    log_beta = special.betaln(bg.a, bg.b + x)

    def integrand(p: float) -> float:
        density = np.exp((bg.a - 1) * np.log(p) + (bg.b + x - 1) * np.log1p(-p) - log_beta)
        return density * -np.expm1(-(bg.r + x) * np.log1p(p * s)) / p

    value = integrate.quad(integrand, 0, 1, limit=400, epsabs=0, epsrel=1e-11, points=[1e-6, 1e-3, 0.1])[0]
    return float(clv.p_alive(bg, [x], [t_x], [T])[0] * value)


# The series needs about 37 (alpha+T+t)/(alpha+T) terms: (alpha 2, T 0, t 1000) is 18,500 of them.
@pytest.mark.parametrize("params", [(0.243, 4.414, 0.793, 2.426), (2.0, 1.0, 1.0, 3.0), (0.5, 2.0, 3.5, 0.4),
                                    (1.2, 20.0, 1.0000001, 5.0)],
                         ids=["cdnow", "a=1", "a>1 b<1", "a near 1"])
@pytest.mark.parametrize("case", [(39, 2, 30.43, 38.86), (39, 0, 0, 38.86), (52, 100, 50, 52), (1000, 0, 0, 0),
                                  (5000, 5, 1, 2), (52, 1000, 51, 52), (10, 1, 0.5, 0.5)],
                         ids=["paper", "x=0", "x=100", "age 0 far", "long horizon", "x=1000", "short"])
def test_expected_purchases_agree_with_a_numerical_integral(params, case):
    bg = clv.BgNbdParams(*params, log_likelihood=0.0)
    t, x, t_x, T = case
    ours = float(clv.expected_purchases(bg, t, [x], [t_x], [T])[0])
    assert ours == pytest.approx(_integrated(bg, t, x, t_x, T), rel=1e-8, abs=1e-300)


def _closed_form_with_scipy(bg: clv.BgNbdParams, t: float, x: float, T: float) -> float:
    """FHL eq. 10 as usually written, with scipy's hyp2f1 (the alive-given-data factor left out)."""
    r, alpha, a, b = bg.r, bg.alpha, bg.a, bg.b
    with np.errstate(all="ignore"):
        h = special.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
        return (a + b + x - 1) / np.float64(a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * h)


def test_expected_purchases_are_finite_where_the_usual_closed_form_with_scipy_hyp2f1_is_not():
    cdnow = clv.BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0)
    assert not np.isfinite(_closed_form_with_scipy(cdnow, 5000, 1000, 52))  # hyp2f1 overflows to inf
    a_is_one = clv.BgNbdParams(r=2.0, alpha=1.0, a=1.0, b=3.0, log_likelihood=0.0)
    assert not np.isfinite(_closed_form_with_scipy(a_is_one, 39, 2, 38.86))  # 1/(a-1)
    for bg in (cdnow, a_is_one):
        value = clv.expected_purchases(bg, 5000, [1000, 2], [51, 30.43], [52, 38.86])
        assert np.all(np.isfinite(value)) and np.all(value > 0)
        assert value[0] == pytest.approx(_integrated(bg, 5000, 1000, 51, 52), rel=1e-8)


def test_a_horizon_too_long_for_the_series_is_refused_not_truncated(monkeypatch):
    bg = clv.BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0)
    monkeypatch.setattr(clv_module, "SERIES_MAX_TERMS", 100)  # 39 weeks from T = 38.86 needs fewer
    assert np.isfinite(clv.expected_purchases(bg, 39, [2], [30.43], [38.86])).all()
    with pytest.raises(InvalidInput) as caught:
        clv.expected_purchases(bg, 5000, [2], [0.5], [1.0])  # needs about 37 * 5005 / 5.4 terms
    assert caught.value.code == "clv.input.horizon"


# --- summarise -----------------------------------------------------------------------------------------

def test_summarise_counts_same_day_purchases_once_and_averages_repeat_days():
    rows = [("m1", "2024-01-01", 10.0), ("m1", "2024-01-01", 5.0), ("m1", "2024-01-08", 20.0),
            ("m1", "2024-01-08 18:30", 4.0), ("m1", "20240115", 30.0), ("m2", dt.date(2024, 1, 15), 7.0)]
    s = clv.summarise(rows, calibration_end="2024-01-29", unit="days")
    assert list(s.ids) == ["m1", "m2"]
    assert list(s.frequency) == [2, 0]
    assert list(s.recency) == [14, 0]
    assert list(s.T) == [28, 14]
    assert list(s.monetary) == [27.0, 0.0]  # (24 + 30) / 2; the first day's 15 is not a repeat purchase
    weeks = clv.summarise(rows, calibration_end="2024-01-29")
    assert weeks.T[0] == pytest.approx(4.0) and weeks.recency[0] == pytest.approx(2.0)


def test_summarise_leaves_out_what_comes_after_calibration():
    rows = [("m1", "2024-01-01", 10.0), ("m1", "2024-03-01", 10.0), ("m2", "2024-02-20", 5.0)]
    s = clv.summarise(rows, calibration_end="2024-02-01", observation_end="2024-03-31", unit="days")
    assert list(s.ids) == ["m1"] and list(s.frequency) == [0] and list(s.T) == [31]
    assert clv.summarise(rows, unit="days").T.tolist() == [60, 10]  # default end: the last purchase's day


def test_summarise_counts_zero_amount_purchases_but_refuses_negative_and_non_finite_amounts():
    s = clv.summarise([("m", "2024-01-01", 0.0), ("m", "2024-01-02", 0.0)], unit="days")
    assert s.frequency[0] == 1 and s.monetary[0] == 0.0
    for bad, code in ((-1.0, "clv.input.amount"), (float("nan"), "clv.input.non_finite"),
                      (float("inf"), "clv.input.non_finite")):
        with pytest.raises(InvalidInput) as caught:
            clv.summarise([("m", "2024-01-01", 1.0), ("m", "2024-01-02", bad)])
        assert caught.value.code == code
    with pytest.raises(InvalidInput, match="not a date"):
        clv.summarise([("m", "01/02/2024", 1.0)])
    with pytest.raises(InvalidInput):
        clv.summarise([])


# --- failure modes -------------------------------------------------------------------------------------

def _population(n: int = 3000, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Summaries drawn from BG/NBD (r 0.8, alpha 8, a 0.9, b 3) and Gamma-Gamma amounts, in weeks."""
    rng = np.random.default_rng(seed)
    T = rng.integers(0, 60, n).astype(float)
    rate, drop = rng.gamma(0.8, 1 / 8, n), rng.beta(0.9, 3.0, n)
    x, t_x, clock, active = np.zeros(n), np.zeros(n), np.zeros(n), np.arange(n)
    while active.size:
        clock[active] += rng.exponential(1.0, active.size) / rate[active]
        active = active[clock[active] <= T[active]]
        x[active] += 1
        t_x[active] = clock[active]
        active = active[rng.random(active.size) >= drop[active]]
    nu = rng.gamma(3.5, 1 / 40, n)
    m = np.where(x > 0, rng.gamma(6.0 * np.maximum(x, 1), 1 / nu) / np.maximum(x, 1), 0.0)
    return x, t_x, T, m


def test_no_repeat_buyers_is_a_clear_fit_error():
    zeros = np.zeros(50)
    with pytest.raises(clv.FitError) as caught:
        clv.fit_bgnbd(zeros, zeros, np.linspace(1, 30, 50))
    assert caught.value.code == "clv.fit.no_repeat_buyers" and caught.value.status == 422
    with pytest.raises(clv.FitError) as caught:
        clv.fit_gamma_gamma(zeros, zeros)
    assert caught.value.code == "clv.fit.no_repeat_buyers"


def test_members_of_age_zero_are_fitted_and_get_finite_figures():
    x, t_x, T, m = _population()
    assert np.any(T == 0)
    bg = clv.fit_bgnbd(x, t_x, T)
    gg = clv.fit_gamma_gamma(x, m)
    newborn = T == 0
    alive = clv.p_alive(bg, x[newborn], t_x[newborn], T[newborn])
    assert np.all(alive == 1.0)
    purchases = clv.expected_purchases(bg, 52, x[newborn], t_x[newborn], T[newborn])
    assert np.all(np.isfinite(purchases)) and np.all(purchases > 0)
    value = clv.lifetime_value(bg, gg, x, t_x, T, m, horizon_months=12, monthly_discount=0.01,
                               units_per_month=30 / 7)
    assert np.all(np.isfinite(value)) and np.all(value >= 0)


def test_zero_amount_repeat_buyers_are_left_out_of_gamma_gamma_with_a_warning():
    x, _, _, m = _population()
    gg = clv.fit_gamma_gamma(x, m)
    zeroed = m.copy()
    zeroed[np.flatnonzero(x > 0)[:25]] = 0.0
    with pytest.warns(clv.ZeroSpendWarning, match="25 repeat buyer"):
        without = clv.fit_gamma_gamma(x, zeroed)
    kept = ~((x > 0) & (zeroed == 0))
    assert without == clv.fit_gamma_gamma(x[kept], m[kept])
    assert without != gg
    spend = clv.expected_spend(without, x, zeroed)
    assert np.all(np.isfinite(spend)) and np.all(spend > 0)


def test_a_fit_that_does_not_converge_is_an_error_not_parameters(monkeypatch):
    x, t_x, T, m = _population()
    monkeypatch.setattr(clv_optimise, "MAX_ITERATIONS", 2)
    with pytest.raises(clv.FitError) as caught:
        clv.fit_bgnbd(x, t_x, T)
    assert caught.value.code == "clv.fit.not_converged"
    with pytest.raises(clv.FitError) as caught:
        clv.fit_gamma_gamma(x, m)
    assert caught.value.code == "clv.fit.not_converged"


@pytest.mark.parametrize("data", ["everyone buying at the very end", "a single repeat buyer"])
def test_data_that_do_not_determine_the_model_are_refused(data):
    rng = np.random.default_rng(1)
    T = rng.uniform(10, 50, 500)
    if data == "everyone buying at the very end":  # no one ever drops out: p runs off to 0
        x, t_x = rng.integers(1, 10, 500).astype(float), T.copy()
    else:
        x, t_x = np.r_[1.0, np.zeros(500)], np.r_[5.0, np.zeros(500)]
        T = np.r_[10.0, T]
    with pytest.raises(clv.FitError) as caught:
        clv.fit_bgnbd(x, t_x, T)
    assert caught.value.code == "clv.fit.degenerate"


def test_gamma_gamma_refuses_amounts_that_all_agree_or_are_heavy_tailed():
    rng = np.random.default_rng(2)
    with pytest.raises(clv.FitError, match="same mean amount"):
        clv.fit_gamma_gamma(np.ones(100), np.full(100, 5.0))
    with pytest.raises(clv.FitError) as caught:
        clv.fit_gamma_gamma(np.ones(500), (rng.pareto(0.6, 500) + 1) * 10)
    assert caught.value.code in ("clv.fit.heavy_tail", "clv.fit.degenerate")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_refused_everywhere(bad):
    x, t_x, T, m = _population(300)
    bg = clv.BgNbdParams(0.8, 8.0, 0.9, 3.0, 0.0)
    gg = clv.GammaGammaParams(6.0, 3.5, 40.0, 0.0)
    broken = T.copy()
    broken[7] = bad
    calls = [lambda: clv.fit_bgnbd(x, t_x, broken), lambda: clv.p_alive(bg, x, t_x, broken),
             lambda: clv.expected_purchases(bg, 10, x, t_x, broken),
             lambda: clv.fit_bgnbd(x, t_x, T, weights=broken),
             lambda: clv.fit_gamma_gamma(x, np.where(np.arange(x.size) == 7, bad, m)),
             lambda: clv.expected_spend(gg, x, np.where(np.arange(x.size) == 7, bad, m)),
             lambda: clv.lifetime_value(bg, gg, x, t_x, broken, m, horizon_months=3, monthly_discount=0.01,
                                        units_per_month=4.3)]
    for call in calls:
        with pytest.raises(InvalidInput) as caught:
            call()
        assert caught.value.code == "clv.input.non_finite"
    with pytest.raises(InvalidInput):
        clv.expected_purchases(bg, bad, x, t_x, T)
    with pytest.raises(InvalidInput):
        clv.p_alive(clv.BgNbdParams(bad, 8.0, 0.9, 3.0, 0.0), x, t_x, T)


def test_inconsistent_summaries_are_refused():
    bg = clv.BgNbdParams(0.8, 8.0, 0.9, 3.0, 0.0)
    for x, t_x, T in (([1], [5], [4]), ([-1], [0], [4]), ([1.5], [1], [4]), ([0], [2], [4]), ([1, 2], [1], [4])):
        with pytest.raises(InvalidInput):
            clv.p_alive(bg, x, t_x, T)


# --- the fit's own guarantees --------------------------------------------------------------------------

def test_identical_rows_fit_the_same_as_their_weights():
    x, t_x, T, m = _population(2000)
    doubled = clv.fit_bgnbd(np.r_[x, x], np.r_[t_x, t_x], np.r_[T, T])
    weighted = clv.fit_bgnbd(x, t_x, T, weights=np.full(x.size, 2.0))
    for name in ("r", "alpha", "a", "b", "log_likelihood"):
        assert getattr(doubled, name) == pytest.approx(getattr(weighted, name), rel=1e-8)
    assert clv.fit_gamma_gamma(np.r_[x, x], np.r_[m, m]).p == pytest.approx(
        clv.fit_gamma_gamma(x, m, weights=np.full(x.size, 2.0)).p, rel=1e-8)


def test_a_large_population_is_fitted_from_a_sample_then_all_rows_to_the_same_optimum(monkeypatch):
    x, t_x, T, m = _population(6000, seed=5)
    full = clv.fit_bgnbd(x, t_x, T)
    monkeypatch.setattr(clv_optimise, "SAMPLE_ROWS", 500)  # force the sampled start on this small set
    sampled = clv.fit_bgnbd(x, t_x, T)
    for name in ("r", "alpha", "a", "b"):
        assert getattr(sampled, name) == pytest.approx(getattr(full, name), rel=1e-7)


def test_fits_are_the_same_bit_for_bit_whatever_the_members_order(monkeypatch):
    x, t_x, T, m = _population(4000, seed=8)
    monkeypatch.setattr(clv_optimise, "SAMPLE_ROWS", 800)  # the sampled start too
    order = np.random.default_rng(1).permutation(x.size)
    assert clv.fit_bgnbd(x, t_x, T) == clv.fit_bgnbd(x[order], t_x[order], T[order])
    assert clv.fit_gamma_gamma(x, m) == clv.fit_gamma_gamma(x[order], m[order])


def test_collapsing_groups_identical_rows_whichever_way_it_sorts():
    rng = np.random.default_rng(9)
    few = tuple(rng.integers(0, 4, 3000).astype(float) for _ in range(3))
    many = tuple(np.r_[c, rng.random(10_000 - c.size)] for c in few) + tuple(rng.random(10_000)
                                                                             for _ in range(2))
    for columns in (few, many):  # 4^3 possible keys; 10^20 (past int64: the lexsort path)
        w = rng.integers(0, 3, columns[0].size).astype(float)
        expected: dict[tuple, float] = {}
        for row, weight in zip(zip(*columns, strict=True), w, strict=True):
            if weight:
                expected[row] = expected.get(row, 0.0) + weight
        rows, weights = clv_optimise.collapse(columns, w)
        got = dict(zip(zip(*rows, strict=True), weights, strict=True))
        assert got == expected and list(got) == sorted(got)


def test_lifetime_value_is_the_discounted_monthly_expected_purchases_times_spend():
    bg = clv.BgNbdParams(0.8, 8.0, 0.9, 3.0, 0.0)
    gg = clv.GammaGammaParams(6.0, 3.5, 40.0, 0.0)
    x, t_x, T, m = np.array([0.0, 3.0]), np.array([0.0, 20.0]), np.array([10.0, 30.0]), np.array([0.0, 50.0])
    month = 30 / 7
    value = clv.lifetime_value(bg, gg, x, t_x, T, m, horizon_months=2, monthly_discount=0.05,
                               units_per_month=month)
    first = clv.expected_purchases(bg, month, x, t_x, T)
    both = clv.expected_purchases(bg, 2 * month, x, t_x, T)
    expected = (first / 1.05 + (both - first) / 1.05 ** 2) * clv.expected_spend(gg, x, m)
    assert np.allclose(value, expected, rtol=1e-12)
    assert np.all(clv.lifetime_value(bg, gg, x, t_x, T, m, horizon_months=0, monthly_discount=0.05,
                                     units_per_month=month) == 0)
    assert clv.expected_spend(gg, [0], [0])[0] == pytest.approx(6.0 * 40.0 / 2.5)  # the population mean


# --- properties ----------------------------------------------------------------------------------------

params = st.tuples(st.floats(0.05, 5), st.floats(0.05, 50), st.floats(0.05, 5), st.floats(0.05, 10))
members = st.lists(st.tuples(st.integers(0, 200), st.floats(0, 1), st.floats(0, 200)), min_size=1, max_size=20)


def _arrays(rows):
    x = np.array([float(r[0]) for r in rows])
    T = np.array([r[2] for r in rows])
    t_x = np.where(x > 0, np.array([r[1] for r in rows]) * T, 0.0)
    return x, t_x, T


@settings(max_examples=60, deadline=None)
@given(params, members)
def test_p_alive_is_a_probability_and_one_without_repeat_purchases(theta, rows):
    bg = clv.BgNbdParams(*theta, log_likelihood=0.0)
    x, t_x, T = _arrays(rows)
    alive = clv.p_alive(bg, x, t_x, T)
    assert np.all((alive >= 0) & (alive <= 1))
    assert np.all(alive[x == 0] == 1)


@settings(max_examples=60, deadline=None)
@given(params, members, st.floats(0.1, 100), st.floats(0.1, 200))
def test_expected_purchases_are_finite_non_negative_and_grow_with_the_horizon(theta, rows, t, more):
    bg = clv.BgNbdParams(*theta, log_likelihood=0.0)
    x, t_x, T = _arrays(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid-value warning either
        near = clv.expected_purchases(bg, t, x, t_x, T)
        far = clv.expected_purchases(bg, t + more, x, t_x, T)
    assert np.all(np.isfinite(near)) and np.all(near >= 0)
    assert np.all(far >= near * (1 - 1e-12))
    assert np.all(clv.expected_purchases(bg, 0, x, t_x, T) == 0)


@settings(max_examples=40, deadline=None)
@given(params, members, st.tuples(st.floats(0.1, 20), st.floats(1.01, 20), st.floats(0.1, 500)),
       st.integers(0, 24))
def test_spend_and_lifetime_value_are_finite_non_negative_and_grow_with_the_horizon(theta, rows, gamma_gamma,
                                                                                    months):
    bg = clv.BgNbdParams(*theta, log_likelihood=0.0)
    gg = clv.GammaGammaParams(*gamma_gamma, log_likelihood=0.0)
    x, t_x, T = _arrays(rows)
    m = np.where(x > 0, 10.0 + x, 0.0)
    spend = clv.expected_spend(gg, x, m)
    assert np.all(np.isfinite(spend)) and np.all(spend > 0)
    value = clv.lifetime_value(bg, gg, x, t_x, T, m, horizon_months=months, monthly_discount=0.01,
                               units_per_month=30 / 7)
    longer = clv.lifetime_value(bg, gg, x, t_x, T, m, horizon_months=months + 1, monthly_discount=0.01,
                                units_per_month=30 / 7)
    assert np.all(np.isfinite(value)) and np.all(value >= 0) and np.all(longer >= value)


def test_shrunk_spend_pulls_each_mean_towards_everyones_by_the_prior_weight():
    x = np.array([0.0, 1.0, 3.0])
    m = np.array([0.0, 40.0, 20.0])
    # Everyone's spend per repeat purchase: (1 * 40 + 3 * 20) / 4 = 25.
    got = clv.shrunk_spend(x, m, prior_weight=2.0)
    assert got == pytest.approx([25.0, (40 + 2 * 25) / 3, (60 + 2 * 25) / 5])
    with pytest.raises(clv.FitError) as refused:
        clv.shrunk_spend(np.zeros(3), np.zeros(3), prior_weight=2.0)
    assert refused.value.code == "clv.fit.no_repeat_buyers"


def test_lifetime_value_is_the_discounted_purchases_times_the_expected_spend():
    bg = clv.BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0)
    gg = clv.GammaGammaParams(p=6.25, q=3.74, gamma=15.44, log_likelihood=0.0)
    x, t_x, age, m = np.array([0.0, 2, 7]), np.array([0.0, 30.4, 35]), np.array([38.9, 38.9, 40]), np.array([0, 22.3, 40])
    kwargs = dict(horizon_months=12, monthly_discount=0.01, units_per_month=30 / 7)
    purchases = clv.discounted_purchases(bg, x, t_x, age, **kwargs)
    assert clv.lifetime_value(bg, gg, x, t_x, age, m, **kwargs) == pytest.approx(purchases * clv.expected_spend(gg, x, m))
    # Undiscounted, the months add up to the expected purchases over the whole horizon.
    flat = clv.discounted_purchases(bg, x, t_x, age, horizon_months=12, monthly_discount=0.0, units_per_month=30 / 7)
    assert flat == pytest.approx(clv.expected_purchases(bg, 12 * 30 / 7, x, t_x, age))
