"""The service desk's member search on many members, against a primary-key read in the same run.

    python -m benchmarks.desk_search                      # 1,000,000 members
    python -m benchmarks.desk_search --members 200000 --rounds 200

Starts its own PostgreSQL (production durability), migrates a database, bulk-loads members with a
phone (random 11-digit numbers: about 100 share each last four digits per million), a nickname and a
referral code (unique, from the referral alphabet), then times ``mallapp.domain.desk.search`` for each kind of query (last four digits, full
phone, member id, referral code, nickname part) and, as the baseline, ``session.get(Member, id)``: the
cheapest read of a member there is. Prints one JSON object: per kind, the p50 and p95 in milliseconds
and the p95's ratio to the baseline's p95, plus how many members each query found on average.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from benchmarks.foundation import timed
from mallapp.db import make_engine, make_sessionmaker
from mallapp.devtools.servers import PostgresServer
from mallapp.domain import desk, models  # noqa: F401  (the model registry)
from mallapp.domain.members import Member
from mallapp.schema import upgrade

_SYLLABLES = ["an", "bo", "chen", "da", "fei", "gang", "hui", "jia", "kai", "lin", "mei", "ning", "ping", "qiang",
              "rui", "shan", "tao", "wei", "xin", "yu", "zhi"]


def load(url: str, members: int) -> float:
    """Insert ``members`` rows in one statement per 100,000 (server-side generate_series); return seconds."""
    engine = make_engine(url)
    started = time.perf_counter()
    syllables = "ARRAY[" + ",".join(f"'{s}'" for s in _SYLLABLES) + "]"
    with engine.begin() as conn:
        for start in range(1, members + 1, 100_000):
            stop = min(members, start + 99_999)
            conn.execute(text(f"""
                INSERT INTO members (id, openid, nickname, gender, phone, phone_last4, referral_code, created_at)
                SELECT g, 'bench-' || g,
                       initcap(({syllables})[1 + (g * 7) % {len(_SYLLABLES)}]) || ' '
                         || initcap(({syllables})[1 + (g * 13) % {len(_SYLLABLES)}]) || (g % 997),
                       'unknown', p, right(p, 4),
                       translate(lpad(((g::bigint * 2654435761) % 100000000)::text, 8, '0'), '0123456789',
                                 'ABCDEFGHJK'), now()
                FROM (SELECT g, '+861' || lpad(((g::bigint * 2654435761) % 10000000000)::text, 10, '0') AS p
                      FROM generate_series({start}, {stop}) AS g) AS s"""))
        conn.execute(text("SELECT setval(pg_get_serial_sequence('members', 'id'), :n)"), {"n": members})
        conn.execute(text("ANALYZE members"))
    engine.dispose()
    return time.perf_counter() - started




def run(members: int, rounds: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    with PostgresServer(fast=False) as pg:
        url = pg.create_database("desk")
        upgrade(url)
        load_seconds = load(url, members)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        with sessions.begin() as session:
            sample = list(session.execute(text(
                "SELECT id, phone, referral_code, nickname FROM members TABLESAMPLE SYSTEM (1) LIMIT :n"),
                {"n": rounds}))
        picks = [sample[rng.randrange(len(sample))] for _ in range(rounds)]

        def searching(query_of: Callable[[Any], str]) -> Callable[[int], int]:
            def call(i: int) -> int:
                with sessions.begin() as session:
                    return len(desk.search(session, query_of(picks[i]), limit=20)[0])
            return call

        def baseline(i: int) -> int:
            with sessions.begin() as session:
                session.expunge_all()
                return int(session.get(Member, picks[i].id) is not None)

        results = {"baseline_get_by_id": timed(rounds, baseline)}
        kinds = {
            "last_four": lambda row: row.phone[-4:],
            "full_phone": lambda row: row.phone[3:],  # as a member says it, without +86
            "member_id": lambda row: str(row.id),
            "referral_code": lambda row: row.referral_code.lower(),
            "nickname_part": lambda row: row.nickname.split(" ")[1][:5],
        }
        for name, query_of in kinds.items():
            results[name] = timed(rounds, searching(query_of))
        base = results["baseline_get_by_id"]["p95_ms"] or 1e-9
        for name in kinds:
            results[name]["p95_ratio_to_baseline"] = round(results[name]["p95_ms"] / base, 1)
        engine.dispose()
    return {"members": members, "rounds": rounds, "load_seconds": round(load_seconds, 1), "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    print(json.dumps(run(args.members, args.rounds, args.seed), indent=2))


if __name__ == "__main__":
    main()
