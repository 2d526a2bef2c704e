"""The till's reads on a big mall, against a primary-key read in the same run.

    python -m benchmarks.till                                    # 1,000,000 members, 5,000,000 purchases
    python -m benchmarks.till --members 200000 --purchases 1000000 --rounds 200

Starts its own PostgreSQL (production durability), migrates a database, bulk-loads ``--merchants`` merchants with
a store each, ``--members`` members with a phone, ``--purchases`` purchases spread over the last 30 days across
the merchants, and a few live and ended deals per merchant. Then times, in-process through the domain functions
the endpoints call (mallapp.domain.till):

* ``receipts_first_page``: a merchant's receipts of today, newest first, 20 (GET /api/v1/merchant/purchases);
* ``receipts_next_page``: the page after it (the keyset cursor);
* ``till_day``: the merchant's stores and the deals it honours now (GET /api/v1/merchant/till);
* ``find_by_phone``: a member by full phone number (POST /api/v1/merchant/members/find-by-phone, its rate limit
  aside: Redis is not started here);

and, as the baseline, ``session.get(Member, id)``. Prints one JSON object: per read, p50 and p95 in milliseconds
and the p95's ratio to the baseline's.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from benchmarks.foundation import timed
from mallapp.db import make_engine, make_sessionmaker
from mallapp.devtools.servers import PostgresServer
from mallapp.domain import models, till, venue  # noqa: F401  (the model registry)
from mallapp.domain.members import Member
from mallapp.schema import upgrade
from mallapp.settings import DEMO_SETTINGS_FILE, load_settings

NOW = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai


def load(url: str, merchants: int, members: int, purchases: int) -> float:
    """Bulk-load with server-side generate_series; return seconds."""
    engine = make_engine(url)
    started = time.perf_counter()
    now = NOW.isoformat()
    with engine.begin() as conn:
        conn.execute(text(f"""
            INSERT INTO merchants (id, name, api_key_hash, key_hint, active, auto_approve_deals, created_at)
            SELECT g, 'Merchant ' || g, md5('k' || g) || md5('h' || g), 'mk_' || g, true, false, '{now}'
            FROM generate_series(1, {merchants}) AS g"""))
        conn.execute(text(f"""
            INSERT INTO stores (id, name, merchant_id, unit, category, floor, x, y, active, created_at)
            SELECT g, 'Store ' || g, g, 'L1-' || g, 'food', 1, g, 0, true, '{now}'
            FROM generate_series(1, {merchants}) AS g"""))
        for start in range(1, members + 1, 100_000):
            stop = min(members, start + 99_999)
            conn.execute(text(f"""
                INSERT INTO members (id, openid, nickname, gender, phone, phone_last4, referral_code, created_at)
                SELECT g, 'bench-' || g, 'Member ' || g, 'unknown', p, right(p, 4),
                       translate(lpad(((g::bigint * 2654435761) % 100000000)::text, 8, '0'), '0123456789',
                                 'ABCDEFGHJK'), '{now}'
                FROM (SELECT g, '+861' || lpad(((g::bigint * 2654435761) % 10000000000)::text, 10, '0') AS p
                      FROM generate_series({start}, {stop}) AS g) AS s"""))
        for start in range(1, purchases + 1, 500_000):
            stop = min(purchases, start + 499_999)
            # Spread over 30 days back from NOW, merchant by g, member by a multiplicative hash of g.
            conn.execute(text(f"""
                INSERT INTO purchases (id, merchant_id, receipt_no, member_id, amount_fen, refunded_fen,
                                       points_earned, birthday_bonus, points_reversed, occurred_at, created_at)
                SELECT g, 1 + g % {merchants}, 'R-' || g, 1 + (g::bigint * 2654435761) % {members},
                       1000 + g % 50000, 0, (1000 + g % 50000) / 1000, 0, 0, t, t
                FROM (SELECT g, timestamptz '{now}' - make_interval(secs => (g::bigint * 7919) % (30 * 86400)) AS t
                      FROM generate_series({start}, {stop}) AS g) AS s"""))
        conn.execute(text(f"""
            INSERT INTO deals (id, merchant_id, store_id, title, text, starts_at, ends_at, quota, per_member_limit,
                               benefit_kind, benefit_value, zone_ids, store_ids, sale_item_ids, member_rule,
                               followers_only, status, claimed, redeemed, pushes, scope, created_at, updated_at)
            SELECT g, 1 + g % {merchants}, 1 + g % {merchants}, 'Deal ' || g, '',
                   timestamptz '{now}' - interval '3 days',
                   timestamptz '{now}' + make_interval(days => CASE WHEN g % 3 = 0 THEN -1 ELSE 1 + g % 9 END),
                   100, 1, 'amount_off', 500, '[]', '[]', '[]', 'everyone', false,
                   CASE WHEN g % 4 = 0 THEN 'ended' ELSE 'live' END, 0, 0, 0, 'store', '{now}', '{now}'
            FROM generate_series(1, {merchants * 10}) AS g"""))
        for table in ("merchants", "stores", "members", "purchases", "deals"):
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
            conn.execute(text(f"ANALYZE {table}"))
    engine.dispose()
    return time.perf_counter() - started




def run(merchants: int, members: int, purchases: int, rounds: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    settings = load_settings(overlay=DEMO_SETTINGS_FILE)
    today = settings.mall.local_day(NOW)
    with PostgresServer(fast=False) as pg:
        url = pg.create_database("till")
        upgrade(url)
        load_seconds = load(url, merchants, members, purchases)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        with sessions.begin() as session:
            phones = [row.phone for row in session.execute(text(
                "SELECT phone FROM members TABLESAMPLE SYSTEM (1) LIMIT :n"), {"n": rounds})]
        picks = [(rng.randrange(1, merchants + 1), rng.randrange(1, members + 1), phones[i % len(phones)])
                 for i in range(rounds)]
        cursors: dict[int, tuple[datetime, int] | None] = {}

        def first_page(i: int) -> int:
            with sessions.begin() as session:
                page, following = till.receipts(session, settings, merchant_id=picks[i][0], day=today, before=None,
                                                limit=20)
                cursors[i] = following
                return len(page)

        def next_page(i: int) -> int:
            with sessions.begin() as session:
                return len(till.receipts(session, settings, merchant_id=picks[i][0], day=today, before=cursors[i],
                                         limit=20)[0])

        def till_day(i: int) -> int:
            with sessions.begin() as session:
                stores = venue.merchant_stores(session, picks[i][0])
                return len(till.live_deals(session, picks[i][0], [s.id for s in stores], NOW))

        def by_phone(i: int) -> int:
            with sessions.begin() as session:
                return len(till.with_phone(session, picks[i][2]))

        def baseline(i: int) -> int:
            with sessions.begin() as session:
                return int(session.get(Member, picks[i][1]) is not None)

        results = {"baseline_get_by_id": timed(rounds, baseline),
                   "receipts_first_page": timed(rounds, first_page),
                   "receipts_next_page": timed(rounds, next_page),
                   "till_day": timed(rounds, till_day),
                   "find_by_phone": timed(rounds, by_phone)}
        base = results["baseline_get_by_id"]["p95_ms"] or 1e-9
        for name, figures in results.items():
            if name != "baseline_get_by_id":
                figures["p95_ratio_to_baseline"] = round(figures["p95_ms"] / base, 1)
        engine.dispose()
    return {"merchants": merchants, "members": members, "purchases": purchases, "rounds": rounds,
            "load_seconds": round(load_seconds, 1), "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merchants", type=int, default=200)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--purchases", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    print(json.dumps(run(args.merchants, args.members, args.purchases, args.rounds, args.seed), indent=2))


if __name__ == "__main__":
    main()
