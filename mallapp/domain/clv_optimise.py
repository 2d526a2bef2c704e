"""The maximum-likelihood machinery behind mallapp.domain.clv: collapsing identical rows, and a fit
over log-parameters that converges to machine precision or raises FitError.

An objective is the mean negative log-likelihood per member over log-parameters and its exact gradient.
``maximise`` runs BFGS (on a sample of the rows first when there are many), polishes with Newton steps,
and refuses what is not a proper interior optimum: no convergence, a parameter running off, a flat
likelihood, or parameters the data barely determine.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy import optimize

from mallapp.errors import FitError

# The optimiser works on log-parameters inside this box; a fit that ends on its edge is a parameter
# running off to 0 or infinity (the data do not pin it down), which is a FitError, not a result.
LOG_BOUND = 18.0
MAX_ITERATIONS = 500          # of BFGS; tests lower it to prove a non-converged fit is refused
GRADIENT_TOLERANCE = 1e-5     # on the mean log-likelihood per member, after the Newton polish
GRADIENT_STOP = 1e-9          # the steps on all rows stop here: the parameters are then within ~1e-9
MAX_LOG_SE = 2.5             # a log-parameter's standard error past this: a factor of 12 either way
STEP_TOLERANCE = 1e-8        # Newton steps in log-parameters: the parameters to ~1e-8 relative
SAMPLE_ROWS = 40_000         # distinct rows past which a sample's fit starts the full one


def dot(u: np.ndarray, v: np.ndarray) -> float:
    """sum(u * v), without BLAS: on a busy machine OpenBLAS's threaded ddot cost the BG/NBD objective
    about twice the CPU of a multiply and a pairwise sum (which is also the more accurate)."""
    return float(np.multiply(u, v).sum())


Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


def maximise(make: Callable[..., Objective], columns: tuple[np.ndarray, ...], w: np.ndarray,
              start: np.ndarray, model: str) -> tuple[np.ndarray, Objective]:
    """The log-parameters that minimise the objective ``make(*columns, w)`` builds (mean negative
    log-likelihood and its gradient), and that objective.

    Past ``SAMPLE_ROWS`` distinct rows, a random sample of them is fitted first and its curvature
    steers Newton-like steps on all rows, which converge in a few evaluations instead of dozens.
    """
    objective = make(*columns, w)
    if w.size <= SAMPLE_ROWS:
        theta, hessian = _optimum(objective, start, model)
        _check_determined(hessian, float(w.sum()), model)
        return theta, objective
    rows = np.sort(np.random.default_rng(0).choice(w.size, SAMPLE_ROWS, replace=False))
    try:
        theta, hessian = _optimum(make(*(c[rows] for c in columns), w[rows]), start, model, polish=False)
    except FitError:
        theta, hessian = _optimum(objective, start, model)
        _check_determined(hessian, float(w.sum()), model)
        return theta, objective
    _check_determined(hessian, float(w.sum()), model)
    # Quasi-Newton on all rows, starting from the sample's inverse Hessian and improving it with each
    # step's change of gradient (the BFGS update): superlinear, about five passes over the data.
    inverse = np.linalg.inv(hessian)
    value, grad = objective(theta)
    for _ in range(40):
        step = inverse @ grad
        if not np.all(np.isfinite(step)):
            break
        shrink = 1.0
        while shrink > 1e-3:
            new_value, new_grad = objective(theta - shrink * step)
            if _better(value, grad, new_value, new_grad):
                break
            shrink /= 4
        else:
            break
        moved, change = -shrink * step, new_grad - grad
        theta, value, grad = theta + moved, new_value, new_grad
        if np.max(np.abs(moved)) < STEP_TOLERANCE or np.max(np.abs(grad)) < GRADIENT_STOP:
            _check_converged(grad, model)
            return theta, objective
        curvature = float(change @ moved)
        if curvature > 1e-300:
            rho = 1.0 / curvature
            left = np.eye(theta.size) - rho * np.outer(moved, change)
            inverse = left @ inverse @ left.T + rho * np.outer(moved, moved)
    # The sample misled the steps: the whole fit on all rows, from where they got.
    return _optimum(objective, theta, model)[0], objective


def _check_determined(hessian: np.ndarray, total: float, model: str) -> None:
    """Refuse parameters the data barely pin down: a log-parameter's standard error above MAX_LOG_SE.

    ``hessian`` is the mean negative log-likelihood's over log-parameters, so the total's is ``total``
    times it, and its inverse the estimates' covariance.
    """
    variance = np.diag(np.linalg.inv(hessian)) / total
    worst = float(np.sqrt(np.max(variance))) if np.all(variance >= 0) else np.inf
    if not worst <= MAX_LOG_SE:
        raise FitError(f"the {model} fit is not determined by these data: a parameter's standard error is a "
                       + (f"factor of {np.exp(worst):.3g}" if worst < 40 else "factor beyond 1e17")
                       + " (too few members, or too few repeat buyers)",
                       code="clv.fit.degenerate")


def _better(value: float, grad: np.ndarray, new_value: float, new_grad: np.ndarray) -> bool:
    """A step is taken when the objective falls, or stays within rounding of it with a smaller gradient."""
    if not np.isfinite(new_value) or not np.all(np.isfinite(new_grad)):
        return False
    if new_value < value:
        return True
    return new_value <= value + 1e-13 * abs(value) and np.max(np.abs(new_grad)) < np.max(np.abs(grad))


def _check_converged(grad: np.ndarray, model: str) -> None:
    if not np.all(np.isfinite(grad)) or np.max(np.abs(grad)) > GRADIENT_TOLERANCE:
        raise FitError(f"the {model} fit did not converge (gradient {np.max(np.abs(grad)):.2g} at the end)",
                       code="clv.fit.not_converged")


def _optimum(objective: Objective, start: np.ndarray, model: str, *,
             polish: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """BFGS inside the box, then (``polish``) Newton steps on a Hessian differenced from the exact
    gradient, which take the optimum to machine precision; refuses anything that is not a proper
    interior optimum. Returns the log-parameters and the Hessian there."""
    # BFGS rather than L-BFGS-B: with four parameters its numpy steps are cheap, where L-BFGS-B's
    # compiled core calls a threaded BLAS that costs milliseconds per step on a busy machine.
    def guarded(theta: np.ndarray) -> tuple[float, np.ndarray]:
        if np.any(np.abs(theta) > LOG_BOUND):
            return np.inf, np.zeros_like(theta)  # a step out of the box is refused by the line search
        return objective(theta)

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = optimize.minimize(guarded, start, jac=True, method="BFGS",
                                   options={"maxiter": MAX_ITERATIONS, "gtol": 1e-9 if polish else 1e-6})
    theta = result.x
    if not np.isfinite(result.fun) or not np.all(np.isfinite(theta)):
        raise FitError(f"the {model} fit failed: the likelihood is not finite", code="clv.fit.not_finite")
    if result.nit >= MAX_ITERATIONS:
        raise FitError(f"the {model} fit did not converge in {MAX_ITERATIONS} iterations",
                       code="clv.fit.not_converged")
    if np.any(np.abs(theta) >= LOG_BOUND - 0.5):
        raise FitError(f"the {model} fit did not converge: a parameter runs off to 0 or infinity "
                       f"(log-parameters {np.round(theta, 2).tolist()}); the data do not determine the model",
                       code="clv.fit.degenerate")
    value, grad = objective(theta)
    for _ in range(8):
        hessian = _hessian(objective, theta)
        try:
            np.linalg.cholesky(hessian)
        except np.linalg.LinAlgError:
            raise FitError(f"the {model} fit did not converge: the likelihood is flat or not at a maximum "
                           "(its curvature is not negative definite)", code="clv.fit.degenerate") from None
        if not polish:
            return theta, hessian
        step = np.linalg.solve(hessian, grad)
        new_value, new_grad = objective(theta - step)
        if not _better(value, grad, new_value, new_grad):
            break
        theta, value, grad = theta - step, new_value, new_grad
        if np.max(np.abs(step)) < STEP_TOLERANCE:
            break
    _check_converged(grad, model)
    return theta, hessian


def _hessian(objective: Callable[[np.ndarray], tuple[float, np.ndarray]], theta: np.ndarray) -> np.ndarray:
    h = 1e-5
    columns = []
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        columns.append((objective(theta + e)[1] - objective(theta - e)[1]) / (2 * h))
    hessian = np.array(columns)
    return (hessian + hessian.T) / 2


def collapse(columns: tuple[np.ndarray, ...], w: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Identical rows once each, with their weights summed (rows of weight 0 dropped), sorted by the
    first column, then the second...

    Each column's values become codes (their rank among its distinct values), the codes one integer
    key, and the rows are grouped by the distinct keys: about twice as fast as np.lexsort.
    """
    keep = w > 0
    columns, w = tuple(c[keep] for c in columns), w[keep]
    if w.size == 0:
        return columns, w
    distinct, codes = zip(*(np.unique(c, return_inverse=True) for c in columns), strict=True)
    if np.prod([float(u.size) for u in distinct]) >= 2.0 ** 62:  # the key would overflow: sort rows
        order = np.lexsort(columns[::-1])
        ordered = tuple(c[order] for c in columns)
        starts = np.ones(w.size, dtype=bool)
        starts[1:] = np.any(np.stack([c[1:] != c[:-1] for c in ordered]), axis=0)
        first = np.flatnonzero(starts)
        return tuple(c[first] for c in ordered), np.add.reduceat(w[order], first)
    key = np.zeros(w.size, dtype=np.int64)
    for values, code in zip(distinct, codes, strict=True):
        key = key * values.size + code.reshape(-1)
    keys, group = np.unique(key, return_inverse=True)
    weights = np.bincount(group.reshape(-1), weights=w, minlength=keys.size)
    collapsed = []
    for values in reversed(distinct):
        collapsed.append(values[keys % values.size])
        keys = keys // values.size
    return tuple(reversed(collapsed)), weights
