"""How well the lifetime-value models predict, measured on customers they were not fitted on.

Time is split at a calibration end; customers are split into K seeded folds. For each fold, BG/NBD and
Gamma-Gamma are fitted on the other folds' calibration summaries only, and the fold's customers are
predicted for the holdout period (after the calibration end, to the last day of data): their number of
repeat purchases (purchase days) and their mean spend per purchase day. Honest baselines are scored on
the same folds. The next-purchase-due rule of the segments run (own median gap from k purchase days, else
BG/NBD) gets its k by nested cross-validation: an inner CV on the outer training folds only chooses k,
and the outer folds score that procedure. See docs/lifetime-value.md, "How well it predicts".

Everything is vectorised over customers: one grouping of the purchases, then array arithmetic per fold.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mallapp.domain import clv
from mallapp.domain.clv_summary import UNIT_DAYS, to_day
from mallapp.domain.segment_rules import gap_stats
from mallapp.errors import InvalidInput

DUE_GRID: tuple[int | None, ...] = (2, 3, 4, 5, None)   # None: never the own gap, always BG/NBD
DUE_HORIZON_DAYS = 365.0                                  # the segments run: today + 365 / E[purchases in 365 days]


@dataclass(frozen=True)
class Holdout:
    """One entry per customer who first bought on or before the calibration end (arrays in ``ids`` order)."""

    ids: np.ndarray
    frequency: np.ndarray        # calibration: repeat purchase days
    recency: np.ndarray          # calibration: first to last purchase day, in ``unit``
    T: np.ndarray                # calibration: first purchase day to the calibration end, in ``unit``
    monetary: np.ndarray         # calibration: mean of the repeat purchase days' amounts (0 without)
    mean_spend: np.ndarray       # calibration: mean amount over all purchase days (the first included)
    purchase_days: np.ndarray    # calibration purchase days (frequency + 1)
    last_day: np.ndarray         # calibration: the last purchase day (days since 1970-01-01)
    median_gap: np.ndarray       # calibration: median gap between purchase days, in days (NaN with one day)
    holdout_purchases: np.ndarray    # purchase days after the calibration end
    holdout_spend: np.ndarray        # their mean amount (NaN without holdout purchases)
    next_day: np.ndarray             # the first holdout purchase day (inf without one)
    calibration_end: int
    observation_end: int
    unit: str

    @property
    def n(self) -> int:
        return int(self.ids.size)

    @property
    def holdout_length(self) -> float:
        """The holdout period's length in ``unit``."""
        return (self.observation_end - self.calibration_end) / UNIT_DAYS[self.unit]


