"""Customer lifetime value: BG/NBD (how often, and for how long, a member buys) and Gamma-Gamma (how much).

Pure numpy/scipy over per-member summaries; no database, no Python loop per member. The models, the
formulas and the failure modes are explained in docs/lifetime-value.md.

    summary = summarise(rows, calibration_end=date(1997, 9, 30), unit="weeks")
    bg = fit_bgnbd(summary.frequency, summary.recency, summary.T)
    gg = fit_gamma_gamma(summary.frequency, summary.monetary)
    value = lifetime_value(bg, gg, summary.frequency, summary.recency, summary.T, summary.monetary,
                           horizon_months=12, monthly_discount=0.01, units_per_month=30 / 7)

Errors: bad input is ``InvalidInput`` (codes ``clv.input.*``); a model that cannot be fitted to the
data is ``FitError`` (a ``RuleViolation``, codes ``clv.fit.*``). Parameters are never returned from a
fit that did not converge, and no per-member function returns a NaN.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, gammaln

from mallapp.domain.clv_optimise import Objective, collapse, dot, maximise
from mallapp.domain.clv_summary import Summary, as_array, summarise
from mallapp.errors import FitError, InvalidInput

__all__ = ["BgNbdParams", "FitError", "GammaGammaParams", "Summary", "ZeroSpendWarning", "discounted_purchases",
           "expected_purchases", "expected_spend", "fit_bgnbd", "fit_gamma_gamma", "lifetime_value", "p_alive",
           "shrunk_spend", "summarise"]

SERIES_MAX_TERMS = 2_000_000  # the hypergeometric series; z = t/(alpha+T+t) this close to 1 is absurd


class ZeroSpendWarning(UserWarning):
    """Repeat buyers whose repeat purchases were all of amount 0 were left out of the Gamma-Gamma fit."""


@dataclass(frozen=True)
class BgNbdParams:
    """BG/NBD: purchase rate ~ Gamma(shape r, rate alpha); drop-out probability ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-Gamma: a purchase's amount ~ Gamma(p, nu), with the member's nu ~ Gamma(shape q, rate gamma)."""

    p: float
    q: float
    gamma: float
    log_likelihood: float


# --------------------------------------------------------------------------- input checks


def _members(frequency, recency, T) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three summary arrays, checked: finite, same length, 0 <= recency <= T, whole frequencies."""
    x, t_x, age = (as_array(v, name) for v, name in ((frequency, "frequency"), (recency, "recency"), (T, "T")))
    if not (x.shape == t_x.shape == age.shape):
        raise InvalidInput("frequency, recency and T must have the same length", code="clv.input.shape")
    if np.any(x < 0) or np.any(x != np.floor(x)):
        raise InvalidInput("frequency must be a whole number >= 0", code="clv.input.frequency")
    slack = 1e-9 * np.maximum(age, 1.0)
    if np.any(t_x < 0) or np.any(age < 0) or np.any(t_x > age + slack):
        raise InvalidInput("recency and T must satisfy 0 <= recency <= T", code="clv.input.recency")
    if np.any((x == 0) & (t_x != 0)):
        raise InvalidInput("recency must be 0 where frequency is 0 (recency is the age at the last repeat "
                           "purchase)", code="clv.input.recency")
    return x, np.minimum(t_x, age), age


