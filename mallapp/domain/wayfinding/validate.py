"""The checks that need the whole graph: ends exist, floor changes typed, one connected graph, every store a door,
every placed bay near a node. Pure functions over the read features and the venue's stores and bays.

Connected means strongly connected over the open edges (closed ones left out, escalators one way): from every
node a member can reach every other, which also makes every store's door and every snapped bay reachable.
Step-free reachability (no stairs, no escalators) is a warning, not an error: a mall may have a corner only
stairs reach, and closing a lift for repair must stay possible (docs/wayfinding.md, "Edits").
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from mallapp.domain.venue_admin import floor_name
from mallapp.domain.wayfinding.features import EdgeSpec, NodeSpec, level_text, problem
from mallapp.domain.wayfinding.graph import STEPPED

FLOOR_CHANGES = frozenset({"lift", "stairs", "escalator", "ramp"})


@dataclass(frozen=True)
class StoreRef:
    id: int
    unit: str
    floor: int
    x: float
    y: float
    active: bool


@dataclass(frozen=True)
class BayRef:
    id: int
    code: str
    floor: int
    x: float | None
    y: float | None


@dataclass
class Checked:
    problems: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    node_store: dict[str, int] = field(default_factory=dict)  # a door node -> its store
    bay_nodes: dict[int, str] = field(default_factory=dict)


def store_by_unit(stores: Iterable[StoreRef]) -> dict[str, StoreRef]:
    """The store each unit names; an active store wins over an inactive one with the same unit."""
    found: dict[str, StoreRef] = {}
    for store in sorted(stores, key=lambda s: (s.active, -s.id)):
        if store.unit:
            found[store.unit] = store
    return found


def snap(nodes: Sequence[NodeSpec], bays: Iterable[BayRef], within_m: float) -> tuple[dict[int, str], list[BayRef]]:
    """Each placed bay's nearest node on its floor within ``within_m`` (a grid of cells that size), and the
    placed bays no node is near."""
    cells: dict[tuple[int, int, int], list[NodeSpec]] = defaultdict(list)
    for node in nodes:
        cells[node.floor, math.floor(node.x / within_m), math.floor(node.y / within_m)].append(node)
    found: dict[int, str] = {}
    far: list[BayRef] = []
    for bay in bays:
        if bay.x is None or bay.y is None:
            continue
        cx, cy = math.floor(bay.x / within_m), math.floor(bay.y / within_m)
        best: tuple[float, str] | None = None
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for node in cells.get((bay.floor, cx + dx, cy + dy), ()):
                    d = math.hypot(node.x - bay.x, node.y - bay.y)
                    if d <= within_m and (best is None or (d, node.id) < best):
                        best = (d, node.id)
        if best is None:
            far.append(bay)
        else:
            found[bay.id] = best[1]
    return found, far


def directed(nodes: Iterable[NodeSpec], edges: Iterable[EdgeSpec], *, step_free: bool = False) -> nx.DiGraph:
    """The open edges as a directed graph (both ways unless one-way), optionally without stairs and escalators."""
    graph = nx.DiGraph()
    graph.add_nodes_from(node.id for node in nodes)
    for edge in edges:
        if edge.closed or (step_free and edge.kind in STEPPED):
            continue
        graph.add_edge(edge.a, edge.b)
        if not edge.oneway:
            graph.add_edge(edge.b, edge.a)
    return graph


def _components(graph: nx.DiGraph, by_id: dict[str, NodeSpec]) -> list[list[str]]:
    """The strongly connected components, largest first (ties: the one with the smallest node id)."""
    parts = [sorted(part) for part in nx.strongly_connected_components(graph)]
    return sorted(parts, key=lambda part: (-len(part), part[0]))


def _describe(part: list[str], by_id: dict[str, NodeSpec]) -> str:
    floors = sorted({by_id[n].floor for n in part})
    return f"{len(part)} node(s) on {', '.join(floor_name(f) for f in floors)}"


def check(nodes: Sequence[NodeSpec], edges: Sequence[EdgeSpec], stores: Sequence[StoreRef], bays: Sequence[BayRef],
          snap_m: float) -> Checked:
    """Everything wrong with this graph for this venue (problems refuse it; warnings are said and accepted)."""
    out = Checked()
    by_id = {node.id: node for node in nodes}
    units = store_by_unit(stores)
    for node in nodes:
        if node.unit is None:
            continue
        store = units.get(node.unit)
        if store is None:
            out.problems.append(problem(node.id, "unknown_store", f"mall:store={node.unit!r} names no store's unit"))
        else:
            out.node_store[node.id] = store.id
    usable: list[EdgeSpec] = []
    for edge in edges:
        missing = [end for end in (edge.a, edge.b) if end not in by_id]
        if missing:
            out.problems.append(problem(edge.id, "edge_node_missing",
                                        f"the edge's end {missing[0]!r} is not a node of the graph"))
            continue
        if edge.a == edge.b:
            out.problems.append(problem(edge.id, "edge_loop", "an edge joins two different nodes"))
            continue
        fa, fb = by_id[edge.a].floor, by_id[edge.b].floor
        if fa != fb and edge.kind not in FLOOR_CHANGES:
            out.problems.append(problem(edge.id, "untyped_floor_change",
                                        f"the edge joins {floor_name(fa)} and {floor_name(fb)} but is not a lift, "
                                        "stairs, an escalator or a ramp (highway=elevator|steps, ramp=yes)"))
            continue
        if fa == fb and edge.kind in FLOOR_CHANGES:
            out.problems.append(problem(edge.id, "floor_change_same_floor",
                                        f"a {edge.kind} joins two nodes on the same floor ({floor_name(fa)})"))
            continue
        if sorted(set(edge.levels)) != sorted({fa, fb}):
            out.problems.append(problem(edge.id, "level_mismatch",
                                        f"level={level_text(edge.levels)!r} but the ends are on "
                                        f"{level_text(tuple(sorted({fa, fb})))!r}"))
            continue
        usable.append(edge)
    doors = {store_id for store_id in out.node_store.values()}
    for store in stores:
        if store.active and store.id not in doors:
            how = (f"door=yes + mall:store={store.unit}" if store.unit else "give the store a unit, then a door "
                   "node with door=yes + mall:store=<unit>")
            out.problems.append({**problem(None, "store_without_door",
                                           f"the store {store.id} (unit {store.unit or 'none'}) has no door node "
                                           f"({how})"), "store": store.unit})
    if nodes:
        parts = _components(directed(nodes, usable), by_id)
        for part in parts[1:]:
            out.problems.append(problem(part[0], "disconnected",
                                        f"{_describe(part, by_id)} cannot be reached from the rest of the graph, "
                                        "or cannot reach it (open edges only; escalators one way)"))
        if len(parts) == 1:
            free = _components(directed(nodes, usable, step_free=True), by_id)
            for part in free[1:]:
                out.warnings.append(problem(part[0], "step_free_unreachable",
                                            f"{_describe(part, by_id)} cannot be reached from the rest without "
                                            "stairs or escalators"))
    out.bay_nodes, far = snap(nodes, bays, snap_m)
    for bay in far:
        out.problems.append({**problem(None, "bay_not_snapped",
                                       f"bay {bay.code} at ({bay.x:g}, {bay.y:g}) on {floor_name(bay.floor)} is "
                                       f"farther than {snap_m:g} m from every node of its floor"), "bay": bay.code})
    unplaced: dict[int, int] = defaultdict(int)
    for bay in bays:
        if bay.x is None or bay.y is None:
            unplaced[bay.floor] += 1
    for floor, count in sorted(unplaced.items()):
        out.warnings.append(problem(None, "bays_unplaced", f"{count} active bay(s) on {floor_name(floor)} have no "
                                                           "position yet: routes cannot start or end at them"))
    return out