def split_in_time(ids: Sequence[Any], days: Sequence[Any], amounts: Sequence[float], *,
                  calibration_end: Any = None, unit: str = "weeks") -> Holdout:
    """Group purchases by customer and day (same-day amounts summed) and summarise both periods.

    ``days``: datetime64 values, dates or date strings. ``calibration_end`` defaults to the middle of the
    observed period (first to last purchase day, rounded down); it must leave a holdout period.
    """
    if unit not in UNIT_DAYS:
        raise InvalidInput(f"unit must be one of {sorted(UNIT_DAYS)}, not {unit!r}", code="clv.input.unit")
    amounts = np.asarray(amounts, dtype=float)
    if amounts.size == 0:
        raise InvalidInput("no purchases to evaluate", code="clv.input.empty")
    if not np.all(np.isfinite(amounts)) or np.any(amounts < 0):
        raise InvalidInput("amounts must be finite and >= 0", code="clv.input.amount")
    day = _day_numbers(days)
    if not (len(ids) == day.size == amounts.size):
        raise InvalidInput("ids, days and amounts must have the same length", code="clv.input.shape")
    first_seen, end = int(day.min()), int(day.max())
    cal = (first_seen + end) // 2 if calibration_end is None else int(to_day(calibration_end).astype(np.int64))
    if not first_seen <= cal < end:
        raise InvalidInput("the calibration end must fall on or after the first purchase and before the last "
                           "one, so that both periods have data", code="clv.input.date")
    names, customer = np.unique(np.asarray(ids), return_inverse=True)
    customer = customer.reshape(-1).astype(np.int64)
    span = end - first_seen + 1
    keys, index = np.unique(customer * span + (day - first_seen), return_inverse=True)
    amount = np.bincount(index.reshape(-1), weights=amounts)
    who, when = keys // span, keys % span + first_seen          # one row per (customer, day), sorted
    n = names.size
    calib = when <= cal
    count = np.bincount(who[calib], minlength=n)
    cohort = count > 0
    starts = np.searchsorted(who, np.arange(n))
    held = ~calib
    held_count = np.bincount(who[held], minlength=n)
    held_spend = np.bincount(who[held], weights=amount[held], minlength=n)
    first_amount = amount[np.minimum(starts, who.size - 1)]
    spent = np.bincount(who[calib], weights=amount[calib], minlength=n)
    first_day = when[np.minimum(starts, who.size - 1)]
    last_row = np.maximum(starts + count - 1, 0)
    last_day = when[np.minimum(last_row, who.size - 1)]
    next_row = np.minimum(starts + count, who.size - 1)
    next_day = np.where(held_count > 0, when[next_row], np.inf)
    _, median_gap = gap_stats(who[calib], when[calib], n)
    x = (count - 1).astype(float)
    step = UNIT_DAYS[unit]
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(x > 0, (spent - first_amount) / np.maximum(x, 1), 0.0)
        mean_spend = spent / np.maximum(count, 1)
        holdout_spend = np.where(held_count > 0, held_spend / np.maximum(held_count, 1), np.nan)
    c = cohort
    return Holdout(ids=names[c], frequency=x[c], recency=((last_day - first_day) / step)[c],
                   T=((cal - first_day) / step)[c], monetary=np.maximum(monetary[c], 0.0), mean_spend=mean_spend[c],
                   purchase_days=count[c], last_day=last_day[c].astype(np.int64), median_gap=median_gap[c],
                   holdout_purchases=held_count[c].astype(float), holdout_spend=holdout_spend[c],
                   next_day=next_day[c].astype(float), calibration_end=cal, observation_end=end, unit=unit)


def _day_numbers(days: Sequence[Any]) -> np.ndarray:
    array = np.asarray(days)
    if np.issubdtype(array.dtype, np.datetime64):
        return array.astype("datetime64[D]").astype(np.int64)
    return np.array([to_day(v) for v in days], dtype="datetime64[D]").astype(np.int64)


# --------------------------------------------------------------------------- folds and metrics


def assign_folds(n: int, k: int, seed: int) -> np.ndarray:
    """Each of ``n`` customers' fold in 0..k-1: a seeded permutation dealt round, so fold sizes differ by <= 1."""
    if k < 2:
        raise InvalidInput("folds must be at least 2", code="clv.input.folds")
    if n < k:
        raise InvalidInput(f"{n} customers cannot be split into {k} folds", code="clv.input.folds")
    folds = np.empty(n, dtype=np.int64)
    folds[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    return folds


def count_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float | None]:
    """Mean absolute error per customer, root mean squared error, and the total's error in percent (None
    when nobody bought: no total to be wrong about)."""
    error = np.asarray(predicted, dtype=float) - np.asarray(actual, dtype=float)
    total = float(np.sum(actual))
    return {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error ** 2))),
            "total_error_pct": float(100.0 * np.sum(error) / total) if total > 0 else None}


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(predicted, dtype=float) - np.asarray(actual, dtype=float))))


def censored_day_errors(due: np.ndarray, actual: np.ndarray, calibration_end: int,
                        observation_end: int) -> np.ndarray:
    """|due - actual| in days, both clipped to [calibration end + 1, observation end + 1].

    A due day on or before the calibration end means "due now" (the day after it); a customer who does not
    buy in the holdout (actual = inf) and a prediction past the holdout (or none: inf) both count as the
    day after the holdout's end, so a prediction beyond the data and a customer who did not come back agree.
    """
    low, high = calibration_end + 1.0, observation_end + 1.0
    return np.abs(np.clip(due, low, high) - np.clip(actual, low, high))