def _weights(weights, n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    w = as_array(weights, "weights")
    if w.shape != (n,):
        raise InvalidInput("weights must have one value per member", code="clv.input.shape")
    if np.any(w < 0):
        raise InvalidInput("weights must be >= 0", code="clv.input.weights")
    return w


def _params_finite(*values: float) -> None:
    if not all(np.isfinite(v) and v > 0 for v in values):
        raise InvalidInput("model parameters must be finite and positive", code="clv.input.params")


# --------------------------------------------------------------------------- fitting


def fit_bgnbd(frequency, recency, T, *, weights=None) -> BgNbdParams:
    """Maximum-likelihood BG/NBD parameters (r, alpha, a, b) from per-member (x, t_x, T).

    Identical rows are collapsed into one weighted row first, so the cost grows with the number of
    distinct summaries, not of members. Raises FitError without repeat buyers or when the fit does not
    converge.
    """
    x, t_x, age = _members(frequency, recency, T)
    w = _weights(weights, x.size)
    (x, t_x, age), w = collapse((x, t_x, age), w)  # sorted by x, then t_x, then T
    if w.size == 0:
        raise FitError("no members to fit", code="clv.fit.no_members")
    if not np.any(x > 0):
        raise FitError("no member bought more than once: BG/NBD needs repeat buyers to tell how often "
                       "members buy and drop out", code="clv.fit.no_repeat_buyers")
    if not np.any(age > 0):
        raise FitError("every member's age is 0: there is no observed time to fit", code="clv.fit.no_time")
    # Work in a time unit where the oldest member is 10 old, so the log-parameters start near 0.
    scale = 10.0 / float(age.max())
    theta, objective = maximise(_bgnbd_objective, (x, t_x * scale, age * scale), w, np.zeros(4), "BG/NBD")
    r, alpha_scaled, a, b = (float(v) for v in np.exp(theta))
    alpha = alpha_scaled / scale
    # Back to the original time unit: each member's density picks up scale^x (FHL's likelihood is a
    # density in the purchase times).
    ll = float(-objective(theta)[0] * w.sum() + dot(w, x) * np.log(scale))
    return BgNbdParams(r=r, alpha=alpha, a=a, b=b, log_likelihood=ll)


def _bgnbd_objective(x: np.ndarray, t_x: np.ndarray, age: np.ndarray, w: np.ndarray):
    """The mean negative log-likelihood over log-parameters and its exact gradient, for collapsed rows
    sorted by x. Members without repeat purchases (x = 0, so t_x = 0) depend on T alone and are summed
    apart; what depends on x alone is computed once per distinct x."""
    total = float(w.sum())
    zero = x == 0
    T0, w0 = age[zero], w[zero]
    x1, w1 = x[~zero], w[~zero]
    T1, tx1 = age[~zero], t_x[~zero]
    xs, starts, counts = np.unique(x1, return_index=True, return_counts=True)
    wx_all = np.concatenate([[w0.sum()], np.add.reduceat(w1, starts)])
    xs_all = np.concatenate([[0.0], xs])
    wx1 = w1 * x1

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        r, alpha, a, b = np.exp(theta)
        # Members without repeat purchases: r ln(alpha) - r ln(alpha + T).
        lnT0 = np.log(alpha + T0)
        ll0 = -r * dot(w0, lnT0)
        g_r0 = -dot(w0, lnT0)
        g_alpha0 = -r * dot(w0, 1.0 / (alpha + T0))
        # Repeat buyers: the "alive at T" and "dropped out after t_x" branches, mixed in logs.
        lnT, ln_tx = np.log(alpha + T1), np.log(alpha + tx1)
        w_rx = w1 * r + wx1
        gap = ln_tx - lnT
        diff = np.repeat(np.log(a) - np.log(b + xs - 1.0), counts) - (r + x1) * gap  # log(branch 2 / branch 1)
        soft = np.maximum(diff, 0.0) + np.log1p(np.exp(-np.abs(diff)))  # log(1 + e^diff); np.logaddexp is slow
        s2 = np.exp(diff - soft)                       # the share of branch 2
        ws2 = w1 * s2
        w_lnT = dot(w1, lnT)
        ll1 = -r * w_lnT - dot(wx1, lnT) + dot(w1, soft)
        g_r1 = -w_lnT - dot(ws2, gap)
        inv_T = 1.0 / (alpha + T1)
        g_alpha1 = -dot(w_rx, inv_T) - dot(w_rx * s2, 1.0 / (alpha + tx1) - inv_T)
        s2_by_x = np.add.reduceat(ws2, starts)
        # Terms in x alone: lnGamma(r+x) - lnGamma(r) + lnB(a, b+x) - lnB(a, b), per distinct x.
        per_x = (gammaln(r + xs_all) - gammaln(r) + gammaln(b + xs_all) - gammaln(a + b + xs_all)
                 - gammaln(b) + gammaln(a + b))
        ll = dot(wx_all, per_x) + total * r * np.log(alpha) + ll0 + ll1
        g_r = dot(wx_all, digamma(r + xs_all)) - total * digamma(r) + total * np.log(alpha) + g_r0 + g_r1
        g_alpha = total * r / alpha + g_alpha0 + g_alpha1
        dig_abx = digamma(a + b + xs_all)
        g_a = total * digamma(a + b) - dot(wx_all, dig_abx) + s2_by_x.sum() / a
        g_b = (dot(wx_all, digamma(b + xs_all) - dig_abx) - total * (digamma(b) - digamma(a + b))
               - dot(s2_by_x, 1.0 / (b + xs - 1.0)))
        grad = np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b])
        # Mean over members (weights summed), so the tolerances mean the same at any size.
        return -ll / total, -grad / total

    return objective


