"""The demo mall's walkable graph: the generator of ``config/demo_graph.geojson`` and its seeding.

Three mall floors (1, 2, 3; 60 x 30 m) and the car park's levels B1 and B2, in the plan's metres:

- on each mall floor a corridor along y = 15 with junctions at x = 4, 10, 20, 30, 34, 42, 44, 50, 56, and
  every store's door 3 m from the store's point toward it (stores by unit, as config/demo_mall.toml and the
  directory place them);
- floor 1: the north and south entrances (30, 29) and (30, 1), the service desk; toilets on every floor, a
  nursing room on floor 2;
- lift 1 at (20, 12) serving B2..3 (step-free), escalators one up and one down between 1-2 and 2-3, the west
  stairs 1..3 at (2, 8), the east stairs B1..1 at (58, 10), a pedestrian ramp B1..B2 at (2, 16);
- the car park: aisles along y = 6, 16 (and 26 on B1) with junctions every 5 m, cross aisles at x = 20 and
  x = 58; bays 2.5 m apart on both sides of each aisle, 3.5 m from its centre line (:func:`bay_positions`),
  so each bay snaps to an aisle junction within [wayfinding] bay_snap_m.

``python -m mallapp.devtools.demo_graph`` writes the file; a unit test checks the committed file is what the
generator makes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mallapp.domain.venue import Store
from mallapp.domain.wayfinding import store as graph_store
from mallapp.runtime import Runtime
from mallapp.settings import CONFIG_DIR

DEMO_GRAPH_FILE = CONFIG_DIR / "demo_graph.geojson"
MALL_FLOORS = (1, 2, 3)
# unit -> (floor, x, y): the demo stores' points (config/demo_mall.toml; floor 3 and L2-05 come from the directory)
DEMO_STORES = {
    "L1-01": (1, 4.0, 26.0), "L1-02": (1, 10.0, 24.0), "L1-05": (1, 50.0, 24.0), "L1-08": (1, 50.0, 6.0),
    "L2-01": (2, 30.0, 20.0), "L2-05": (2, 50.0, 24.0),
    "L3-01": (3, 50.0, 24.0), "L3-02": (3, 10.0, 24.0), "L3-03": (3, 30.0, 6.0),
}
CORRIDOR_Y = 15.0
CORRIDOR_X = (4.0, 10.0, 20.0, 30.0, 34.0, 42.0, 44.0, 50.0, 56.0)
# level code -> (floor, aisle ys): B1 has three aisles (120 bays), B2 two (80 bays)
CAR_PARK = {"B1": (-1, (6.0, 16.0, 26.0)), "B2": (-2, (6.0, 16.0))}
AISLE_X = tuple(5.0 + 5 * i for i in range(11))  # 5 .. 55
BAY_X = tuple(x for x in (5.0 + 2.5 * i for i in range(21)) if x != 20.0)  # 20 a side: none in front of the lift
BAY_OFFSET = 3.5


def bay_positions(level: str) -> Iterator[tuple[float, float]]:
    """Where the level's bays C001, C002… are: aisle by aisle (south first), the south side then the north side,
    west to east."""
    for aisle in CAR_PARK[level][1]:
        for side in (-BAY_OFFSET, BAY_OFFSET):
            for x in BAY_X:
                yield x, aisle + side


def level_name(floor: int) -> str:
    return f"B{-floor}" if floor < 0 else f"L{floor}"


class _Builder:
    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: list[dict[str, Any]] = []

    def node(self, fid: str, floor: int, x: float, y: float, **tags: str) -> str:
        assert fid not in self.nodes, fid
        props = {"level": str(floor), **{k.replace("__", ":"): v for k, v in tags.items()}}
        self.nodes[fid] = {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [x, y]},
                           "properties": props}
        return fid

    def edge(self, a: str, b: str, **tags: str) -> None:
        na, nb = self.nodes[a], self.nodes[b]
        floors = sorted({int(na["properties"]["level"]), int(nb["properties"]["level"])})
        props = {"level": ";".join(str(f) for f in floors), "mall:from": a, "mall:to": b,
                 **{k.replace("__", ":"): v for k, v in tags.items()}}
        self.edges.append({"type": "Feature", "id": f"e-{a}-{b}", "properties": props, "geometry": {
            "type": "LineString", "coordinates": [na["geometry"]["coordinates"], nb["geometry"]["coordinates"]]}})

    def walk(self, a: str, b: str) -> None:
        self.edge(a, b, highway="corridor")


def _mall_floor(g: _Builder, floor: int) -> None:
    p = level_name(floor)
    junctions = [g.node(f"{p}-j{int(x)}", floor, x, CORRIDOR_Y, indoor="corridor") for x in CORRIDOR_X]
    for a, b in zip(junctions, junctions[1:], strict=False):
        g.walk(a, b)
    at = {x: j for x, j in zip(CORRIDOR_X, junctions, strict=True)}
    for unit, (store_floor, x, y) in DEMO_STORES.items():
        if store_floor != floor:
            continue
        door_y = y - 3 if y > CORRIDOR_Y else y + 3
        door = g.node(f"{p}-door-{unit}", floor, x, door_y, indoor="door", door="yes", mall__store=unit)
        g.walk(at[x], door)
    g.walk(at[56.0], g.node(f"{p}-toilets", floor, 56, 20, amenity="toilets", name="洗手间", name__en="Toilets"))
    g.walk(at[20.0], g.node(f"{p}-lift1", floor, 20, 12, highway="elevator", name="1号电梯", name__en="Lift 1"))
    if floor < 3:
        g.walk(at[34.0], g.node(f"{p}-esc-up", floor, 34, 12, highway="steps", conveying="forward",
                                name="上行扶梯", name__en="Up escalator"))
    if floor > 1:
        g.walk(at[42.0], g.node(f"{p}-esc-up-top", floor, 42, 12, highway="steps", conveying="forward",
                                name="上行扶梯", name__en="Up escalator"))
        g.walk(at[42.0], g.node(f"{p}-esc-down", floor, 42, 18, highway="steps", conveying="forward",
                                name="下行扶梯", name__en="Down escalator"))
    if floor < 3:
        g.walk(at[34.0], g.node(f"{p}-esc-down-foot", floor, 34, 18, highway="steps", conveying="forward",
                                name="下行扶梯", name__en="Down escalator"))
    g.walk(at[4.0], g.node(f"{p}-stairs-w", floor, 2, 8, highway="steps", name="西侧楼梯", name__en="West stairs"))
    if floor == 1:
        g.walk(at[30.0], g.node("L1-entrance-n", 1, 30, 29, entrance="main", name="北门", name__en="North entrance"))
        g.walk(at[30.0], g.node("L1-entrance-s", 1, 30, 1, entrance="main", name="南门", name__en="South entrance"))
        g.walk(at[4.0], g.node("L1-service-desk", 1, 7, 12, mall__amenity="service_desk", name="服务台",
                               name__en="Service desk"))
        g.walk(at[56.0], g.node("L1-stairs-e", 1, 58, 10, highway="steps", name="东侧楼梯", name__en="East stairs"))
    if floor == 2:
        g.walk(at[56.0], g.node("L2-nursing", 2, 56, 10, mall__amenity="nursing_room", name="母婴室",
                                name__en="Nursing room"))


def _car_park_level(g: _Builder, code: str) -> None:
    floor, aisles = CAR_PARK[code]
    for y in aisles:
        row = [g.node(f"{code}-a{int(y)}-{int(x)}", floor, x, y, indoor="corridor") for x in AISLE_X]
        for a, b in zip(row, row[1:], strict=False):
            g.walk(a, b)
        g.walk(row[-1], g.node(f"{code}-x58-{int(y)}", floor, 58, y, indoor="corridor"))
    for a, b in zip(aisles, aisles[1:], strict=False):
        g.walk(f"{code}-a{int(a)}-20", f"{code}-a{int(b)}-20")
        g.walk(f"{code}-x58-{int(a)}", f"{code}-x58-{int(b)}")
    g.walk(f"{code}-a16-20", g.node(f"{code}-lift1", floor, 20, 12, highway="elevator", name="1号电梯",
                                    name__en="Lift 1"))
    g.walk(f"{code}-a16-5", g.node(f"{code}-ramp", floor, 2, 16, ramp="yes", name="人行坡道",
                                   name__en="Pedestrian ramp"))
    if code == "B1":
        g.walk("B1-x58-6", g.node("B1-stairs-e", floor, 58, 10, highway="steps", name="东侧楼梯",
                                  name__en="East stairs"))


def build() -> dict[str, Any]:
    """The demo graph as a FeatureCollection (nodes, then edges)."""
    g = _Builder()
    for code in CAR_PARK:
        _car_park_level(g, code)
    for floor in MALL_FLOORS:
        _mall_floor(g, floor)
    lifts = ["B2-lift1", "B1-lift1", "L1-lift1", "L2-lift1", "L3-lift1"]
    for a, b in zip(lifts, lifts[1:], strict=False):
        g.edge(a, b, highway="elevator", name="1号电梯", name__en="Lift 1")
    for low, high in ((1, 2), (2, 3)):
        lo, hi = level_name(low), level_name(high)
        g.edge(f"{lo}-esc-up", f"{hi}-esc-up-top", highway="steps", conveying="forward", name="上行扶梯",
               name__en="Up escalator")
        g.edge(f"{hi}-esc-down", f"{lo}-esc-down-foot", highway="steps", conveying="forward", name="下行扶梯",
               name__en="Down escalator")
        g.edge(f"{lo}-stairs-w", f"{hi}-stairs-w", highway="steps", name="西侧楼梯", name__en="West stairs")
    g.edge("B1-stairs-e", "L1-stairs-e", highway="steps", name="东侧楼梯", name__en="East stairs")
    g.edge("B2-ramp", "B1-ramp", ramp="yes", incline="up", name="人行坡道", name__en="Pedestrian ramp")
    return {"type": "FeatureCollection", "mall:frame": "plan-metres",
            "features": [*g.nodes.values(), *g.edges]}


def render() -> str:
    """The file's text: one feature per line, so a change to the demo graph reads as a small diff."""
    doc = build()
    head = json.dumps({k: v for k, v in doc.items() if k != "features"}, ensure_ascii=False)[:-1]
    lines = ",\n".join(json.dumps(f, ensure_ascii=False) for f in doc["features"])
    return f'{head}, "features": [\n{lines}\n]}}\n'


