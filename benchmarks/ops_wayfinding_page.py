"""``python -m benchmarks.ops_wayfinding_page``: the walkable graph page's two graph reads on a 2,000-node mall.

    python -m benchmarks.ops_wayfinding_page [--side 20] [--repeat 30] [--database sqlite:////tmp/graph.db]

The page (``/console/ops/wayfinding``) reads the whole graph file (``GET /api/v1/ops/wayfinding/graph``) and the
summary (``GET /api/v1/ops/wayfinding/graph/summary``: the stored graph checked again, counts per floor). The
consoles' benchmark (benchmarks/consoles.py) times the page's ``data=`` on a set with no graph; this one imports
``benchmarks.wayfinding_graph``'s five-level grid (2,000 nodes, 3,808 edges at side 20) and times the domain calls
those two endpoints make, in their own transactions, plus the export's JSON encoding (what the handler sends),
against ``SELECT 1`` in a transaction measured in the same run. Prints one JSON object, p50/p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from benchmarks.wayfinding_graph import NOW, _summary, _times, grid
from mallapp.domain import models
from mallapp.domain.wayfinding import store
from mallapp.settings import WayfindingSettings


def _export(session: Session) -> int:
    return len(json.dumps(store.export_graph(session), ensure_ascii=False))


def _graph_summary(session: Session) -> Any:
    row = store.state(session)
    return store.revalidate(session, row.bay_snap_m), store.floor_counts(session)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ops_wayfinding_page")
    parser.add_argument("--side", type=int, default=20, help="junctions along each side of a level (20: 2,000 nodes)")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--database", default="", help="a database URL (default: a SQLite file in a temp folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(args.database or f"sqlite:///{Path(folder) / 'graph.db'}")
        models.metadata.drop_all(engine)
        models.metadata.create_all(engine)
        sessions = sessionmaker(engine)
        with sessions.begin() as session:
            change = store.replace_graph(session, grid(args.side), by=None, now=NOW, costs=WayfindingSettings())
        with sessions.begin() as session:
            size = _export(session)
        baseline = _summary(_times(sessions, lambda s: s.execute(text("SELECT 1")).scalar(), args.repeat))
        started = time.perf_counter()
        export = _summary(_times(sessions, _export, args.repeat))
        summary = _summary(_times(sessions, _graph_summary, args.repeat))
        wall_s = time.perf_counter() - started
        engine.dispose()
    print(json.dumps({
        "machine": platform.machine(), "python": platform.python_version(), "database": engine.dialect.name,
        "nodes": change.nodes, "edges": change.edges, "export_bytes": size, "baseline_select_1": baseline,
        "graph_file_read_and_encode": export, "graph_summary": summary, "wall_s": round(wall_s, 1),
        "page_graph_reads_p95_ms": round(export["p95_ms"] + summary["p95_ms"], 1),
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
