"""``python -m benchmarks.routes``: one route on a generated five-level mall, against baselines in the same run.

    python -m benchmarks.routes [--routes 4000] [--seed 17] [--scale 1.0]

Generates a mall (``mallapp.devtools.synthetic_mall``: L1–L3 and car-park levels B1, B2, a little over
2,000 graph nodes at scale 1) and compiles it once (``Router``, timed). Then, for seeded random pairs, half
store → car (the store's doors to a bay) and half bay → store, alternating the fastest and step-free
profiles, times ``Router.route`` and, on the same pairs, the steps in Chinese (``steps.describe``: what the
API adds), and this thread's CPU time per route beside the wall time (on a shared machine the wall time's
tail is other processes' time slices; the load average is printed). Baselines, on the same pairs in the same run: networkx's multi-source Dijkstra on the same graph
and profile (a networkx ``DiGraph`` built once), and one primary-key read (``session.get``) on an in-memory
SQLite: the floor of any request that reads the database. Prints one JSON object: p50/p95/max per
measurement in milliseconds, the ratio of the route's p95 to each baseline's p95, and the goal (p95 ≤ 5 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from collections.abc import Callable
from typing import Any

import networkx as nx
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from mallapp.db import Base
from mallapp.devtools.synthetic_mall import synthetic_mall
from mallapp.domain import models  # noqa: F401  (the model registry)
from mallapp.domain.venue import Store
from mallapp.domain.wayfinding.graph import STEPPED, Graph
from mallapp.domain.wayfinding.routes import Place, Router
from mallapp.domain.wayfinding.steps import Label, describe

GOAL_P95_MS = 5.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


def _summary(values: list[float]) -> dict[str, float]:
    return {"p50": _pct(values, 0.5), "p95": _pct(values, 0.95), "max": round(max(values) * 1000, 3)}


def _pairs(graph: Graph, n: int, seed: int) -> list[tuple[str, Place, Place, str]]:
    rng = random.Random(seed)
    stores, bays = list(graph.store_nodes), list(graph.bay_nodes)
    out = []
    for k in range(n):
        store = Place.at_nodes(graph.store_nodes[rng.choice(stores)])
        bay = Place.at_nodes([graph.bay_nodes[rng.choice(bays)]])
        profile = "fastest" if k % 2 == 0 else "step_free"
        out.append(("store_to_car", store, bay, profile) if (k // 2) % 2 == 0 else ("bay_to_store", bay, store,
                                                                                    profile))
    return out


def _networkx(graph: Graph) -> dict[str, nx.DiGraph]:
    out = {}
    for profile in ("fastest", "step_free"):
        g = nx.DiGraph()
        for e in graph.edges:
            if profile == "step_free" and e.kind in STEPPED:
                continue
            arcs = [(e.a, e.b)] if e.oneway or e.kind == "escalator" else [(e.a, e.b), (e.b, e.a)]
            for a, b in arcs:
                if not g.has_edge(a, b) or g[a][b]["weight"] > e.seconds:
                    g.add_edge(a, b, weight=e.seconds)
        out[profile] = g
    return out


def _time(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the doors and bays per level")
    args = parser.parse_args(argv)
    graph = synthetic_mall(args.seed, doors_per_floor=int(200 * args.scale), bays_per_level=int(400 * args.scale))
    floors = sorted({n.floor for n in graph.nodes.values()})
    compile_s = _time(lambda: Router(graph))
    router = Router(graph)
    pairs = _pairs(graph, args.routes, args.seed)
    for _, start, goal, profile in pairs[:200]:  # warm up
        router.route(start, goal, profile)

    routes: dict[str, list[float]] = {"all": [], "fastest": [], "step_free": [], "store_to_car": [],
                                      "bay_to_store": []}
    with_steps: list[float] = []
    cpu: list[float] = []  # this thread's CPU time per route: what the route costs when the machine is shared
    origin, destination = Label("store", "星巴克", "Starbucks", "L2-05"), Label("car", "B2-C058")
    for kind, start, goal, profile in pairs:
        c0, t0 = time.thread_time(), time.perf_counter()
        found = router.route(start, goal, profile)
        took = time.perf_counter() - t0
        cpu.append(time.thread_time() - c0)
        describe(found, graph, "zh-CN", origin, destination)
        with_steps.append(time.perf_counter() - t0)
        for key in ("all", profile, kind):
            routes[key].append(took)

    nxg = _networkx(graph)
    baseline_nx = [_time(lambda s=start, g=goal, p=profile: min(
        (d for n, d in nx.multi_source_dijkstra_path_length(nxg[p], {n for n, _, _ in s.nodes}).items()
         if n in {m for m, _, _ in g.nodes}), default=None)) for _, start, goal, profile in pairs]

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        from datetime import UTC, datetime
        session.add(Store(id=1, name="星巴克", unit="L2-05", floor=2, x=0.0, y=0.0, created_at=datetime.now(UTC)))
        session.commit()
    with Session(engine) as session:
        baseline_pk = []
        for _ in range(len(pairs)):
            session.expunge_all()
            baseline_pk.append(_time(lambda: session.get(Store, 1)))

    p95 = _pct(routes["all"], 0.95)
    report = {
        "benchmark": "routes", "python": platform.python_version(), "networkx": nx.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
        "graph": {"nodes": len(graph.nodes), "edges": len(graph.edges), "levels": len(floors), "floors": floors},
        "compile_ms": round(compile_s * 1000, 1), "routes": len(pairs),
        "route_ms": {key: _summary(values) for key, values in routes.items()},
        "route_cpu_ms": _summary(cpu),
        "route_and_steps_ms": _summary(with_steps),
        "baseline_networkx_dijkstra_ms": _summary(baseline_nx),
        "baseline_primary_key_read_ms": _summary(baseline_pk),
        "ratio_p95_to_networkx": round(p95 / _pct(baseline_nx, 0.95), 2),
        "ratio_p95_to_primary_key_read": round(p95 / _pct(baseline_pk, 0.95), 2),
        "goal_p95_ms": GOAL_P95_MS, "meets_goal": p95 <= GOAL_P95_MS,
    }
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return report


if __name__ == "__main__":
    main()