# --------------------------------------------------------------------------- nested choice

Fit = Callable[[np.ndarray], Any]                          # training customers' indices -> a model
Evaluate = Callable[[Any, np.ndarray], dict[Any, np.ndarray]]  # (model, test indices) -> per-choice errors


def inner_choice(train: np.ndarray, choices: Sequence[Any], folds: int, seed: int, fit: Fit,
                 evaluate: Evaluate) -> tuple[Any, dict[Any, float]]:
    """The choice with the lowest mean error over a K-fold CV of ``train`` alone (ties: the earlier choice)."""
    inner = assign_folds(train.size, folds, seed)
    errors: dict[Any, list[np.ndarray]] = {c: [] for c in choices}
    for j in range(folds):
        model = fit(train[inner != j])
        scored = evaluate(model, train[inner == j])
        for c in choices:
            errors[c].append(scored[c])
    means = {c: float(np.mean(np.concatenate(errors[c]))) for c in choices}
    best = min(range(len(choices)), key=lambda i: (means[choices[i]], i))
    return choices[best], means


@dataclass
class Nested:
    chosen: list[Any]                    # per outer fold, chosen by the inner CV on its training folds
    errors: np.ndarray                   # per customer: the error of the procedure (its fold's choice)
    per_choice: dict[Any, np.ndarray]    # per customer and choice, for information only
    models: list[Any]                    # the outer folds' models (fitted on their training folds)


def nested_cv(folds: np.ndarray, choices: Sequence[Any], fit: Fit, evaluate: Evaluate, *,
              inner_folds: int, seed: int) -> Nested:
    """Outer folds score the whole procedure "choose by inner CV on the training folds, refit, predict"."""
    k = int(folds.max()) + 1
    n = folds.size
    errors = np.full(n, np.nan)
    per_choice = {c: np.full(n, np.nan) for c in choices}
    chosen, models = [], []
    for f in range(k):
        train, test = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        best, _ = inner_choice(train, choices, inner_folds, seed + 1 + f, fit, evaluate)
        model = fit(train)
        scored = evaluate(model, test)
        errors[test] = scored[best]
        for c in choices:
            per_choice[c][test] = scored[c]
        chosen.append(best)
        models.append(model)
    return Nested(chosen=chosen, errors=errors, per_choice=per_choice, models=models)


# --------------------------------------------------------------------------- the models and the rule


@dataclass(frozen=True)
class Models:
    bg: clv.BgNbdParams
    gg: clv.GammaGammaParams | None
    gg_error: str | None = None      # why there is no Gamma-Gamma (its FitError), if there is none


def fitter(data: Holdout) -> Fit:
    """Fit both models on the training customers. Without a BG/NBD fit nothing can be scored: its FitError
    is raised again, saying on how many customers; a Gamma-Gamma that cannot be fitted leaves the spend
    figures out and says why."""
    def fit(train: np.ndarray) -> Models:
        try:
            bg = clv.fit_bgnbd(data.frequency[train], data.recency[train], data.T[train])
        except clv.FitError as exc:
            raise clv.FitError(f"BG/NBD on {train.size} training customers: {exc.message}", code=exc.code) from None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", clv.ZeroSpendWarning)
                return Models(bg=bg, gg=clv.fit_gamma_gamma(data.frequency[train], data.monetary[train]))
        except clv.FitError as exc:
            return Models(bg=bg, gg=None, gg_error=f"{exc.message} ({exc.code})")
    return fit


def due_days(data: Holdout, idx: np.ndarray, bg: clv.BgNbdParams, k: int | None,
             expected_365: np.ndarray | None = None) -> np.ndarray:
    """The segments run's next purchase due day: the last purchase day + ⌈median gap⌉ with at least ``k``
    purchase days (never when ``k`` is None), else the calibration end + ⌈365 / E[purchases in 365 days]⌉
    when at least one is expected, else none (inf)."""
    if expected_365 is None:
        expected_365 = clv.expected_purchases(bg, DUE_HORIZON_DAYS / UNIT_DAYS[data.unit], data.frequency[idx],
                                              data.recency[idx], data.T[idx])
    gap = data.median_gap[idx]
    own = np.isfinite(gap) & (data.purchase_days[idx] >= (np.inf if k is None else k))
    with np.errstate(divide="ignore"):
        model = np.where(expected_365 >= 1, data.calibration_end + np.ceil(DUE_HORIZON_DAYS / expected_365), np.inf)
    return np.where(own, data.last_day[idx] + np.ceil(np.nan_to_num(gap)), model)


