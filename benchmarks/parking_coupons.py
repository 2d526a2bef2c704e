"""``python -m benchmarks.parking_coupons``: the parking-coupons-expiry job against returning one coupon at a time.

    python -m benchmarks.parking_coupons [--coupons 5000] [--merchants 5] [--database-url URL]

Builds a database (a fresh SQLite file unless ``--database-url`` names an empty, migratable one), with
``--merchants`` merchants, each a parking deal, and ``--coupons`` expired, unused coupons whose hours
were reserved from their merchant's quota. Then, in the same run and on two equal halves of them:

- the baseline returns each coupon in its own transaction (``quota.return_coupons`` with one id);
- the job (``merchant_coupons.return_expired``) returns the rest, a batch of 500 per transaction.

Prints one JSON object: coupons per second for each, and the ratio. The quota's invariants are checked
after (row = sum of entries).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select

from mallapp.domain import coupons, deals, members, merchants, venue_admin
from mallapp.domain.parking import merchant_coupons, quota
from mallapp.domain.parking.models import ParkingQuotaEntry
from mallapp.runtime import build_runtime
from mallapp.schema import upgrade
from mallapp.settings import DEMO_SETTINGS_FILE, load_settings

T0 = datetime(2026, 3, 1, 2, tzinfo=UTC)


def _world(rt, n: int, merchant_count: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:  # noqa: ANN001
    """Expired, reserved coupons: two halves of (merchant id, coupon id)."""
    out = []
    with rt.sessions.begin() as s:
        member = members.sign_in(s, openid="o-bench-parking", unionid=None, now=T0)[0].id
        for m in range(merchant_count):
            merchant, _ = merchants.create(s, f"Bench Parking {m}", T0)
            store = venue_admin.create_store(s, name=f"Bench store {m}", floor=1, x=0, y=0, merchant_id=merchant.id,
                                             now=T0)
            quota.buy(s, rt.settings, merchant.id, unit="hours", amount=n, idempotency_key="bench", now=T0)
            deal = deals.create(s, merchant.id, title="停车券", store_id=store.id, starts_at=T0, quota=n,
                                ends_at=T0 + timedelta(days=1), per_member_limit=n,
                                benefit={"kind": "parking_hours", "hours": 1}, now=T0)
            deal.status = "live"
            share = n // merchant_count
            s.execute(insert(coupons.Coupon), [dict(deal_id=deal.id, member_id=member, code=f"B{m:02d}{i:07d}",
                                                    claimed_at=T0) for i in range(share)])
            ids = list(s.scalars(select(coupons.Coupon.id).where(coupons.Coupon.deal_id == deal.id)))
            quota.lock(s, merchant.id, T0).hours -= len(ids)
            s.execute(insert(ParkingQuotaEntry), [dict(merchant_id=merchant.id, unit="hours", delta=-1,
                                                       reason="reserved", coupon_id=i, created_at=T0,
                                                       idempotency_key=quota.reserved_key(i)) for i in ids])
            out += [(merchant.id, i) for i in ids]
    out.sort(key=lambda pair: pair[1])
    return out[: len(out) // 2], out[len(out) // 2:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--coupons", type=int, default=5000)
    parser.add_argument("--merchants", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        settings = load_settings({"database_url": url, "secret_key": "bench-" + "x" * 40}, environ={},
                                 overlay=DEMO_SETTINGS_FILE)
        rt = build_runtime(settings)
        first, second = _world(rt, args.coupons, args.merchants)
        now = T0 + timedelta(days=2)
        t = time.perf_counter()
        for merchant_id, coupon_id in first:
            with rt.sessions.begin() as s:
                quota.return_coupons(s, merchant_id, [coupon_id], now)
        one_by_one = time.perf_counter() - t
        t = time.perf_counter()
        returned = merchant_coupons.return_expired(rt.sessions, now)
        job = time.perf_counter() - t
        with rt.sessions.begin() as s:
            problems = quota.check_invariants(s)
        rt.engine.dispose()
    assert returned == len(second) and problems == [], (returned, problems)
    print(json.dumps({
        "database": url.split(":")[0], "python": platform.python_version(), "coupons_each": len(second),
        "baseline_one_per_transaction_per_s": round(len(first) / one_by_one),
        "job_batches_of_500_per_s": round(len(second) / job),
        "ratio": round(one_by_one / job * len(second) / len(first), 1),
    }))


if __name__ == "__main__":
    main()
