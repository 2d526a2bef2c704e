"""``python -m benchmarks.clv_evaluate``: ``mallapp clv evaluate`` on a synthetic file of many members.

    python -m benchmarks.clv_evaluate [--members 1000000] [--folds 5] [--seed 14] [--keep FILE]
                                      [--source bgnbd|history] [--calibration-end YYYY-MM-DD]

Draws members' purchases from BG/NBD (a day grid, two years, each member's first purchase in the first
year) with Gamma-Gamma amounts, writes them as a CSV (customer_id,date,amount), and times, in the same
run: reading the file, the split at the calibration end (the middle), one BG/NBD and Gamma-Gamma fit on
every member (the baseline), and the whole evaluation (outer folds, baselines and the nested CV: about
(folds + 1) x folds + folds fits). It prints the times and the evaluation's cost in baseline fits.
With ``--source bgnbd`` the figures are not a test of the models (the data come from the very process
BG/NBD assumes); ``--source history`` draws the reports' synthetic mall history instead (20 purchases a
member over two years; its ``now`` is 1 March 2026).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from mallapp.domain import clv
from mallapp.domain import clv_evaluate as ev
from mallapp.domain.clv_summary import read_transactions

TRUE_BG = {"r": 0.9, "alpha": 10.0, "a": 0.7, "b": 4.0}     # weeks, as benchmarks/clv.py
TRUE_GG = {"p": 6.0, "q": 4.0, "gamma": 1500.0}
DAYS = 730
START = np.datetime64("2024-01-01")


def write_purchases(path: Path, members: int, seed: int) -> int:
    """Write the synthetic purchases to ``path``; return the number of lines."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, DAYS // 2, members)
    rate = rng.gamma(TRUE_BG["r"], 1.0 / (TRUE_BG["alpha"] * 7.0), members)    # per day
    drop = rng.beta(TRUE_BG["a"], TRUE_BG["b"], members)
    nu = rng.gamma(TRUE_GG["q"], 1.0 / TRUE_GG["gamma"], members)
    who, when = [np.arange(members)], [first.astype(float)]
    clock = first.astype(float)
    active = np.arange(members)
    while active.size:
        clock[active] += rng.exponential(1.0, active.size) / rate[active]
        active = active[clock[active] < DAYS]
        who.append(active)
        when.append(clock[active].copy())
        active = active[rng.random(active.size) >= drop[active]]
    ids = np.concatenate(who)
    days = np.floor(np.concatenate(when)).astype(np.int64)
    amounts = np.round(rng.gamma(TRUE_GG["p"], 1.0 / nu[ids]), 2)
    dates = (START + days).astype(str)
    with path.open("w") as out:
        out.write("customer_id,date,amount\n")
        for chunk in range(0, ids.size, 1_000_000):
            part = slice(chunk, chunk + 1_000_000)
            out.write("\n".join(np.char.add(np.char.add(np.char.add(ids[part].astype(str), ","),
                                                       np.char.add(dates[part], ",")), amounts[part].astype(str))))
            out.write("\n")
    return int(ids.size)


def write_history(path: Path, members: int, seed: int) -> int:
    """The reports' synthetic mall history (mallapp.devtools.history.build: kinds of members buying at their
    own rates in spans, weekday and month seasons; not a BG/NBD process), its purchases as mall-local days."""
    import os
    from datetime import UTC, datetime

    from mallapp.devtools.history import build
    from mallapp.settings import DEMO_SETTINGS_FILE, load_settings

    os.environ.setdefault("MALL_CONFIG", str(DEMO_SETTINGS_FILE))
    settings = load_settings()
    rows = build(settings, members=members, purchases=members * 20, now=datetime(2026, 3, 1, 12, tzinfo=UTC),
                 seed=seed, months=12, merchant_ids=list(range(1, 41)), first_member_id=1, with_points=False,
                 first_ids={"purchases": 1, "mall_visits": 1, "checkins": 1})
    p = rows.purchases
    offset = settings.mall.tz.utcoffset(datetime(2025, 6, 1)).total_seconds()
    dates = (np.datetime64(rows.day0) + (p["occurred_at"] + int(offset)) // 86400).astype(str)
    with path.open("w") as out:
        out.write("customer_id,date,amount\n")
        out.writelines(f"{m},{d},{a}\n" for m, d, a in zip(p["member_id"], dates, p["amount_fen"], strict=True))
    return int(p["member_id"].size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--keep", type=Path, help="write the CSV here and keep it")
    parser.add_argument("--source", choices=["bgnbd", "history"], default="bgnbd",
                        help="bgnbd: drawn from BG/NBD and Gamma-Gamma; history: the reports' synthetic mall history")
    parser.add_argument("--calibration-end", help="YYYY-MM-DD (default: the middle of the data)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "purchases.csv"
        started = time.perf_counter()
        write = write_purchases if args.source == "bgnbd" else write_history
        lines = write(path, args.members, args.seed)
        print(f"wrote {lines:,} purchases of {args.members:,} members to {path} in "
              f"{time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        rows = read_transactions(path)
        read = time.perf_counter() - started
        started = time.perf_counter()
        ids, days, amounts = zip(*rows, strict=True)
        del rows
        data = ev.split_in_time(ids, days, amounts, calibration_end=args.calibration_end)
        split = time.perf_counter() - started
        started = time.perf_counter()
        try:
            clv.fit_bgnbd(data.frequency, data.recency, data.T)
        except clv.FitError as exc:
            print(f"no BG/NBD on these data, so nothing to evaluate: {exc.message} ({exc.code})")
            return
        try:
            clv.fit_gamma_gamma(data.frequency, data.monetary)
        except clv.FitError as exc:
            print(f"no Gamma-Gamma on every member: {exc.message}")
        one_fit = time.perf_counter() - started
        started = time.perf_counter()
        out = ev.evaluate(data, folds=args.folds, seed=args.seed)
        evaluation = time.perf_counter() - started
    print(f"read the file: {read:.1f} s; split at {out['calibration_end']}: {split:.1f} s; "
          f"{data.n:,} members in the cohort")
    print(f"baseline, one BG/NBD + Gamma-Gamma fit on every member: {one_fit:.2f} s")
    print(f"the evaluation ({args.folds} folds, nested): {evaluation:.1f} s = {evaluation / one_fit:.1f} baseline fits")
    for line in ev.table(out):
        print(line)


if __name__ == "__main__":
    main()
