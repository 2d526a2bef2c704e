"""``python -m benchmarks.consoles``: every console page's data on the million-member set, p50/p95 per URL and page.

    python -m benchmarks.consoles [--members 1000000] [--purchases 20000000] [--calls 50] [--seed 1] [--hold]
    python -m benchmarks.consoles --database-url URL --redis-url URL [--calls 50]    # reuse a built set

1. The set: starts its own durable PostgreSQL and Redis (``benchmarks.foundation.stack``) and writes the members
   issue's synthetic history (``benchmarks.members.write_history``: bulk mode), then the nightly segments run and
   the month's report precompute, so the reports read a million members. With ``--database-url`` and
   ``--redis-url`` it reuses a set built before (migrating it to head) instead; ``--hold`` keeps the servers of
   a set it built running after the measurement and prints those two URLs, for the next runs.
2. What the pages need beyond the history (``ensure_world``, idempotent): a floor plan (zones and stores on two
   floors), zone visits derived from the last weeks' mall visits, a car park, a deal and a campaign, an ops
   admin and a merchant manager; all through mallapp's own services except the zone visits (one SQL pass).
3. For every page in ``mallapp.consoles.web.PAGES`` (the app is created first, so every console registers its
   pages), each of its ``data=`` URL templates is filled from the set (``{member_id}``, ``{store_id}``, …; a
   placeholder it cannot fill stops the run) and called ``--calls`` times through the Flask app (test client:
   the real handler, authentication, JSON) with the page's caller: the ops admin's token, or the merchant
   manager's for staff pages. It prints p50/p95 per URL and per page, where a page's time is the SUM of its
   reads (its script may fetch them in parallel; the sum is the worst case and what one browser connection
   pays), against ``GET /api/v1/ping`` and a ``SELECT 1`` round trip measured in the same run, and flags
   every page over 500 ms at p95 (exit status 1 when any is).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import statistics
import string
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import url_for
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from benchmarks import members as bench_members
from benchmarks.foundation import mall_environ, stack
from mallapp import logs
from mallapp.api.app import create_app
from mallapp.consoles import web
from mallapp.devtools.demo_parking import DEMO_TARIFF
from mallapp.domain import campaigns, deals, member_reports, ops, segments, staff
from mallapp.domain.campaigns.models import Campaign
from mallapp.domain.deals import Deal
from mallapp.domain.merchants import Merchant
from mallapp.domain.ops import OpsUser
from mallapp.domain.parking import carparks
from mallapp.domain.parking.models import CarPark
from mallapp.domain.segments import MemberSnapshot
from mallapp.domain.staff import Staff
from mallapp.domain.venue import Store, Zone
from mallapp.runtime import Runtime, build_runtime
from mallapp.schema import upgrade
from mallapp.settings import load_settings

NOW = bench_members.NOW
P95_GOAL_MS = 500.0
PASSWORD = "benchmark passphrase"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.consoles", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--members", type=int, default=1_000_000)
    p.add_argument("--purchases", type=int, default=20_000_000)
    p.add_argument("--calls", type=int, default=50, help="calls of each URL (p95 over them)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--database-url", help="reuse the set in this PostgreSQL database (built by an earlier run)")
    p.add_argument("--redis-url", help="the Redis to use with --database-url")
    p.add_argument("--hold", action="store_true",
                   help="after measuring, keep the servers of the set it built running (until Ctrl-C or SIGTERM)")
    p.add_argument("--build-only", action="store_true", help="build the set (and ensure the world), measure nothing")
    args = p.parse_args(argv)
    if bool(args.database_url) != bool(args.redis_url):
        p.error("--database-url and --redis-url go together")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mallapp-bench-consoles-") as tmp:
        if args.database_url:
            upgrade(args.database_url)
            with _runtime(mall_environ(args.database_url, args.redis_url, Path(tmp))) as rt:
                print(f"reusing the set in {args.database_url}", flush=True)
                return _measure(rt, args)
        with stack(Path(tmp)) as st, _runtime(st.environ) as rt:
            built = _build(rt, args)
            status = 0 if args.build_only else _measure(rt, args)
            if args.hold:
                _hold(st.mall_url, st.redis.url, built)
            return status


@contextlib.contextmanager
def _runtime(environ: dict[str, str]) -> Iterator[Runtime]:
    rt = build_runtime(load_settings(environ=environ))
    rt.clock = lambda: NOW  # type: ignore[assignment, method-assign]
    try:
        yield rt
    finally:
        rt.close()


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _build(rt: Runtime, args: argparse.Namespace) -> str:
    bench_members.write_history(rt, args.members, args.purchases, args.seed)

    def nightly() -> None:
        with rt.sessions.begin() as s:
            segments.run(s, rt.settings, NOW, trigger="clock")
    print(f"nightly segments run: {_timed(nightly):.1f} s", flush=True)

    def precompute() -> None:
        with rt.sessions.begin() as s:
            member_reports.precompute(s, rt.settings, member_reports.month_of(rt.settings, NOW), NOW)
    print(f"member_reports.precompute: {_timed(precompute):.1f} s", flush=True)
    return f"{args.members:,} members, {args.purchases:,} purchases"


def _hold(database_url: str, redis_url: str, built: str) -> None:
    print(f"\nholding the set ({built}); reuse it with\n  python -m benchmarks.consoles "
          f"--database-url {database_url} --redis-url {redis_url}\nCtrl-C or SIGTERM stops the servers.", flush=True)
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop["now"]:
        time.sleep(1)


# --- what the pages need beyond the history -------------------------------------------------------------

OPS_USER = "bench-console-ops"
MANAGER = "bench-console-manager"
FLOORS = (1, 2)
ZONES_PER_FLOOR = 24            # a 6 × 4 grid of 10 m × 8 m zones a floor
ZONE_VISIT_DAYS = 35            # zone visits derived from this many days of mall visits before NOW


@dataclass(frozen=True)
class World:
    """The values the pages' URL templates are filled with, for each audience."""

    ops: dict[str, str]
    staff: dict[str, str]


