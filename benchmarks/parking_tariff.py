"""``python -m benchmarks.parking_tariff``: one parking quote in-process, against an empty call in the same run.

    python -m benchmarks.parking_tariff [--quotes 20000] [--seed 15]

Quotes a MixC-like tariff (docs/parking.md) with ``mallapp.domain.parking.tariff.fee`` for seeded
random stays: 70 % short (up to 6 h), 25 % up to 36 h, 5 % up to 7 days, a payment with a grace
exit on one in five. Times each call with ``perf_counter_ns`` and, as the baseline, an empty
function taking the same arguments. Prints one JSON object: quotes per second, p50/p99/max of one
quote in microseconds, the p99 per stay class, the ratio of the p99s, and the issue's goal (a
quote, tariff and benefits, at p99 under 2 ms in-process; this measures the tariff part).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from mallapp.devtools.demo_parking import DEMO_TARIFF
from mallapp.domain.parking.tariff import fee, parse_tariff

# The MixC-like tariff of docs/parking.md: the demo car park's.
MIXC = DEMO_TARIFF
GOAL_P99_US = 2000


def _empty(tariff, vehicle_type, entered_at, exited_at, *, tz, paid=()):  # noqa: ANN001, ANN202
    return None


def _sessions(n: int, seed: int) -> list[tuple]:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    out = []
    for _ in range(n):
        kind = rng.choices(["short", "day", "days"], weights=[70, 25, 5])[0]
        limit = {"short": 6 * 3600, "day": 36 * 3600, "days": 7 * 86400}[kind]
        entered = datetime.fromtimestamp(start + rng.randrange(365 * 86400), UTC)
        exited = entered + timedelta(seconds=rng.randint(0, limit))
        paid = []
        if rng.random() < 0.2:
            paid = [(exited - timedelta(minutes=rng.randint(0, 30)), 1000)]
            paid = [(max(p, entered), a) for p, a in paid]
        out.append((kind, rng.choice(["small", "new_energy"]), entered, exited, paid))
    return out


def _time(fn, tariff, tz, sessions) -> list[tuple[str, int]]:  # noqa: ANN001
    took = []
    clock = time.perf_counter_ns
    for kind, vehicle, entered, exited, paid in sessions:
        t0 = clock()
        fn(tariff, vehicle, entered, exited, tz=tz, paid=paid)
        took.append((kind, clock() - t0))
    return took


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args(argv)
    tariff = parse_tariff(MIXC)
    tz = ZoneInfo("Asia/Shanghai")
    sessions = _sessions(args.quotes, args.seed)
    _time(fee, tariff, tz, sessions[:500])  # warm up (the plan's compiled form is cached)
    started = time.perf_counter()
    quotes = _time(fee, tariff, tz, sessions)
    wall = time.perf_counter() - started
    empty = _time(_empty, tariff, tz, sessions)
    all_ns = [ns for _, ns in quotes]
    p99, base_p99 = _pct(all_ns, 0.99), _pct([ns for _, ns in empty], 0.99)
    report = {
        "benchmark": "parking_tariff", "python": platform.python_version(), "quotes": len(sessions),
        "quotes_per_s": round(len(sessions) / wall),
        "quote_us": {"p50": _pct(all_ns, 0.5), "p99": p99, "max": max(all_ns) / 1000},
        "p99_us_by_stay": {k: _pct([ns for kk, ns in quotes if kk == k], 0.99) for k in ("short", "day", "days")},
        "baseline_empty_call_p99_us": base_p99,
        "ratio_p99_to_baseline": round(p99 / base_p99, 1) if base_p99 else None,
        "goal_p99_us": GOAL_P99_US, "meets_goal": p99 < GOAL_P99_US,
    }
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return report


if __name__ == "__main__":
    main()
