"""``python -m benchmarks.clv``: our BG/NBD and Gamma-Gamma fits against the ``lifetimes`` package, same run.

    python -m benchmarks.clv [--members 1000000] [--seed 14] [--env DIR] [--repeat 3]

On the CDNOW sample (calibration to 1997-09-30, weeks) and on a synthetic set drawn from the BG/NBD
and Gamma-Gamma generative processes, it fits both implementations, and prints the parameters, their
relative differences, the fit times and their ratio, against the goals: the same parameters to 1e-4
relative, ours at least as fast, and ours within 5 s on the million members. lifetimes 0.11.3 runs in
a virtualenv of its own that this benchmark makes (pinned old numpy/scipy/pandas; never a project
dependency), in a subprocess (benchmarks/clv_lifetimes.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy

from beacons.datasets import shared_data_dir
from mallapp.domain import clv
from mallapp.domain.clv_summary import read_transactions

PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_ENV = PROJECT / "var" / "bench" / "lifetimes-venv"
# lifetimes 0.11.3 (2020) works with these; numpy 2 and pandas 2 break it or autograd 1.6.
LIFETIMES_PINS = ("lifetimes==0.11.3", "numpy==1.26.4", "scipy==1.13.1", "pandas==1.5.3", "autograd==1.6.2",
                  "dill==0.3.8", "future==1.0.0", "python-dateutil==2.9.0.post0", "pytz==2024.2", "six==1.16.0")
PARAMETER_GOAL = 1e-4
SECONDS_GOAL = 5.0
# The synthetic population (weeks): a mall's members buy more often than CDNOW's CD buyers.
TRUE_BG = {"r": 0.9, "alpha": 10.0, "a": 0.7, "b": 4.0}
TRUE_GG = {"p": 6.0, "q": 3.8, "gamma": 150.0}
HISTORY_DAYS = 728  # members joined (first bought) over the two years before the end


def log(line: str = "") -> None:
    print(line, flush=True)


def lifetimes_python(env: Path) -> Path:
    """The Python of the benchmark's own virtualenv with lifetimes, made on first use."""
    python = env / "bin" / "python"
    marker = env / "pins.txt"
    if python.exists() and marker.exists() and marker.read_text() == "\n".join(LIFETIMES_PINS):
        return python
    log(f"making the lifetimes virtualenv at {env} (once): {' '.join(LIFETIMES_PINS)}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *LIFETIMES_PINS], check=True)
    marker.write_text("\n".join(LIFETIMES_PINS))
    return python


def synthetic(members: int, seed: int) -> clv.Summary:
    """Summaries of ``members`` drawn from BG/NBD (on a day grid, same-day purchases once) and Gamma-Gamma."""
    rng = np.random.default_rng(seed)
    per_day = 7.0
    age = rng.integers(0, HISTORY_DAYS, members).astype(float)           # days since the first purchase
    rate = rng.gamma(TRUE_BG["r"], 1.0 / (TRUE_BG["alpha"] * per_day), members)
    drop = rng.beta(TRUE_BG["a"], TRUE_BG["b"], members)
    x = np.zeros(members)
    last_day = np.zeros(members)
    clock = np.zeros(members)
    active = np.arange(members)
    while active.size:
        clock[active] += rng.exponential(1.0, active.size) / rate[active]
        active = active[clock[active] <= age[active]]
        day = np.floor(clock[active])
        new = day > last_day[active]                    # a second purchase the same day is the same visit
        counted = active[new]
        x[counted] += 1
        last_day[counted] = day[new]
        gone = np.zeros(active.size, dtype=bool)
        gone[new] = rng.random(counted.size) < drop[counted]
        active = active[~gone]
    nu = rng.gamma(TRUE_GG["q"], 1.0 / TRUE_GG["gamma"], members)
    spend = np.zeros(members)
    repeat = x > 0
    spend[repeat] = rng.gamma(TRUE_GG["p"] * x[repeat], 1.0 / nu[repeat]) / x[repeat]
    return clv.Summary(ids=np.arange(members), frequency=x, recency=last_day / per_day, T=age / per_day,
                       monetary=np.round(spend, 2))


def ours(summary: clv.Summary, repeat: int) -> dict:
    """Our fits, the best of ``repeat`` timed runs each (from the raw per-member arrays)."""
    best: dict[str, tuple[float, float]] = {}
    for _ in range(repeat):
        for name, fit in (("bgnbd", lambda: clv.fit_bgnbd(summary.frequency, summary.recency, summary.T)),
                          ("gamma_gamma", lambda: clv.fit_gamma_gamma(summary.frequency, summary.monetary))):
            started, cpu = time.perf_counter(), time.process_time()
            params = fit()
            spent = (time.perf_counter() - started, time.process_time() - cpu)
            best[name] = min(best.get(name, spent), spent)
            if name == "bgnbd":
                bg = params
            else:
                gg = params
    return {"bgnbd": {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "log_likelihood": bg.log_likelihood},
            "gamma_gamma": {"p": gg.p, "q": gg.q, "gamma": gg.gamma},
            "bgnbd_seconds": best["bgnbd"][0], "gamma_gamma_seconds": best["gamma_gamma"][0],
            "bgnbd_cpu": best["bgnbd"][1], "gamma_gamma_cpu": best["gamma_gamma"][1]}


def theirs(python: Path, summary: clv.Summary, tmp: Path, name: str) -> dict:
    path = tmp / f"{name}.npz"
    np.savez(path, frequency=summary.frequency, recency=summary.recency, T=summary.T, monetary=summary.monetary)
    done = subprocess.run([str(python), str(PROJECT / "benchmarks" / "clv_lifetimes.py"), str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"lifetimes failed on {name}: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(name: str, summary: clv.Summary, python: Path, tmp: Path, repeat: int) -> dict:
    n, repeaters = summary.frequency.size, int(np.sum(summary.frequency > 0))
    log(f"\n== {name}: {n:,} members, {repeaters:,} repeat buyers")
    a = ours(summary, repeat)
    b = theirs(python, summary, tmp, name)
    worst = 0.0
    log(f"{'parameter':<26}{'mallapp':>20}{'lifetimes':>20}{'relative diff':>15}")
    for model in ("bgnbd", "gamma_gamma"):
        for key, value in a[model].items():
            other = b[model].get(key)
            if other is None:
                continue
            diff = abs(value - other) / max(abs(other), 1e-300)
            if key != "log_likelihood":
                worst = max(worst, diff)
            log(f"{model + '.' + key:<26}{value:>20.6f}{other:>20.6f}{diff:>15.2e}")
    ours_s = a["bgnbd_seconds"] + a["gamma_gamma_seconds"]
    theirs_s = b["bgnbd_seconds"] + b["gamma_gamma_seconds"]
    log(f"{'fit seconds':<16}{'mallapp':>16}{'lifetimes':>16}{'lifetimes/ours':>15}"
        f"{'CPU mallapp':>13}{'CPU lifetimes':>15}{'ratio':>7}")
    for label, key in (("BG/NBD", "bgnbd"), ("Gamma-Gamma", "gamma_gamma"), ("both", None)):
        if key is None:
            mine, other = ours_s, theirs_s
            mine_cpu = a["bgnbd_cpu"] + a["gamma_gamma_cpu"]
            other_cpu = b["bgnbd_cpu"] + b["gamma_gamma_cpu"]
        else:
            mine, other, mine_cpu, other_cpu = (a[f"{key}_seconds"], b[f"{key}_seconds"], a[f"{key}_cpu"],
                                                b[f"{key}_cpu"])
        log(f"{label:<16}{mine:>16.4f}{other:>16.4f}{other / mine:>15.1f}{mine_cpu:>13.4f}{other_cpu:>15.4f}"
            f"{other_cpu / max(mine_cpu, 1e-9):>7.1f}")
    log(f"(wall seconds, and CPU seconds of the fitting process; mallapp: best of {repeat}, in this process; "
        f"lifetimes: one fit each, in its own virtualenv, BFGS tolerance {b['tolerances']}, not counting "
        f"{b['failed_attempts_seconds']:.1f} s of attempts at tighter tolerances that did not converge; "
        f"load average now {os.getloadavg()[0]:.2f})")
    same = worst <= PARAMETER_GOAL
    faster = ours_s <= theirs_s
    log(f"same parameters (worst relative diff {worst:.1e} <= {PARAMETER_GOAL:g}): {'MET' if same else 'MISSED'}; "
        f"at least as fast ({theirs_s / ours_s:.1f}x): {'MET' if faster else 'MISSED'}")
    return {"same": same, "faster": faster, "ours_seconds": ours_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.clv", description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000, help="synthetic members")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--env", type=Path, default=DEFAULT_ENV, help="lifetimes' own virtualenv")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of our fits (the best is kept)")
    args = parser.parse_args(argv)
    log("== lifetime-value fits: mallapp.domain.clv against lifetimes 0.11.3")
    log(f"machine: nproc {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.2f}; "
        f"Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}")
    python = lifetimes_python(args.env)
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="mallapp-clv-bench-") as tmp:
        sample = shared_data_dir() / "cdnow" / "CDNOW_sample.txt"
        if sample.exists():
            summary = clv.summarise(read_transactions(sample), calibration_end="1997-09-30", unit="weeks")
            verdicts.append(compare("CDNOW sample", summary, python, Path(tmp), args.repeat))
        else:
            log(f"\n(CDNOW skipped: {sample} is absent)")
        started = time.perf_counter()
        summary = synthetic(args.members, args.seed)
        log(f"\n(synthetic set drawn in {time.perf_counter() - started:.1f} s; true BG/NBD {TRUE_BG}, "
            f"Gamma-Gamma {TRUE_GG}, weeks, first purchases over {HISTORY_DAYS} days)")
        result = compare(f"synthetic {args.members:,}", summary, python, Path(tmp), args.repeat)
        verdicts.append(result)
        within = result["ours_seconds"] <= SECONDS_GOAL
        log(f"our fit on {args.members:,} members: {result['ours_seconds']:.2f} s <= {SECONDS_GOAL:g} s: "
            f"{'MET' if within else 'MISSED'}")
    ok = all(v["same"] and v["faster"] for v in verdicts) and within
    log(f"\nall goals {'MET' if ok else 'NOT all met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