def load(path: Path = DEMO_GRAPH_FILE) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def for_units(doc: dict[str, Any], units: set[str]) -> tuple[dict[str, Any], list[str]]:
    """The graph with the doors of stores that do not exist (yet) kept as plain doors; and those units."""
    missing = []
    features = []
    for feature in doc["features"]:
        unit = feature["properties"].get("mall:store")
        if unit is not None and unit not in units:
            missing.append(unit)
            feature = {**feature, "properties": {k: v for k, v in feature["properties"].items() if k != "mall:store"}}
        features.append(feature)
    return {**doc, "features": features}, sorted(missing)


def seed_graph(rt: Runtime, path: Path = DEMO_GRAPH_FILE) -> str:
    """Import the demo graph once (after the stores and the car park's bays exist); an imported or edited graph is
    left as it is. Doors of stores the database lacks are imported as plain doors, and the line says which."""
    with rt.sessions.begin() as session:
        if graph_store.graph_version(session):
            return f"demo walkable graph: version {graph_store.graph_version(session)} already there"
        units = set(session.scalars(select(Store.unit).where(Store.active)))
        doc, missing = for_units(load(path), units)
        change = graph_store.replace_graph(session, doc, by=None, now=rt.now(), costs=rt.settings.wayfinding)
    note = f"; no store for units {', '.join(missing)}: their doors are plain doors" if missing else ""
    return f"demo walkable graph: {change.nodes} nodes, {change.edges} edges, version {change.version}{note}"


def main(argv: list[str] | None = None) -> int:
    """Write config/demo_graph.geojson (or the path given)."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else DEMO_GRAPH_FILE
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