def fit_gamma_gamma(frequency, monetary, *, weights=None) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma parameters (p, q, gamma) from repeat buyers' (x, mean repeat amount).

    Members with frequency 0 carry no spend information and are ignored; repeat buyers whose mean is 0
    (only zero-amount repeat purchases) are left out with a ZeroSpendWarning. Raises FitError without
    repeat buyers, when the fit does not converge, or when q <= 1 (an infinite mean spend).
    """
    x = as_array(frequency, "frequency")
    m = as_array(monetary, "monetary")
    if x.shape != m.shape:
        raise InvalidInput("frequency and monetary must have the same length", code="clv.input.shape")
    if np.any(x < 0) or np.any(x != np.floor(x)):
        raise InvalidInput("frequency must be a whole number >= 0", code="clv.input.frequency")
    if np.any(m < 0):
        raise InvalidInput("monetary must be >= 0", code="clv.input.monetary")
    w = _weights(weights, x.size)
    zero = (x > 0) & (m == 0) & (w > 0)
    if np.any(zero):
        warnings.warn(f"{int(zero.sum())} repeat buyer(s) with a mean repeat amount of 0 left out of the "
                      "Gamma-Gamma fit (the model needs positive amounts)", ZeroSpendWarning, stacklevel=2)
    keep = (x > 0) & (m > 0)
    (x, m), w = collapse((x[keep], m[keep]), w[keep])
    if w.size == 0:
        raise FitError("no repeat buyer with a positive amount: Gamma-Gamma needs them",
                       code="clv.fit.no_repeat_buyers")
    if w.size < 2 or np.ptp(m) == 0:
        raise FitError("every repeat buyer has the same mean amount: Gamma-Gamma cannot tell spread from "
                       "level", code="clv.fit.degenerate")
    scale = 10.0 / float(np.median(m))  # amounts in a unit where the median mean is 10
    theta, objective = maximise(_gamma_gamma_objective, (x, m * scale), w, np.zeros(3), "Gamma-Gamma")
    p, q, g_scaled = (float(v) for v in np.exp(theta))
    if q <= 1:
        raise FitError(f"the Gamma-Gamma fit gives q = {q:.3g} <= 1: the mean spend per purchase would be "
                       "infinite; the amounts are too heavy-tailed for this model", code="clv.fit.heavy_tail")
    gamma = g_scaled / scale
    # Back to the original currency unit: each mean amount's density picks up the factor ``scale``.
    total = float(w.sum())
    ll = -objective(theta)[0] * total + total * np.log(scale)
    return GammaGammaParams(p=p, q=q, gamma=gamma, log_likelihood=float(ll))


def _gamma_gamma_objective(x: np.ndarray, ms: np.ndarray, w: np.ndarray) -> Objective:
    """The mean negative log-likelihood of Gamma-Gamma over log-parameters, and its exact gradient."""
    total = float(w.sum())
    xs, x_index = np.unique(x, return_inverse=True)
    wx = np.bincount(x_index, weights=w)
    ln_x, ln_m = np.log(x), np.log(ms)
    wx_lnx = dot(w, x * (ln_x + ln_m))
    w_lnm = dot(w, ln_m)
    wx_row = w * x
    xm = x * ms

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        p, q, g = np.exp(theta)
        denominator = g + xm
        ln_den = np.log(denominator)
        px = p * xs
        w_lnden = dot(w, ln_den)
        wx_lnden = dot(wx_row, ln_den)
        ll = (dot(wx, gammaln(px + q) - gammaln(px)) - total * gammaln(q) + total * q * np.log(g)
              + p * wx_lnx - w_lnm - p * wx_lnden - q * w_lnden)
        dig_pq = digamma(px + q)
        g_p = dot(wx, xs * (dig_pq - digamma(px))) + wx_lnx - wx_lnden
        g_q = dot(wx, dig_pq) - total * digamma(q) + total * np.log(g) - w_lnden
        inv = 1.0 / denominator
        g_g = total * q / g - p * dot(wx_row, inv) - q * dot(w, inv)
        return -ll / total, -np.array([g_p * p, g_q * q, g_g * g]) / total

    return objective


# --------------------------------------------------------------------------- per member


def p_alive(params: BgNbdParams, frequency, recency, T) -> np.ndarray:
    """The probability that each member is still active at the end of observation (1 without repeat)."""
    x, t_x, age = _members(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    _params_finite(r, alpha, a, b)
    return 1.0 / (1.0 + _dropout_odds(r, alpha, a, b, x, t_x, age))


def _dropout_odds(r, alpha, a, b, x, t_x, age) -> np.ndarray:
    """P(dropped out at t_x) / P(alive) given the data: a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x), 0 at x=0."""
    repeat = x > 0
    with np.errstate(all="ignore"):
        log_odds = (np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0))
                    + (r + x) * (np.log(alpha + age) - np.log(alpha + t_x)))
        odds = np.exp(np.minimum(log_odds, 700.0))
    return np.where(repeat, odds, 0.0)


def _hyp2f1_part(A: float, a: float, C: np.ndarray, z: np.ndarray) -> np.ndarray:
    """G = (2F1(A, a-1; C; z) - 1) / (a-1) = sum_{k>=1} (A)_k (a)_{k-1} z^k / ((C)_k k!), for 0 <= z < 1.

    Summed term by term, vectorised over the rows still converging; the tail left out is bounded by
    the last term times rho/(1-rho), rho the terms' eventual ratio, and stops under 1e-15 of the sum.
    """
    total = np.zeros_like(z)
    active = np.flatnonzero(z > 0)
    term = A * z[active] / C[active]
    total[active] = term
    k = 1
    while active.size:
        if k >= SERIES_MAX_TERMS:
            raise InvalidInput("expected purchases: the horizon is too long for the time unit "
                               "(t/(alpha+T) beyond any sensible value)", code="clv.input.horizon")
        ratio = (A + k) * (a + k - 1) * z[active] / ((C[active] + k) * (k + 1))
        term = term * ratio
        total[active] += term
        rho = np.maximum(np.abs(ratio), z[active])
        tail = np.abs(term) * rho / np.maximum(1.0 - rho, 1e-300)
        done = (tail <= 1e-15 * np.abs(total[active])) & (np.abs(ratio) < 1.0)
        done |= term == 0
        if np.any(done):
            keep = ~done
            active, term = active[keep], term[keep]
        k += 1
    return total


def expected_purchases(params: BgNbdParams, t, frequency, recency, T) -> np.ndarray:
    """Each member's expected number of purchases in the next ``t`` time units (FHL 2005, eq. 10)."""
    x, t_x, age = _members(frequency, recency, T)
    return _expected_purchases(params, [t], x, t_x, age)[0]


