"""``python -m benchmarks.members``: a million members on PostgreSQL: the history, the nightly run, the reports.

    python -m benchmarks.members [--members 1000000] [--purchases 20000000] [--calls 100] [--seed 1]

1. Starts its own durable PostgreSQL (and Redis, for the ops sign-in), migrates, and writes the synthetic
   history (mallapp.devtools.history, bulk mode) for ``--members`` members and ``--purchases`` purchases.
2. Baseline: one plain aggregate of every purchase per member into a table (what any nightly pass must at
   least read and write). Then the nightly run, ``mallapp.domain.segments.run``, twice on the same day;
   it checks the two runs wrote identical snapshots and transitions, and prints each run's time and its
   ratio to the baseline.
3. ``member_reports.precompute``, timed.
4. Each report through the Flask app (test client, the real handler, JSON included), ``--calls`` times:
   p50 and p95, against the bare JSON route (``GET /api/v1/ping``) and a ``SELECT 1`` round trip.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from benchmarks.foundation import stack
from mallapp import logs
from mallapp.api.app import create_app
from mallapp.devtools import history
from mallapp.domain import member_reports, merchants, ops, segments
from mallapp.runtime import Runtime

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai; the history ends here
STORES = 40
P95_GOAL_MS = 500.0
NIGHTLY_GOAL_S = 300.0
REPORTS = ("new-members?period=day", "new-members?period=month", "cohorts", "frequent-visitors-and-big-spenders",
           "valuable-share", "t-tiers", "lifecycle", "rfm", "lifetime-value", "lapsed?days=90", "lapsed?days=400",
           "lost", "lost?limit=500")
PASSWORD = "benchmark passphrase"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.members", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--members", type=int, default=1_000_000)
    p.add_argument("--purchases", type=int, default=20_000_000)
    p.add_argument("--calls", type=int, default=100, help="calls of each report (p95 over them)")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mallapp-bench-members-") as tmp, stack(Path(tmp)) as st:
        rt = st.runtime()
        rt.clock = lambda: NOW  # type: ignore[assignment, method-assign]
        try:
            return _run(rt, args)
        finally:
            rt.close()


def _run(rt: Runtime, args: argparse.Namespace) -> int:
    write_history(rt, args.members, args.purchases, args.seed)

    _, baseline = timed(lambda: _baseline(rt))
    print(f"baseline (one aggregate of every purchase per member, into a table): {baseline:.1f} s", flush=True)
    month = member_reports.month_of(rt.settings, NOW)
    digests = []
    for attempt in (1, 2):
        def nightly() -> None:
            with rt.sessions.begin() as s:
                segments.run(s, rt.settings, NOW, trigger="clock")
        _, seconds = timed(nightly)
        digests.append(_digest(rt, month))
        verdict = "ok" if seconds <= NIGHTLY_GOAL_S else "MISSED"
        print(f"nightly run {attempt}: {seconds:.1f} s = {seconds / baseline:.1f} × baseline "
              f"(goal ≤ {NIGHTLY_GOAL_S:.0f} s: {verdict})", flush=True)
    identical = digests[0] == digests[1]
    print(f"second run identical to the first: {identical}", flush=True)

    def precompute() -> None:
        with rt.sessions.begin() as s:
            member_reports.precompute(s, rt.settings, month, NOW)
    _, seconds = timed(precompute)
    print(f"member_reports.precompute: {seconds:.1f} s", flush=True)
    worst = _reports(rt, args.calls)
    print(f"worst report p95: {worst:.1f} ms (goal < {P95_GOAL_MS:.0f} ms: "
          f"{'ok' if worst < P95_GOAL_MS else 'MISSED'})", flush=True)
    return 0 if identical else 1


def write_history(rt: Runtime, members: int, purchases: int, seed: int) -> history.Generated:
    """The benchmark set: ``STORES`` stores and the synthetic history up to ``NOW`` (bulk mode), then a checkpoint."""
    print(f"members {members:,}, purchases {purchases:,}, seed {seed}; PostgreSQL, durable", flush=True)
    with rt.sessions.begin() as s:
        stores = [merchants.create(s, f"Store {i:02d}", NOW)[0].id for i in range(STORES)]
    made, seconds = timed(lambda: history.generate(rt.engine, rt.settings, members=members, purchases=purchases,
                                                   now=NOW, seed=seed, merchant_ids=stores, bulk=True))
    print(f"history: {made.members:,} members, {made.purchases:,} purchases, {made.checkins:,} check-ins, "
          f"{made.mall_visits:,} mall visits in {seconds:.1f} s", flush=True)
    print(f"  behaviours: {made.behaviours}", flush=True)
    with rt.engine.begin() as conn:
        conn.execute(text("CHECKPOINT"))
    return made


def _baseline(rt: Runtime) -> None:
    with rt.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_baseline"))
        conn.execute(text("CREATE TABLE bench_baseline AS SELECT member_id, count(*) AS purchases, "
                          "sum(amount_fen) AS spend, min(occurred_at) AS first_at, max(occurred_at) AS last_at "
                          "FROM purchases GROUP BY member_id"))
        conn.execute(text("DROP TABLE bench_baseline"))


def _digest(rt: Runtime, month: date) -> str:
    """A hash of the month's snapshots (all but computed_at) and of every lifecycle transition."""
    h = hashlib.sha256()
    with rt.engine.connect() as conn:
        cols = [c.name for c in segments.MemberSnapshot.__table__.columns if c.name != "computed_at"]
        rows = conn.execute(text(f"SELECT {', '.join(cols)} FROM member_snapshots WHERE month = :m "
                                 "ORDER BY member_id"), {"m": month})
        for row in rows:
            h.update(repr(tuple(row)).encode())
        for row in conn.execute(text("SELECT member_id, day, from_state, to_state, cause FROM lifecycle_transitions "
                                     "ORDER BY member_id, day, to_state")):
            h.update(repr(tuple(row)).encode())
    return h.hexdigest()