def due_evaluator(data: Holdout, choices: Sequence[int | None]) -> Evaluate:
    def evaluate(models: Models, test: np.ndarray) -> dict[Any, np.ndarray]:
        e365 = clv.expected_purchases(models.bg, DUE_HORIZON_DAYS / UNIT_DAYS[data.unit], data.frequency[test],
                                      data.recency[test], data.T[test])
        return {k: censored_day_errors(due_days(data, test, models.bg, k, e365), data.next_day[test],
                                       data.calibration_end, data.observation_end) for k in choices}
    return evaluate


# --------------------------------------------------------------------------- the whole evaluation


def _ratio(model: float | None, baseline: float | None) -> float | None:
    """model / baseline, None when either is missing or the baseline is 0 (JSON has no NaN)."""
    return None if model is None or not baseline else model / baseline


def _label(k: int | None) -> int | str:
    return "never" if k is None else int(k)


def evaluate(data: Holdout, *, folds: int = 5, seed: int = 0, grid: Sequence[int | None] = DUE_GRID,
             inner_folds: int | None = None) -> dict[str, Any]:
    """Score BG/NBD and Gamma-Gamma against baselines on K outer folds, and choose the next-purchase-due
    rule's k by nested CV. Returns the figures as plain JSON-able values (documented in
    docs/lifetime-value.md)."""
    outer = assign_folds(data.n, folds, seed)
    inner = folds if inner_folds is None else inner_folds
    choices = list(grid)
    fit, scorer = fitter(data), due_evaluator(data, choices)
    nested = nested_cv(outer, choices, fit, scorer, inner_folds=inner, seed=seed)

    horizon = data.holdout_length
    n = data.n
    predicted = {name: np.full(n, np.nan) for name in ("bgnbd", "own_rate", "population_rate")}
    spend = {name: np.full(n, np.nan) for name in ("gamma_gamma", "own_mean", "population_mean")}
    for f, models in enumerate(nested.models):
        train, test = outer != f, outer == f
        x, t_x, age = data.frequency[test], data.recency[test], data.T[test]
        predicted["bgnbd"][test] = clv.expected_purchases(models.bg, horizon, x, t_x, age)
        predicted["own_rate"][test] = np.divide(x, age, out=np.zeros(x.size), where=age > 0) * horizon
        rate = data.frequency[train].sum() / max(data.T[train].sum(), 1e-300)
        predicted["population_rate"][test] = rate * horizon
        if models.gg is not None:
            spend["gamma_gamma"][test] = clv.expected_spend(models.gg, x, data.monetary[test])
        spend["own_mean"][test] = data.mean_spend[test]
        days_train = data.purchase_days[train]
        spend["population_mean"][test] = (data.mean_spend[train] * days_train).sum() / days_train.sum()

    actual = data.holdout_purchases
    purchases: dict[str, Any] = {name: count_metrics(p, actual) for name, p in predicted.items()}
    purchases["fold_mae"] = {name: [mae(p[outer == f], actual[outer == f]) for f in range(folds)]
                             for name, p in predicted.items()}
    purchases["mae_ratio"] = {name: _ratio(purchases["bgnbd"]["mae"], purchases[name]["mae"])
                              for name in ("own_rate", "population_rate")}
    buyers = actual > 0
    spend_out: dict[str, Any] = {"customers_scored": int(buyers.sum()),
                                 "gamma_gamma_errors": sorted({m.gg_error for m in nested.models if m.gg_error})}
    for name, p in spend.items():
        scored = buyers.any() and bool(np.all(np.isfinite(p[buyers])))  # None when a fold had no Gamma-Gamma fit
        error = p[buyers] - data.holdout_spend[buyers]
        spend_out[name] = {"mae": float(np.mean(np.abs(error))) if scored else None,
                           "rmse": float(np.sqrt(np.mean(error ** 2))) if scored else None}
    spend_out["mae_ratio"] = {name: _ratio(spend_out["gamma_gamma"]["mae"], spend_out[name]["mae"])
                              for name in ("own_mean", "population_mean")}

    final, inner_means = inner_choice(np.arange(n), choices, inner, seed, fit, scorer)
    due = {
        "grid": [_label(k) for k in choices],
        "procedure": {"mae_days": float(np.mean(nested.errors)),
                      "fold_mae_days": [float(np.mean(nested.errors[outer == f])) for f in range(folds)],
                      "chosen_per_fold": [_label(k) for k in nested.chosen]},
        "outer_mae_days_by_k": {str(_label(k)): float(np.mean(v)) for k, v in nested.per_choice.items()},
        "chosen_on_all_data": _label(final),
        "inner_mae_days_on_all_data": {str(_label(k)): v for k, v in inner_means.items()},
        "bought_in_holdout": int(np.isfinite(data.next_day).sum()),
    }
    day = np.datetime64(0, "D")
    return {
        "calibration_end": str(day + data.calibration_end), "observation_end": str(day + data.observation_end),
        "unit": data.unit, "holdout_length": horizon, "customers": n,
        "repeat_customers": int((data.frequency > 0).sum()), "folds": folds, "inner_folds": inner, "seed": seed,
        "purchases": purchases, "spend": spend_out, "next_purchase_due": due,
    }


