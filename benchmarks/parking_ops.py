"""The parking day report on a year of sessions of a 2,000-space car park, against a baseline in the same run.

    python -m benchmarks.parking_ops                          # 4,000 stays a day for 365 days
    python -m benchmarks.parking_ops --per-day 1000 --rounds 3

Starts its own PostgreSQL (production durability), migrates a database, bulk-loads one car park (levels of
1,200 and 800 spaces) with a year of stays ending yesterday (20 minutes to 6 hours each; 1 in 97 let out by
staff with money due), a paid payment for 6 stays in 10 (1 in 50 failed, 1 in 200 partly refunded) and a
benefit for a third of those (tier, spend, points, coupon in turn), then times
``mallapp.domain.parking.reports.day_report`` over the last 7, 31 and 92 days. The baseline is the cheapest
query that reads the same range: ``COUNT(*)`` of the stays that entered in it (the entered_at index). Prints
one JSON object: per range, the p50 and max in milliseconds, the stays in the range, and the p50's ratio to
the baseline's p50.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text

from mallapp.db import make_engine, make_sessionmaker
from mallapp.devtools.servers import PostgresServer
from mallapp.domain import members, models  # noqa: F401  (the model registry)
from mallapp.domain.parking import reports
from mallapp.domain.parking.models import ParkingSession
from mallapp.schema import upgrade
from mallapp.settings import MallSettings

TZ = "Asia/Shanghai"


def load(url: str, per_day: int, days: int, now: datetime) -> tuple[int, float]:
    """The car park and its history, server-side (generate_series); return (car park id, seconds)."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    started = time.perf_counter()
    with sessions.begin() as session:
        member_id = members.sign_in(session, openid="bench-parker", unionid=None, now=now)[0].id
    n = per_day * days
    first = (now - timedelta(days=days)).replace(tzinfo=None)
    step = days * 86400 / n
    with engine.begin() as conn:
        conn.execute(text("""INSERT INTO car_parks (id, code, name, vendor_park_code, fee_source, tariff, rules, active,
                             created_at, updated_at) VALUES (1, 'P1', 'Bench', 'P001', 'carpark', '{}', '{}', true,
                             now(), now())"""))
        conn.execute(text("""INSERT INTO parking_levels (car_park_id, code, name, floor, spaces)
                             VALUES (1, 'B1', 'B1', -1, 1200), (1, 'B2', 'B2', -2, 800)"""))
        for start in range(1, n + 1, 200_000):
            stop = min(n, start + 199_999)
            params = {"first": first, "step": step, "start": start, "stop": stop, "member": member_id}
            conn.execute(text("""
                INSERT INTO parking_sessions (id, car_park_id, plate, vehicle_type, order_no, entered_at, exited_at,
                    status, exit_kind, unpaid_fen, created_at)
                SELECT g, 1, '沪A' || lpad((g % 99999)::text, 5, '0'), 'small', 'P-' || g, e,
                       e + (20 + (g * 7919) % 340) * interval '1 minute', 'left',
                       CASE WHEN g % 97 = 0 THEN 'staff' ELSE 'camera' END,
                       CASE WHEN g % 97 = 0 THEN 1500 END, e
                FROM (SELECT g, CAST(:first AS timestamp) + (g - 1) * CAST(:step AS double precision) * interval '1 second' AS e
                      FROM generate_series(CAST(:start AS bigint), CAST(:stop AS bigint)) AS g) AS s"""),
                         params)
            conn.execute(text("""
                INSERT INTO parking_payments (id, session_id, seq, order_id, payer, status, gross_fen, discount_fen,
                    cash_fen, points, items, quoted_at, refunded_fen, local_day, created_at, paid_at, settled_at)
                SELECT id, id, 1, 'O' || id, 'public', CASE WHEN id % 50 = 0 THEN 'failed' ELSE 'paid' END,
                       1000 + (id % 5) * 500, CASE WHEN id % 3 = 0 THEN 500 ELSE 0 END,
                       1000 + (id % 5) * 500 - CASE WHEN id % 3 = 0 THEN 500 ELSE 0 END, 0, '[]', p,
                       CASE WHEN id % 200 = 0 THEN 200 ELSE 0 END,
                       CAST(((p AT TIME ZONE 'UTC') AT TIME ZONE :tz) AS date), p, p, p
                FROM (SELECT id, exited_at - interval '5 minutes' AS p FROM parking_sessions
                      WHERE id BETWEEN :start AND :stop AND id % 10 < 6) AS s"""), {**params, "tz": TZ})
            conn.execute(text("""
                INSERT INTO parking_benefits (id, payment_id, session_id, member_id, kind, seconds, fen, points,
                    local_day, created_at)
                SELECT id, id, session_id, :member, (ARRAY['tier', 'spend', 'points', 'coupon'])[1 + id % 4],
                       CASE WHEN id % 4 = 3 THEN 0 ELSE 3600 END, 500, CASE WHEN id % 4 = 2 THEN 600 ELSE 0 END,
                       local_day, created_at
                FROM parking_payments WHERE id BETWEEN :start AND :stop AND discount_fen > 0"""), params)
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return 1, time.perf_counter() - started


def _timed(rounds: int, call: Callable[[], Any]) -> dict[str, float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}


def run(per_day: int, days: int, rounds: int) -> dict[str, Any]:
    mall = MallSettings.model_validate({"name": "Bench Mall", "timezone": TZ, "latitude": 31.2, "longitude": 121.5,
                                        "radius_m": 300})
    now = datetime.now(UTC)
    today = mall.local_day(now)
    with PostgresServer(fast=False) as pg:
        url = pg.create_database("parking_ops")
        upgrade(url)
        park_id, load_seconds = load(url, per_day, days, now)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        results: dict[str, Any] = {}
        for span in (7, 31, 92):
            report_days = [today - timedelta(days=span - k) for k in range(span)]  # ending yesterday
            start, end = mall.day_bounds(report_days[0])[0], mall.day_bounds(report_days[-1])[1]

            def baseline(start: datetime = start, end: datetime = end) -> int:
                with sessions.begin() as session:
                    return session.scalar(select(func.count()).select_from(ParkingSession).where(
                        ParkingSession.entered_at >= start, ParkingSession.entered_at < end)) or 0

            def report(report_days: list = report_days) -> reports.DayReport:
                with sessions.begin() as session:
                    return reports.day_report(session, mall, park_id, report_days, now)

            stays = baseline()
            sample = report()
            base = _timed(rounds, baseline)
            timed = _timed(rounds, report)
            peak = max(d.peak_cars or 0 for d in sample.days)
            results[f"{span}_days"] = {"stays": stays, "baseline_count": base, "day_report": timed,
                                       "ratio_p50": round(timed["p50_ms"] / (base["p50_ms"] or 1e-9), 1),
                                       "peak_cars": peak, "spaces": sample.spaces}
        with sessions.begin() as session:
            total = session.scalar(select(func.count()).select_from(ParkingSession))
        engine.dispose()
    return {"sessions": total, "per_day": per_day, "days": days, "rounds": rounds,
            "load_seconds": round(load_seconds, 1), "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-day", type=int, default=4000, help="stays a day (a busy 2,000-space car park)")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(run(args.per_day, args.days, args.rounds), indent=2))


if __name__ == "__main__":
    main()
