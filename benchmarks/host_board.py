"""The restaurant host's reads on a busy restaurant, against the per-ticket way and a primary-key read.

    python -m benchmarks.host_board                        # 100 parties waiting, 28 days of history
    python -m benchmarks.host_board --waiting 300 --days 60 --rounds 200

Starts its own PostgreSQL (production durability), migrates a database and loads one restaurant's queue:
``--days`` earlier days of ``--per-day`` tickets (called and seated) and today's, of which ``--waiting`` still
wait. Then times, each in its own transaction:

- ``board_places``: where every waiting party stands, as the host's board computes it now
  (``queueing.host.places``: one pass over the board's rows);
- ``board_places_per_ticket``: the same from ``queueing.place`` per waiting ticket (one COUNT each: the
  board's way before the host's screen polled it every few seconds), the comparison;
- ``recent_calls``: the caller display's read (each band's last numbers called today);
- ``baseline_get_by_id``: ``session.get(QueueTicket, id)``, the cheapest read there is.

Prints one JSON object: per read the p50 and p95 in milliseconds and the p95's ratio to the baseline's, and
that the two ways of placing the parties agree.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from benchmarks.foundation import timed
from mallapp.db import make_engine, make_sessionmaker
from mallapp.devtools.servers import PostgresServer
from mallapp.domain import merchants, models, queueing, venue_admin  # noqa: F401  (models: the model registry)
from mallapp.domain.queueing import host
from mallapp.domain.queueing.models import QueueTicket
from mallapp.schema import upgrade
from mallapp.settings import DEMO_SETTINGS_FILE, load_settings

NOW = datetime(2026, 3, 10, 11, 0, tzinfo=UTC)  # 19:00 in Shanghai: dinner


def load(sessions: Any, settings: Any, days: int, per_day: int, waiting: int) -> tuple[int, list[int]]:
    """One restaurant and its tickets; returns the store id and today's waiting ticket ids."""
    with sessions.begin() as session:
        merchant, _ = merchants.create(session, "Hotpot Bench", NOW)
        store = venue_admin.create_store(session, name="Hotpot Bench", floor=5, x=0, y=0, merchant_id=merchant.id,
                                         now=NOW).id
        queueing.set_open(session, settings, merchant.id, store, True, None, NOW)
    today = settings.mall.local_day(NOW)
    rows = []
    for back in range(days + 1):
        day = today - timedelta(days=back)
        count = per_day if back else per_day + waiting
        for n in range(1, count + 1):
            band = "ABC"[n % 3]
            taken = NOW - timedelta(days=back, seconds=(count - n) * 40)
            waits = not back and n > per_day
            rows.append({"store_id": store, "band": band, "day": day, "number": n, "ticket_no": f"{band}{n:03d}",
                         "party_size": 1 + n % 6, "member_id": None, "active_member_id": None,
                         "status": "waiting" if waits else "seated", "request_id": f"w-{back}-{n}",
                         "call_request_id": None if waits else f"c-{back}-{n}", "taken_at": taken,
                         "taken_minute": 19 * 60, "ahead_at_take": n % 9, "estimate_s": 900, "naive_estimate_s": 900,
                         "called_at": None if waits else taken + timedelta(minutes=15),
                         "wait_s": None if waits else 900, "lapses_at": None, "ended_at": None,
                         "near_notified": True})
    with sessions.begin() as session:
        for start in range(0, len(rows), 5000):
            session.execute(insert(QueueTicket), rows[start:start + 5000])
    with sessions.begin() as session:
        return store, [t.id for t in queueing.active_tickets(session, store)]




def run(days: int, per_day: int, waiting: int, rounds: int) -> dict[str, Any]:
    with PostgresServer(fast=False) as pg:
        url = pg.create_database("host")
        upgrade(url)
        settings = load_settings(overlay=DEMO_SETTINGS_FILE)  # the queue's defaults, as the demo runs
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        store, waiting_ids = load(sessions, settings, days, per_day, waiting)
        with sessions.begin() as session:
            fitted = queueing.model(session, settings, store, NOW)  # fitted once a day per process, as served

        def board_places() -> dict[int, Any]:
            with sessions.begin() as session:
                return host.places(settings, queueing.active_tickets(session, store), fitted, NOW)

        def per_ticket() -> dict[int, Any]:
            with sessions.begin() as session:
                return {t.id: queueing.place(session, settings, t, NOW, fitted)
                        for t in queueing.active_tickets(session, store)}

        def calls() -> Any:
            with sessions.begin() as session:
                return host.recent_calls(session, store, settings.mall.local_day(NOW), 4)

        def baseline() -> Any:
            with sessions.begin() as session:
                return session.get(QueueTicket, waiting_ids[len(waiting_ids) // 2])

        agree = board_places() == per_ticket()
        results = {name: timed(rounds, lambda _, call=call: call())
                   for name, call in (("baseline_get_by_id", baseline), ("board_places", board_places),
                                      ("board_places_per_ticket", per_ticket), ("recent_calls", calls))}
        base = results["baseline_get_by_id"]["p95_ms"] or 1e-9
        for name, figures in results.items():
            if name != "baseline_get_by_id":
                figures["p95_ratio_to_baseline"] = round(figures["p95_ms"] / base, 1)
        engine.dispose()
    return {"days": days, "per_day": per_day, "waiting": waiting, "rounds": rounds, "places_agree": agree,
            "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--per-day", type=int, default=400)
    parser.add_argument("--waiting", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(run(args.days, args.per_day, args.waiting, args.rounds), indent=2))


if __name__ == "__main__":
    main()