def ensure_world(rt: Runtime) -> World:
    """Add (once) what the pages read beyond the history; return the placeholders' values."""
    now = rt.now()
    with rt.sessions.begin() as s:
        merchant_id = s.scalar(select(func.min(Merchant.id)))
        if merchant_id is None:
            raise SystemExit("the set has no merchant: build it first (python -m benchmarks.consoles --build-only)")
        if s.scalar(select(OpsUser.id).where(OpsUser.username == OPS_USER)) is None:
            ops.create_user(s, OPS_USER, "admin", PASSWORD, now)
        if s.scalar(select(Staff.id).where(Staff.username == MANAGER)) is None:
            staff.create(s, merchant_id, MANAGER, "manager", PASSWORD, now)
        if s.scalar(select(func.count()).select_from(Zone)) == 0:
            _floor_plan(s, merchant_id, now)
        store_id = s.scalar(select(func.min(Store.id)).where(Store.merchant_id == merchant_id))
        if s.scalar(select(func.count()).select_from(Deal).where(Deal.merchant_id == merchant_id)) == 0:
            deal = deals.create(s, merchant_id, title="Benchmark deal", store_id=store_id, now=now,
                                starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=30), quota=1000,
                                per_member_limit=1, benefit={"kind": "amount_off", "amount_fen": 500},
                                store_ids=[store_id])
            deal.status = "live"
        if s.scalar(select(func.count()).select_from(Campaign)) == 0:
            creator = s.scalar(select(OpsUser.id).where(OpsUser.username == OPS_USER))
            campaigns.create(s, rt.settings, creator, name="Benchmark campaign", audience={}, timing="now", now=now,
                             steps=[{"offer": {"kind": "message", "title": "会员日"}}])
        if s.scalar(select(func.count()).select_from(CarPark)) == 0:
            carparks.create_car_park(s, code="B1", name="Benchmark car park", vendor_park_code="P001",
                                     tariff_doc=DEMO_TARIFF, now=now)
    _zone_visits(rt)
    with rt.sessions.begin() as s:
        # A member with a full history: the first T1 member of the latest snapshot month.
        member_id = s.scalar(select(MemberSnapshot.member_id).where(MemberSnapshot.t_tier == "T1")
                             .order_by(MemberSnapshot.month.desc(), MemberSnapshot.member_id).limit(1))
        common = {"member_id": member_id, "floor": FLOORS[0], "merchant_id": merchant_id,
                  "campaign_id": s.scalar(select(func.min(Campaign.id))),
                  "car_park_id": s.scalar(select(func.min(CarPark.id))),
                  "car_park_code": s.scalar(select(CarPark.code).order_by(CarPark.id).limit(1)),
                  "zone_id": s.scalar(select(func.min(Zone.id))), "store_id": store_id,
                  "deal_id": s.scalar(select(func.min(Deal.id)).where(Deal.merchant_id == merchant_id)),
                  "user_id": s.scalar(select(OpsUser.id).where(OpsUser.username == OPS_USER)),
                  "staff_id": s.scalar(select(Staff.id).where(Staff.username == MANAGER)),
                  "day": rt.settings.mall.local_day(now).isoformat(),
                  "month": rt.settings.mall.local_day(now).strftime("%Y-%m")}
    values = {k: str(v) for k, v in common.items() if v is not None}
    return World(ops=values, staff=values)