def _expected_purchases(params: BgNbdParams, horizons, x: np.ndarray, t_x: np.ndarray,
                        age: np.ndarray) -> np.ndarray:
    """Expected purchases for each horizon (rows) and member (columns), from checked summaries."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    _params_finite(r, alpha, a, b)
    ts = np.asarray(horizons, dtype=float).reshape(-1)
    if not np.all(np.isfinite(ts)) or np.any(ts < 0):
        raise InvalidInput("t must be finite and >= 0", code="clv.input.horizon")
    out = np.zeros((ts.size, x.size))
    if x.size == 0 or not np.any(ts > 0):
        return out
    # The hypergeometric part depends on (x, T) only: computed once per distinct pair.
    (ux, uT), inverse = _distinct_pairs(x, age)
    alive = 1.0 / (1.0 + _dropout_odds(r, alpha, a, b, x, t_x, age))
    eps = a - 1.0
    for row, t in enumerate(ts):
        if t == 0:
            continue
        with np.errstate(all="ignore"):
            z = t / (alpha + uT + t)
            log_1mz = np.log(alpha + uT) - np.log(alpha + uT + t)
            # (1 - (1-z)^(a-1)) / (a-1), continuous through a = 1
            first = -log_1mz if eps == 0 else -np.expm1(eps * log_1mz) / eps
            series = _hyp2f1_part(a + b - 1.0 - r, a, a + b + ux - 1.0, z)
            part = (a + b + ux - 1.0) * (first - np.exp(eps * log_1mz) * series)
        out[row] = np.maximum(part, 0.0)[inverse] * alive
    return _no_nan(out, "expected purchases")


def _distinct_pairs(x: np.ndarray, age: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """The distinct (x, T) pairs, and for each member the index of theirs."""
    xs, x_code = np.unique(x, return_inverse=True)
    ages, age_code = np.unique(age, return_inverse=True)
    keys, inverse = np.unique(x_code.reshape(-1).astype(np.int64) * ages.size + age_code.reshape(-1),
                              return_inverse=True)
    return (xs[keys // ages.size], ages[keys % ages.size]), inverse.reshape(-1)


def _no_nan(value: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(value)):
        # Only reachable with parameters far outside anything a fit returns; say so rather than store it.
        raise InvalidInput(f"{what} overflowed for these parameters", code="clv.input.params")
    return value


def _spend_inputs(frequency, monetary) -> tuple[np.ndarray, np.ndarray]:
    """(frequency, monetary) as float arrays of one length, both >= 0, or InvalidInput."""
    x = as_array(frequency, "frequency")
    m = as_array(monetary, "monetary")
    if x.shape != m.shape:
        raise InvalidInput("frequency and monetary must have the same length", code="clv.input.shape")
    if np.any(x < 0) or np.any(m < 0):
        raise InvalidInput("frequency and monetary must be >= 0", code="clv.input.monetary")
    return x, m


def expected_spend(params: GammaGammaParams, frequency, monetary) -> np.ndarray:
    """Each member's expected amount per purchase: (p (gamma + x m)) / (p x + q - 1)."""
    x, m = _spend_inputs(frequency, monetary)
    p, q, gamma = params.p, params.q, params.gamma
    _params_finite(p, q, gamma)
    if q <= 1:
        raise InvalidInput("Gamma-Gamma q must be > 1 for a finite mean spend", code="clv.input.params")
    m = np.where(x > 0, m, 0.0)  # a member without repeat purchases gets the population mean
    return _no_nan(p * (gamma + x * m) / (p * x + q - 1.0), "expected spend")


