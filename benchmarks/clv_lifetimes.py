"""Fit the ``lifetimes`` package's BG/NBD and Gamma-Gamma to summaries in an .npz, print one JSON line.

Run by benchmarks/clv.py with the Python of its own virtualenv (lifetimes 0.11.3 and the old numpy,
scipy and pandas it works with); imports nothing of mallapp. Usage: ``python clv_lifetimes.py FILE.npz``.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np
from lifetimes import BetaGeoFitter, GammaGammaFitter

# BFGS's gradient tolerance on the mean log-likelihood: as tight as it will go, so both fits reach
# the same optimum; a looser one is tried only when BFGS reports precision loss at the tighter one
# (lifetimes then raises ConvergenceError), down to lifetimes' own default of 1e-7 and one step past.
TOLERANCES = (1e-10, 1e-9, 1e-8, 1e-7, 1e-6)


def fit(make, *args):
    last, failed = None, 0.0
    for tol in TOLERANCES:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            fitter = make().fit(*args, tol=tol)
        except Exception as exc:  # lifetimes raises ConvergenceError (or a numerical error): try looser
            last, failed = exc, failed + time.perf_counter() - started
            continue
        return fitter, (time.perf_counter() - started, time.process_time() - cpu, failed), tol
    raise SystemExit(f"lifetimes did not converge at any tolerance: {last}")


def main(path: str) -> None:
    warnings.simplefilter("ignore")
    data = np.load(path)
    x, t_x, T, m = data["frequency"], data["recency"], data["T"], data["monetary"]
    bg, bg_seconds, bg_tol = fit(BetaGeoFitter, x, t_x, T)
    repeat = (x > 0) & (m > 0)
    gg, gg_seconds, gg_tol = fit(GammaGammaFitter, x[repeat], m[repeat])
    r, alpha, a, b = (float(bg.params_[k]) for k in ("r", "alpha", "a", "b"))
    p, q, v = (float(gg.params_[k]) for k in ("p", "q", "v"))
    print(json.dumps({
        "bgnbd": {"r": r, "alpha": alpha, "a": a, "b": b,
                  # lifetimes keeps the mean over members in its own rescaled time unit
                  "log_likelihood": (-float(bg._negative_log_likelihood_) * len(x)
                                     + float(np.sum(x)) * float(np.log(bg._scale)))},
        "gamma_gamma": {"p": p, "q": q, "gamma": v},
        "bgnbd_seconds": bg_seconds[0], "gamma_gamma_seconds": gg_seconds[0],
        "bgnbd_cpu": bg_seconds[1], "gamma_gamma_cpu": gg_seconds[1],
        # wall seconds of the attempts at tighter tolerances that did not converge (not counted above)
        "failed_attempts_seconds": bg_seconds[2] + gg_seconds[2],
        "tolerances": [bg_tol, gg_tol],
    }))


if __name__ == "__main__":
    main(sys.argv[1])
