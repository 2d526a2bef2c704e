"""``python -m benchmarks.wayfinding_graph``: the walkable graph's import, load_graph and graph_version on a mall of
2,000 nodes over five levels, against a bare one-row read in the same run.

    python -m benchmarks.wayfinding_graph [--side 20] [--repeat 50] [--database sqlite:////tmp/graph.db]

Builds five levels (B2, B1, 1, 2, 3) of a side x side grid of corridor junctions 3 m apart (2,000 nodes at side
20), joined by a lift and stairs at opposite corners, in a fresh database (a SQLite file in a temporary folder
unless ``--database`` names one). Times one import (``store.replace_graph``: reading, the whole-graph checks,
the writes), then ``load_graph`` (what a process pays once per version) and ``graph_version`` (what it pays
per route to know its cached Graph is current), each in its own transaction, against ``SELECT 1`` in a
transaction. Prints one JSON object with p50 and p95 in milliseconds and the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from benchmarks.foundation import timed
from mallapp.domain import models
from mallapp.domain.wayfinding import store
from mallapp.settings import WayfindingSettings

LEVELS = (-2, -1, 1, 2, 3)
NOW = datetime(2026, 12, 5, tzinfo=UTC)


def grid(side: int, levels: tuple[int, ...] = LEVELS, step: float = 3.0) -> dict[str, Any]:
    """The benchmark's mall as a graph file."""
    features: list[dict[str, Any]] = []
    edges: list[tuple[str, str, str, str]] = []
    for floor in levels:
        for i in range(side):
            for j in range(side):
                features.append({"type": "Feature", "id": f"{floor}.{i}.{j}", "properties": {
                    "level": str(floor), "indoor": "corridor"}, "geometry": {"type": "Point",
                                                                           "coordinates": [i * step, j * step]}})
                if i + 1 < side:
                    edges.append((f"{floor}.{i}.{j}", f"{floor}.{i + 1}.{j}", str(floor), "corridor"))
                if j + 1 < side:
                    edges.append((f"{floor}.{i}.{j}", f"{floor}.{i}.{j + 1}", str(floor), "corridor"))
    corner = side - 1
    for low, high in zip(levels, levels[1:], strict=False):
        level = f"{low};{high}"
        edges.append((f"{low}.0.0", f"{high}.0.0", level, "elevator"))
        edges.append((f"{low}.{corner}.{corner}", f"{high}.{corner}.{corner}", level, "steps"))
    points = {f["id"]: f["geometry"]["coordinates"] for f in features}
    features += [{"type": "Feature", "id": f"e{k}", "properties": {"level": level, "highway": highway,
                                                                   "mall:from": a, "mall:to": b},
                  "geometry": {"type": "LineString", "coordinates": [points[a], points[b]]}}
                 for k, (a, b, level, highway) in enumerate(edges)]
    return {"type": "FeatureCollection", "features": features}


def arguments(prog: str, repeat: int) -> argparse.ArgumentParser:
    """The options both graph benchmarks take (this one and benchmarks.ops_wayfinding_page)."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--side", type=int, default=20, help="junctions along each side of a level (20: 2,000 nodes)")
    parser.add_argument("--repeat", type=int, default=repeat)
    parser.add_argument("--database", default="", help="a database URL (default: a SQLite file in a temp folder)")
    return parser


@contextmanager
def graph_database(database: str, side: int) -> Iterator[tuple[sessionmaker[Session], str, Any, float]]:
    """A fresh schema with the grid graph imported: (sessions, dialect name, the import's answer, import ms)."""
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(database or f"sqlite:///{Path(folder) / 'graph.db'}")
        try:
            models.metadata.drop_all(engine)
            models.metadata.create_all(engine)
            sessions = sessionmaker(engine)
            doc = grid(side)
            started = time.perf_counter()
            with sessions.begin() as session:
                change = store.replace_graph(session, doc, by=None, now=NOW, costs=WayfindingSettings())
            yield sessions, engine.dialect.name, change, (time.perf_counter() - started) * 1000
        finally:
            engine.dispose()


def each_in_a_transaction(sessions: sessionmaker[Session], work: Callable[[Session], Any],
                          repeat: int) -> dict[str, float]:
    """p50 and p95 ms of ``work`` in a transaction of its own, ``repeat`` times (benchmarks.foundation.timed)."""
    def once(_i: int) -> None:
        with sessions.begin() as session:
            work(session)
    return timed(repeat, once)


def select_1(session: Session) -> Any:
    return session.execute(text("SELECT 1")).scalar()


def main(argv: list[str] | None = None) -> int:
    args = arguments("python -m benchmarks.wayfinding_graph", repeat=50).parse_args(argv)
    with graph_database(args.database, args.side) as (sessions, dialect, change, import_ms):
        baseline = each_in_a_transaction(sessions, select_1, args.repeat)
        load = each_in_a_transaction(sessions, store.load_graph, args.repeat)
        version = each_in_a_transaction(sessions, store.graph_version, args.repeat)
    print(json.dumps({
        "machine": platform.machine(), "python": platform.python_version(), "database": dialect,
        "nodes": change.nodes, "edges": change.edges, "levels": len(LEVELS), "import_ms": round(import_ms, 1),
        "baseline_select_1": baseline, "load_graph": load, "graph_version": version,
        "load_graph_p50_over_baseline": round(load["p50_ms"] / baseline["p50_ms"], 1),
        "graph_version_p50_over_baseline": round(version["p50_ms"] / baseline["p50_ms"], 2),
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