def table(out: dict[str, Any]) -> list[str]:
    """``evaluate``'s figures as readable lines."""
    p, s, d = out["purchases"], out["spend"], out["next_purchase_due"]

    def num(value: float | None, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [f"{out['customers']} customers ({out['repeat_customers']} repeat), calibration to "
             f"{out['calibration_end']}, holdout to {out['observation_end']} ({out['holdout_length']:.4g} "
             f"{out['unit']}); {out['folds']} folds, seed {out['seed']}",
             "", "Repeat purchases in the holdout, per held-out customer:",
             f"  {'model':<18}{'MAE':>9}{'RMSE':>9}{'total err %':>13}{'BG/NBD MAE ratio':>18}"]
    for name in ("bgnbd", "own_rate", "population_rate"):
        ratio = "" if name == "bgnbd" else num(p["mae_ratio"][name])
        lines.append(f"  {name:<18}{num(p[name]['mae']):>9}{num(p[name]['rmse']):>9}"
                     f"{num(p[name]['total_error_pct'], 1):>13}{ratio:>18}")
    lines += ["", f"Mean spend per holdout purchase day ({s['customers_scored']} customers who bought):",
              *(f"  no Gamma-Gamma on a training fold: {e}" for e in s["gamma_gamma_errors"]),
              f"  {'model':<18}{'MAE':>9}{'RMSE':>9}{'GG MAE ratio':>14}"]
    for name in ("gamma_gamma", "own_mean", "population_mean"):
        ratio = "" if name == "gamma_gamma" else num(s["mae_ratio"][name])
        lines.append(f"  {name:<18}{num(s[name]['mae'], 2):>9}{num(s[name]['rmse'], 2):>9}{ratio:>14}")
    lines += ["", "Next purchase due (own median gap with >= k purchase days, else BG/NBD), error in days "
              "(censored at the holdout end):",
              f"  nested CV, the procedure's outer figure: {d['procedure']['mae_days']:.2f} days "
              f"(k chosen per fold: {', '.join(str(k) for k in d['procedure']['chosen_per_fold'])})",
              "  each k on the outer folds (for information; choosing from these is optimistic): "
              + ", ".join(f"{k}: {v:.2f}" for k, v in d["outer_mae_days_by_k"].items()),
              f"  k chosen on all the data (the default to use): {d['chosen_on_all_data']}"]
    return lines
