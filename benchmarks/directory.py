"""The store directory's search on a large mall, against a primary-key read of one store in the same run.

    python -m benchmarks.directory                    # 2,000 stores, 300 rounds per read
    python -m benchmarks.directory --stores 5000 --rounds 500

Starts its own PostgreSQL (production durability), migrates a database and puts ``--stores`` stores on
eight floors through ``venue_admin.create_store`` (so each gets its pinyin as ops' writes do): Chinese names
of two to five characters drawn from a fixed list, an English name, a unit, a category, hours. Then times,
each in its own transaction, ``directory.search`` as ``GET /api/v1/stores`` calls it (limit 50):

- ``search_initials``: a store's pinyin initials (``xbk``), the mini-program's usual query;
- ``search_full_pinyin``: the first two syllables of a store's full pinyin (``xingba``);
- ``search_chinese``: two Chinese characters from inside a name;
- ``search_english``: a word of an English name, any case;
- ``browse_floor_category``: no query, one floor and one category;
- ``baseline_get_by_id``: ``session.get(Store, id)``, the cheapest read there is.

Prints one JSON object: per read the p50 and p95 in milliseconds, the mean number of stores found, and the
p95's ratio to the baseline's.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime
from typing import Any

from benchmarks.foundation import timed
from mallapp.db import make_engine, make_sessionmaker
from mallapp.devtools.servers import PostgresServer
from mallapp.domain import directory, models, venue_admin  # noqa: F401  (models: the model registry)
from mallapp.domain.venue import Store
from mallapp.schema import upgrade

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
# Characters that shop names are made of (food, fashion, places, qualities), polyphones among them.
CHARS = ("星巴克咖啡茶餐厅火锅小馆面包烘焙坊服饰鞋包运动户外儿童乐园美妆珠宝书店文具数码电器家居生活影城娱乐"
         "超市便利重庆长城银行广场东方金色阳光海岸森林花园天空城市时尚优品精选国际")
WORDS = ("Star", "Garden", "Urban", "Golden", "Ocean", "Forest", "Sky", "Harbour", "Summit", "Jade", "Silk",
         "Lotus", "Dragon", "Maple", "Crystal", "Sunny")


def load(sessions: Any, stores: int, seed: int) -> list[tuple]:
    """The stores, made as ops make them; (id, name, name_en, initials, full pinyin, floor, category) of each."""
    rng = random.Random(seed)
    made = []
    with sessions.begin() as session:
        for n in range(stores):
            floor = 1 + n % 8
            name = "".join(rng.choice(CHARS) for _ in range(rng.randint(2, 5)))
            made.append(venue_admin.create_store(
                session, name=name, name_en=f"{rng.choice(WORDS)} {rng.choice(WORDS)} {n}",
                unit=f"L{floor}-{n // 8:03d}", category=rng.choice(directory.CATEGORIES), floor=floor,
                x=rng.uniform(0, 200), y=rng.uniform(0, 100), hours={"default": [["10:00", "22:00"]]},
                tags=["Wi-Fi"], now=NOW))
        session.flush()
        return [(s.id, s.name, s.name_en, s.pinyin_initials, s.pinyin_full, s.floor, s.category) for s in made]


def run(stores: int, rounds: int, seed: int) -> dict[str, Any]:
    with PostgresServer(fast=False) as pg:
        url = pg.create_database("directory")
        upgrade(url)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        rows = load(sessions, stores, seed)
        rng = random.Random(seed + 1)
        picks = [rng.choice(rows) for _ in range(rounds)]

        def search(**query: Any) -> int:
            with sessions.begin() as session:
                return len(directory.search(session, limit=50, **query).stores)

        def two_syllables(full: str, initials: str) -> str:
            # The full pinyin up to the start of the third syllable (or all of it).
            return full[:max(2, len(full) * 2 // max(len(initials), 1))]

        def inner(name: str, i: int) -> str:
            start = i % max(len(name) - 1, 1)
            return name[start:start + 2]

        def baseline(i: int) -> Any:
            with sessions.begin() as session:
                return session.get(Store, picks[i][0]) is not None

        reads = {
            "baseline_get_by_id": baseline,
            "search_initials": lambda i: search(q=picks[i][3]),
            "search_full_pinyin": lambda i: search(q=two_syllables(picks[i][4], picks[i][3])),
            "search_chinese": lambda i: search(q=inner(picks[i][1], i)),
            "search_english": lambda i: search(q=picks[i][2].split()[0].upper()),
            "browse_floor_category": lambda i: search(floor=picks[i][5], category=picks[i][6]),
        }
        for call in reads.values():  # warm up the connection pool and the plans
            for i in range(10):
                call(i)
        results = {name: timed(rounds, call) for name, call in reads.items()}
        base = results["baseline_get_by_id"]["p95_ms"] or 1e-9
        for name, figures in results.items():
            if name != "baseline_get_by_id":
                figures["p95_ratio_to_baseline"] = round(figures["p95_ms"] / base, 1)
        engine.dispose()
    return {"benchmark": "directory", "stores": stores, "rounds": rounds, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    print(json.dumps(run(args.stores, args.rounds, args.seed), ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