def _floor_plan(s: Session, merchant_id: int, now: datetime) -> None:
    """Two floors of zones in a grid, each floor's first zone a store of the benchmark merchant."""
    for floor in FLOORS:
        for i in range(ZONES_PER_FLOOR):
            x, y = (i % 6) * 10.0, (i // 6) * 8.0
            store = None
            if i % 3 == 0:
                store = Store(name=f"Shop {floor}-{i:02d}", unit=f"L{floor}-{i:02d}", category="retail", floor=floor,
                              x=x + 5, y=y + 4, merchant_id=merchant_id if i == 0 else None, created_at=now)
                s.add(store)
                s.flush()
            s.add(Zone(name=f"Zone {floor}-{i:02d}", kind="store" if store else "area", floor=floor,
                       polygon=[[x, y], [x + 10, y], [x + 10, y + 8], [x, y + 8]],
                       store_id=store.id if store else None, created_at=now))


def _zone_visits(rt: Runtime) -> None:
    """Zone visits from the last ZONE_VISIT_DAYS days of mall visits, once: each mall visit's member in two
    zones (picked by member id), so the footfall pages read a realistic volume."""
    with rt.engine.begin() as conn:
        if conn.execute(text("SELECT EXISTS (SELECT 1 FROM zone_visits)")).scalar():
            return
        zones = [row[0] for row in conn.execute(text("SELECT id FROM zones ORDER BY id"))]
        started = time.perf_counter()
        for k, (offset, share) in enumerate(((5, 0.4), (30, 0.3))):
            conn.execute(text(
                "INSERT INTO zone_visits (member_id, zone_id, entered_at, exited_at, dwell_seconds) "
                "SELECT member_id, (CAST(:ids AS int[]))[1 + (member_id * :mult + :k) % :n], "
                "entered_at + make_interval(mins => :offset), "
                "entered_at + make_interval(mins => :offset) + make_interval(secs => GREATEST(60, dwell_seconds * :share)), "
                "GREATEST(60, CAST(dwell_seconds * :share AS int)) "
                "FROM mall_visits WHERE entered_at >= :since ON CONFLICT DO NOTHING"),
                {"ids": zones, "mult": 7 + 6 * k, "k": k, "n": len(zones), "offset": offset, "share": share,
                 "since": NOW - timedelta(days=ZONE_VISIT_DAYS)})
        made = conn.execute(text("SELECT count(*) FROM zone_visits")).scalar()
        # Loaded around history.record_zone_visit, so the hourly rollup is filled here as migration 0022 does.
        conn.execute(text("DELETE FROM zone_hours"))
        conn.execute(text("INSERT INTO zone_hours (zone_id, hour_start, visits, dwell_seconds) "
                          "SELECT zone_id, date_trunc('hour', entered_at), count(*), sum(dwell_seconds) "
                          "FROM zone_visits GROUP BY 1, 2"))
        conn.execute(text("ANALYZE zone_visits"))
        conn.execute(text("ANALYZE zone_hours"))
    print(f"zone visits derived from mall visits: {made:,} in {time.perf_counter() - started:.1f} s", flush=True)


# --- measuring ------------------------------------------------------------------------------------------

FIELDS = string.Formatter()


def fill(template: str, values: dict[str, str], where: str) -> str:
    """The URL of a page's data template; a placeholder the set cannot fill stops the run."""
    names = [name for _, name, _, _ in FIELDS.parse(template) if name]
    missing = [name for name in names if name not in values]
    if missing:
        raise SystemExit(f"{where}: cannot fill {', '.join('{' + m + '}' for m in missing)} in {template!r} "
                         f"(known: {', '.join(sorted(values))}); teach benchmarks/consoles.py ensure_world")
    return template.format(**values)


def _percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[max(0, math.ceil(len(ordered) * 0.95) - 1)]


def _measure(rt: Runtime, args: argparse.Namespace) -> int:
    app = create_app(runtime=rt)  # imports every console, so each registers its pages in web.PAGES
    logs.configure(rt.settings.log_format, "WARNING")  # not a line per request on the benchmark's output
    world = ensure_world(rt)
    client = app.test_client()
    callers = {"ops": _token(client, "/api/v1/ops/auth", OPS_USER),
               "staff": _token(client, "/api/v1/merchant/auth", MANAGER)}
    values = {"ops": world.ops, "staff": world.staff}
    calls = args.calls

    def series(call: Callable[[], Any]) -> list[float]:
        call()  # warm
        out = []
        for _ in range(calls):
            started = time.perf_counter()
            call()
            out.append((time.perf_counter() - started) * 1000)
        return out

    def get(url: str, headers: dict[str, str]) -> Callable[[], None]:
        def call() -> None:
            answer = client.get(url, headers=headers)
            if answer.status_code != 200:
                raise SystemExit(f"GET {url}: {answer.status_code} {answer.get_data(as_text=True)[:300]}")
        return call

    def select_one() -> None:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar()

    ping = _percentiles(series(get("/api/v1/ping", {})))
    one = _percentiles(series(select_one))
    print(f"\n{calls} calls each; a page's time is the SUM of its reads, call by call (its script may fetch them in "
          "parallel: the sum is what one connection pays, the worst case)")
    print(f"{'page / its data':<78} {'p50 ms':>8} {'p95 ms':>8} {'p95/ping':>9} {'p95/SELECT 1':>13}")
    row = "{:<78} {:>8.2f} {:>8.2f} {:>9.1f} {:>13.1f}"
    print(row.format("GET /api/v1/ping (baseline)", *ping, 1.0, ping[1] / one[1]))
    print(row.format("SELECT 1 round trip (baseline)", *one, one[1] / ping[1], 1.0))
    slow: list[str] = []
    pages = sorted(web.PAGES, key=lambda p: (p.section, p.order, p.endpoint))
    for page in pages:
        with app.test_request_context():
            path = url_for(page.endpoint, **_path_args(app, page.endpoint, values[page.audience]))
        if not page.data:
            print(f"{page.endpoint} {path}: no data= declared, nothing to time", flush=True)
            continue
        headers = callers[page.audience]
        totals = [0.0] * calls
        lines = []
        for template in page.data:
            url = fill(template, values[page.audience], page.endpoint)
            times = series(get(url, headers))
            totals = [a + b for a, b in zip(totals, times, strict=True)]
            p50, p95 = _percentiles(times)
            lines.append(row.format("  " + url[:76], p50, p95, p95 / ping[1], p95 / one[1]))
        p50, p95 = _percentiles(totals)
        flag = "  OVER 500 ms" if p95 > P95_GOAL_MS else ""
        if flag:
            slow.append(f"{page.endpoint} ({p95:.0f} ms)")
        print(row.format(f"{page.endpoint} {path} [{page.audience}, {len(page.data)} reads]"[:78], p50, p95,
                         p95 / ping[1], p95 / one[1]) + flag, flush=True)
        print("\n".join(lines), flush=True)
    verdict = "every page under" if not slow else f"{len(slow)} page(s) over"
    print(f"\n{len(pages)} pages; {verdict} {P95_GOAL_MS:.0f} ms at p95" + (": " + ", ".join(slow) if slow else ""))
    return 1 if slow else 0


def _path_args(app: Any, endpoint: str, values: dict[str, str]) -> dict[str, str]:
    """Values for the page's own URL variables (a member's record page, say), from the same set."""
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    return {name: fill("{" + name + "}", values, endpoint) for name in rule.arguments}


def _token(client: Any, path: str, username: str) -> dict[str, str]:
    answer = client.post(path, json={"username": username, "password": PASSWORD})
    if answer.status_code != 200:
        raise SystemExit(f"sign-in {path} as {username}: {answer.status_code} {answer.get_json()}")
    return {"Authorization": f"Bearer {answer.get_json()['token']}"}


if __name__ == "__main__":
    sys.exit(main())
