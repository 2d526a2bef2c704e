"""A generated mall's walkable graph, for the route tests and ``benchmarks/routes.py`` (not the demo mall's).

Three shopping floors (L1–L3) and two car-park levels (B1, B2), each a grid of corridor (or aisle)
junctions a few metres apart with store doors (or parking bays) off them; four lift cores from B2 to L3,
two stairwells from B2 to L3, escalator pairs (one up, one down) between the shopping floors, and a ramp
between B1 and B2. Seeded: one seed, one graph. The default size is a little over 2,000 nodes.
"""

from __future__ import annotations

import math
import random

from mallapp.domain.wayfinding.graph import Edge, Graph, Node

PACE_MPS = 1.2
SHOP_FLOORS = (1, 2, 3)
PARK_FLOORS = (-2, -1)


def _label(floor: int) -> str:
    return f"B{-floor}" if floor < 0 else f"L{floor}"


def synthetic_mall(seed: int = 17, *, cols: int = 14, rows: int = 8, spacing_m: float = 8.0,
                   doors_per_floor: int = 200, bays_per_level: int = 400, sparse: float = 0.15) -> Graph:
    """The graph; ``sparse`` of the grid's corridor edges are left out (never one the grid needs to stay whole)."""
    rng = random.Random(seed)
    nodes: dict[str, Node] = {}
    edges: list[Edge] = []
    store_nodes: dict[int, tuple[str, ...]] = {}
    bay_nodes: dict[int, str] = {}

    def walk(a: str, b: str) -> None:
        na, nb = nodes[a], nodes[b]
        length = math.hypot(na.x - nb.x, na.y - nb.y)
        edges.append(Edge(a, b, "walk", round(length, 2), round(length / PACE_MPS, 2)))

    store_id = bay_id = 0
    for floor in (*PARK_FLOORS, *SHOP_FLOORS):
        tag = _label(floor)
        grid = {(c, r): f"{tag}-j{c}-{r}" for c in range(cols) for r in range(rows)}
        for (c, r), node_id in grid.items():
            nodes[node_id] = Node(node_id, floor, c * spacing_m, r * spacing_m, "junction")
        # A spanning tree of the grid (random), then most of the other corridor edges.
        seen, frontier, kept = {(0, 0)}, [(0, 0)], set()
        while frontier:
            c, r = frontier.pop(rng.randrange(len(frontier)))
            for dc, dr in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                nxt = (c + dc, r + dr)
                if nxt in grid and nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
                    kept.add(frozenset({(c, r), nxt}))
        for (c, r) in grid:
            for nxt in ((c + 1, r), (c, r + 1)):
                pair = frozenset({(c, r), nxt})
                if nxt in grid and (pair in kept or rng.random() >= sparse):
                    walk(grid[(c, r)], grid[nxt])
        count = bays_per_level if floor < 0 else doors_per_floor
        for k in range(count):
            c, r = rng.randrange(cols), rng.randrange(rows)
            dx, dy = rng.uniform(-3, 3), rng.uniform(-3, 3)
            base = nodes[grid[(c, r)]]
            if floor < 0:
                bay_id += 1
                node_id = f"{tag}-bay{k}"
                nodes[node_id] = Node(node_id, floor, base.x + dx, base.y + dy, "junction",
                                      name=f"{tag}-C{k:03}车位", name_en=f"bay {tag}-C{k:03}")
                bay_nodes[bay_id] = node_id
            else:
                store_id += 1
                node_id = f"{tag}-door{k}"
                nodes[node_id] = Node(node_id, floor, base.x + dx, base.y + dy, "door", store_id=store_id)
                store_nodes[store_id] = (node_id,)
            walk(grid[(c, r)], node_id)
        if floor > 0:
            for k, (c, r) in enumerate(((2, 1), (cols - 3, rows - 2))):
                node_id = f"{tag}-wc{k}"
                nodes[node_id] = Node(node_id, floor, c * spacing_m + 2, r * spacing_m + 2, "amenity",
                                      amenity="toilets", name="洗手间", name_en="toilets")
                walk(grid[(c, r)], node_id)
        if floor == 1:
            nodes["L1-desk"] = Node("L1-desk", 1, cols * spacing_m / 2, 1.0, "amenity", amenity="service_desk",
                                    name="服务台", name_en="service desk")
            walk(grid[(cols // 2, 0)], "L1-desk")

    levels = (*PARK_FLOORS, *SHOP_FLOORS)
    cores = [(0, 0), (cols - 1, 0), (0, rows - 1), (cols - 1, rows - 1)]
    for k, (c, r) in enumerate(cores, start=1):  # lifts: every level, 20 s waiting and 5 s a floor
        chain = []
        for floor in levels:
            node_id = f"{_label(floor)}-lift{k}"
            nodes[node_id] = Node(node_id, floor, c * spacing_m + 1.5, r * spacing_m + 1.5, "lift",
                                  amenity="carpark_lift" if floor < 0 else "lift", name=f"{k}号电梯",
                                  name_en=f"Lift {k}")
            walk(f"{_label(floor)}-j{c}-{r}", node_id)
            chain.append(node_id)
        for a, b in zip(chain, chain[1:], strict=False):
            edges.append(Edge(a, b, "lift", 4.5, 25.0))
    for k, (c, r) in enumerate(((cols // 2, 0), (cols // 2, rows - 1)), start=1):  # stairs: 20 s a floor
        chain = []
        for floor in levels:
            node_id = f"{_label(floor)}-stairs{k}"
            nodes[node_id] = Node(node_id, floor, c * spacing_m - 1.5, r * spacing_m, "stairs",
                                  name=f"{k}号楼梯", name_en=f"Stairs {k}")
            walk(f"{_label(floor)}-j{c}-{r}", node_id)
            chain.append(node_id)
        for a, b in zip(chain, chain[1:], strict=False):
            edges.append(Edge(a, b, "stairs", 9.0, 20.0))
    for lower, upper in zip(SHOP_FLOORS, SHOP_FLOORS[1:], strict=False):  # escalators: one up, one down
        c, r = cols // 2 - 2, rows // 2
        for way, (a_floor, b_floor) in (("up", (lower, upper)), ("down", (upper, lower))):
            a, b = f"{_label(a_floor)}-esc{lower}{way}", f"{_label(b_floor)}-esc{lower}{way}-top"
            shift = 0.0 if way == "up" else 4.0
            nodes[a] = Node(a, a_floor, c * spacing_m + shift, r * spacing_m - 2, "escalator")
            nodes[b] = Node(b, b_floor, c * spacing_m + shift + 10, r * spacing_m - 2, "escalator")
            walk(f"{_label(a_floor)}-j{c}-{r}", a)
            walk(f"{_label(b_floor)}-j{c + 1}-{r}", b)
            edges.append(Edge(a, b, "escalator", 12.0, 24.0, oneway=True))
    nodes["B1-ramp"] = Node("B1-ramp", -1, 2.0, (rows - 1) * spacing_m / 2, "ramp")
    nodes["B2-ramp"] = Node("B2-ramp", -2, 20.0, (rows - 1) * spacing_m / 2, "ramp")
    walk(f"B1-j0-{rows // 2}", "B1-ramp")
    walk(f"B2-j2-{rows // 2}", "B2-ramp")
    edges.append(Edge("B1-ramp", "B2-ramp", "ramp", 20.0, 18.0))
    return Graph(version=seed, nodes=nodes, edges=tuple(edges), store_nodes=store_nodes, bay_nodes=bay_nodes)