def _reports(rt: Runtime, calls: int) -> float:
    app = create_app(runtime=rt)
    logs.configure(rt.settings.log_format, "WARNING")  # not a line per request on the benchmark's output
    with rt.sessions.begin() as s:
        ops.create_user(s, "bench-ops", "admin", PASSWORD, NOW)
    client = app.test_client()
    token = client.post("/api/v1/ops/auth", json={"username": "bench-ops", "password": PASSWORD}).get_json()["token"]
    headers = {"Authorization": f"Bearer {token}"}

    def measure(call: Callable[[], Any]) -> tuple[float, float]:
        call()  # warm
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            call()
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]

    def get(path: str) -> Callable[[], Any]:
        def call() -> None:
            answer = client.get(path, headers=headers)
            if answer.status_code != 200:
                raise RuntimeError(f"{path}: {answer.status_code} {answer.get_json()}")
        return call

    def select_one() -> None:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar()

    ping = measure(get("/api/v1/ping"))
    one = measure(select_one)
    print(f"\n{'report':<42} {'p50 ms':>8} {'p95 ms':>8} {'p95 / ping':>11}")
    print(f"{'GET /api/v1/ping (baseline)':<42} {ping[0]:>8.2f} {ping[1]:>8.2f} {1:>11.1f}")
    print(f"{'SELECT 1 round trip (baseline)':<42} {one[0]:>8.2f} {one[1]:>8.2f} {one[1] / ping[1]:>11.1f}")
    worst = 0.0
    for name in REPORTS:
        p50, p95 = measure(get(f"/api/v1/ops/reports/{name}"))
        worst = max(worst, p95)
        print(f"{'/reports/' + name:<42} {p50:>8.2f} {p95:>8.2f} {p95 / ping[1]:>11.1f}", flush=True)
    return worst


if __name__ == "__main__":
    sys.exit(main())
