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

import json
import platform
import time
from typing import Any

from sqlalchemy.orm import Session

from benchmarks.wayfinding_graph import arguments, each_in_a_transaction, graph_database, select_1
from mallapp.domain.wayfinding import store


def _export(session: Session) -> int:
    return len(json.dumps(store.export_graph(session), ensure_ascii=False))


def _graph_summary(session: Session) -> Any:
    row = store.state(session)
    return store.revalidate(session, row.bay_snap_m), store.floor_counts(session)


def main(argv: list[str] | None = None) -> int:
    args = arguments("python -m benchmarks.ops_wayfinding_page", repeat=30).parse_args(argv)
    with graph_database(args.database, args.side) as (sessions, dialect, change, _import_ms):
        with sessions.begin() as session:
            size = _export(session)
        baseline = each_in_a_transaction(sessions, select_1, args.repeat)
        started = time.perf_counter()
        export = each_in_a_transaction(sessions, _export, args.repeat)
        summary = each_in_a_transaction(sessions, _graph_summary, args.repeat)
        wall_s = time.perf_counter() - started
    print(json.dumps({
        "machine": platform.machine(), "python": platform.python_version(), "database": dialect,
        "nodes": change.nodes, "edges": change.edges, "export_bytes": size, "baseline_select_1": baseline,
        "graph_file_read_and_encode": export, "graph_summary": summary, "wall_s": round(wall_s, 1),
        "page_graph_reads_p95_ms": round(export["p95_ms"] + summary["p95_ms"], 1),
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