def lifetime_value(bg: BgNbdParams, gg: GammaGammaParams, frequency, recency, T, monetary, *,
                   horizon_months: int, monthly_discount: float, units_per_month: float) -> np.ndarray:
    """Discounted value over the next ``horizon_months``: sum over months m of the expected purchases in
    month m, divided by (1 + monthly_discount)^m, times the expected spend per purchase.

    ``units_per_month`` is the length of a month in the summaries' time unit (30/7 for weeks, 30 for days).
    """
    if int(horizon_months) != horizon_months or horizon_months < 0:
        raise InvalidInput("horizon_months must be a whole number >= 0", code="clv.input.horizon")
    if not np.isfinite(monthly_discount) or monthly_discount <= -1:
        raise InvalidInput("monthly_discount must be finite and > -1", code="clv.input.horizon")
    if not np.isfinite(units_per_month) or units_per_month <= 0:
        raise InvalidInput("units_per_month must be finite and > 0", code="clv.input.horizon")
    spend = expected_spend(gg, frequency, monetary)
    purchases = discounted_purchases(bg, frequency, recency, T, horizon_months=horizon_months,
                                     monthly_discount=monthly_discount, units_per_month=units_per_month)
    return _no_nan(purchases * spend, "lifetime value")


def discounted_purchases(bg: BgNbdParams, frequency, recency, T, *, horizon_months: int, monthly_discount: float,
                         units_per_month: float) -> np.ndarray:
    """Expected purchases over the next ``horizon_months``, each month's divided by (1 + monthly_discount)^m.

    Times an expected spend per purchase this is the lifetime value (:func:`lifetime_value` uses Gamma-Gamma's;
    a caller whose amounts Gamma-Gamma cannot model brings its own).
    """
    if int(horizon_months) != horizon_months or horizon_months < 0:
        raise InvalidInput("horizon_months must be a whole number >= 0", code="clv.input.horizon")
    if not np.isfinite(monthly_discount) or monthly_discount <= -1:
        raise InvalidInput("monthly_discount must be finite and > -1", code="clv.input.horizon")
    if not np.isfinite(units_per_month) or units_per_month <= 0:
        raise InvalidInput("units_per_month must be finite and > 0", code="clv.input.horizon")
    x, t_x, age = _members(frequency, recency, T)
    months = np.arange(int(horizon_months) + 1)
    cumulative = _expected_purchases(bg, months * units_per_month, x, t_x, age)  # row 0: t = 0
    per_month = np.maximum(np.diff(cumulative, axis=0), 0.0)
    discount = (1.0 + monthly_discount) ** -months[1:]
    return _no_nan(discount @ per_month, "discounted purchases")


def shrunk_spend(frequency, monetary, *, prior_weight: float) -> np.ndarray:
    """Expected spend per purchase without Gamma-Gamma: each repeat buyer's mean repeat spend pulled towards the
    repeat buyers' overall mean, (x m + k mean) / (x + k), with ``prior_weight`` k purchases' worth of the mean;
    members without repeat purchases get the mean. For amounts Gamma-Gamma cannot model (``clv.fit.*``).
    """
    x, m = _spend_inputs(frequency, monetary)
    if not np.isfinite(prior_weight) or prior_weight <= 0:
        raise InvalidInput("prior_weight must be finite and > 0", code="clv.input.params")
    repeat = x > 0
    if not repeat.any():
        raise FitError("no member bought more than once: there is no repeat spend to learn from",
                       code="clv.fit.no_repeat_buyers")
    mean = float(np.sum(x[repeat] * m[repeat]) / np.sum(x[repeat]))  # spend per repeat purchase, all members
    m = np.where(repeat, m, 0.0)
    return _no_nan((x * m + prior_weight * mean) / (x + prior_weight), "expected spend")
