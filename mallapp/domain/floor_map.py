"""The floor plan for shoppers: the floors in use and everything to draw one of them (public, no token).

What the mini-program draws routes on (docs/directory.md, "The floor plan for shoppers"). Only what any
shopper may see: floors, stores, the walkable graph's corridors, landings, entrances and amenities. No
beacons, gateways, zones other than a store's outline, or member data ever come from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, aliased

from mallapp.domain.floors import Floor
from mallapp.domain.parking.models import CarPark, ParkingLevel
from mallapp.domain.venue import Store, Zone
from mallapp.domain.wayfinding.store import WayfindingEdge, WayfindingNode, graph_version
from mallapp.errors import NotFound

_FLOOR_TEXT = re.compile(r"^(?:(-?\d{1,3})|([LB])(\d{1,3}))$", re.IGNORECASE)
# A car-park level's single name as the demo writes it, Chinese then English: "地下一层 Basement 1".
_BILINGUAL = re.compile(r"^([^\x00-\x7f][^A-Za-z]*?)\s+([A-Za-z].*)$")


@dataclass(frozen=True)
class FloorInfo:
    """One floor in use. ``name_zh``/``name_en`` are None when nobody named it (the API then uses the
    catalogue's default); ``outline_source`` says where the outline comes from: "floor" (ops drew it),
    "hull" (the convex hull of the graph's nodes and the stores on it), "none" (nothing to draw yet)."""

    number: int
    name_zh: str | None
    name_en: str | None
    outline: list[list[float]]
    outline_source: str
    kind: str  # "mall" | "carpark"
    stores: int
    amenities: int


def parse_floor(text: str) -> int | None:
    """A floor as a path names it: its number ("2", "-1") or its name ("L2", "B1", any case); None otherwise."""
    match = _FLOOR_TEXT.match(text.strip())
    if match is None:
        return None
    if match.group(1) is not None:
        return int(match.group(1))
    number = int(match.group(3))
    if number == 0:
        return None
    return -number if match.group(2).upper() == "B" else number


def split_level_name(name: str) -> tuple[str, str]:
    """A car-park level's name as (zh-CN, English): "地下一层 Basement 1" splits in two; any other is both."""
    match = _BILINGUAL.match(name.strip())
    return (match.group(1).strip(), match.group(2).strip()) if match else (name.strip(), name.strip())


def hull(points: Iterable[tuple[float, float]]) -> list[list[float]]:
    """The convex hull, counter-clockwise (monotone chain); fewer than three distinct points give no outline."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return []

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    def chain(ordered: list[tuple[float, float]]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for p in ordered:
            while len(out) >= 2 and cross(out[-2], out[-1], p) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]

    ring = chain(pts) + chain(pts[::-1])
    return [list(p) for p in ring] if len(ring) >= 3 else []


def floors(session: Session, only: int | None = None) -> list[FloorInfo]:
    """Every floor in use, lowest first: one ops defined, or with an active store, a graph node, or a level of an
    active car park. With ``only``, that floor alone (an empty list when it is not in use). Five reads."""
    defined = {f.number: f for f in session.scalars(select(Floor).where(*_only(Floor.number, only)))}
    store_counts = dict(session.execute(select(Store.floor, func.count()).where(Store.active, *_only(Store.floor, only))
                                        .group_by(Store.floor)).all())
    node_rows = session.execute(select(WayfindingNode.floor, func.count(WayfindingNode.amenity))
                                .where(*_only(WayfindingNode.floor, only)).group_by(WayfindingNode.floor)).all()
    amenity_counts = {f: n for f, n in node_rows}
    levels: dict[int, str] = {}
    for number, name in session.execute(select(ParkingLevel.floor, ParkingLevel.name)
                                        .join(CarPark, CarPark.id == ParkingLevel.car_park_id)
                                        .where(CarPark.active, *_only(ParkingLevel.floor, only))
                                        .order_by(ParkingLevel.id)):
        levels.setdefault(number, name)
    numbers = set(defined) | set(store_counts) | set(amenity_counts) | set(levels)
    hulls = _hulls(session, numbers - set(defined))
    out = []
    for n in sorted(numbers):
        defined_floor = defined.get(n)
        if defined_floor is not None:
            zh, en = defined_floor.name, defined_floor.name_en
            outline, source = [list(p) for p in defined_floor.outline], "floor"
        else:
            zh, en = split_level_name(levels[n]) if n in levels else (None, None)
            outline = hulls.get(n, [])
            source = "hull" if outline else "none"
        kind = "carpark" if n in levels and not store_counts.get(n) else "mall"
        out.append(FloorInfo(n, zh or None, en or None, outline, source, kind, store_counts.get(n, 0),
                             amenity_counts.get(n, 0)))
    return out


def _only(column, only: int | None) -> tuple:  # type: ignore[no-untyped-def]
    return () if only is None else (column == only,)


def _hulls(session: Session, numbers: set[int]) -> dict[int, list[list[float]]]:
    """The outline of floors nobody drew: the hull of their graph nodes and active stores. Two reads."""
    if not numbers:
        return {}
    points: dict[int, list[tuple[float, float]]] = {n: [] for n in numbers}
    for floor, x, y in session.execute(select(WayfindingNode.floor, WayfindingNode.x, WayfindingNode.y)
                                       .where(WayfindingNode.floor.in_(numbers))):
        points[floor].append((x, y))
    for floor, x, y in session.execute(select(Store.floor, Store.x, Store.y)
                                       .where(Store.active, Store.floor.in_(numbers))):
        points[floor].append((x, y))
    return {n: hull(p) for n, p in points.items()}


# --- one floor's map -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MapNode:
    id: str
    floor: int
    x: float
    y: float
    kind: str
    amenity: str | None
    name: str
    name_en: str


@dataclass(frozen=True, slots=True)
class MapStoreRow:
    """The columns of an active store the map draws."""

    id: int
    name: str
    name_en: str
    unit: str
    category: str
    x: float
    y: float
    hours: dict[str, list[list[str]]] | None


@dataclass(frozen=True)
class MapStore:
    store: MapStoreRow
    outline: list[list[float]] | None  # its active store zone's polygon, when one exists


@dataclass(frozen=True)
class Path:
    """An open walkable edge on the floor, as drawn: its polyline in plan metres."""

    kind: str
    coords: list[list[float]]
    oneway: bool


@dataclass(frozen=True)
class Landing:
    """Where a floor change starts or ends on this floor: a node with open edges of ``kind`` to ``floors``."""

    node: MapNode
    kind: str  # lift, stairs, escalator, ramp
    floors: list[int] = field(default_factory=list)
    up: bool = False  # some open edge of this kind rises from here (an escalator may run one way only)
    down: bool = False


@dataclass(frozen=True)
class FloorGraph:
    """The graph's part of a floor's map: it changes only with the graph's version."""

    version: int
    amenities: list[MapNode]
    entrances: list[MapNode]
    paths: list[Path]
    landings: list[Landing]


@dataclass(frozen=True)
class FloorVenue:
    """The venue's part of a floor's map: the floor and its active stores."""

    floor: FloorInfo
    stores: list[MapStore]


def floor_venue(session: Session, number: int) -> FloorVenue:
    """Floor ``number`` and its active stores with their store zones' outlines, or NotFound
    ``floor_map.unknown_floor`` when the floor is not in use. Seven reads whatever the floor's size."""
    found = floors(session, only=number)
    if not found:
        raise NotFound(f"no floor {number} in use", code="floor_map.unknown_floor", details={"floor": number})
    stores = [MapStoreRow(*row) for row in session.execute(
        select(Store.id, Store.name, Store.name_en, Store.unit, Store.category, Store.x, Store.y, Store.hours)
        .where(Store.active, Store.floor == number).order_by(Store.unit, Store.id))]
    outlines: dict[int, list[list[float]]] = {}
    if stores:
        for store_id, polygon in session.execute(
                select(Zone.store_id, Zone.polygon).where(Zone.active, Zone.kind == "store", Zone.floor == number,
                                                          Zone.store_id.in_([s.id for s in stores]))
                .order_by(Zone.id)):
            if polygon and len(polygon) >= 3:
                outlines.setdefault(store_id, [list(p) for p in polygon])
    return FloorVenue(found[0], [MapStore(s, outlines.get(s.id)) for s in stores])


def floor_graph(session: Session, number: int) -> FloorGraph:
    """The graph on floor ``number``: its amenities and entrances, its open corridors (closed edges are left out),
    and its landings of open floor changes. Three reads: the version, the floor's nodes, the open edges touching
    it. A floor the graph does not reach gives empty lists."""
    version = graph_version(session)
    # Columns, not entities: a node's properties (JSON) are the export's, not the map's.
    nodes = {row.id: MapNode(*row) for row in session.execute(
        select(WayfindingNode.id, WayfindingNode.floor, WayfindingNode.x, WayfindingNode.y, WayfindingNode.kind,
               WayfindingNode.amenity, WayfindingNode.name, WayfindingNode.name_en)
        .where(WayfindingNode.floor == number).order_by(WayfindingNode.id))}
    near, far = aliased(WayfindingNode), aliased(WayfindingNode)
    paths: list[Path] = []
    landings: dict[tuple[str, str], dict] = {}
    edges = session.execute(
        select(WayfindingEdge.a, WayfindingEdge.b, WayfindingEdge.kind, WayfindingEdge.coords, WayfindingEdge.oneway,
               near.floor, far.floor)
        .join(near, near.id == WayfindingEdge.a).join(far, far.id == WayfindingEdge.b)
        .where(WayfindingEdge.closed.is_(False), or_(near.floor == number, far.floor == number))
        .order_by(WayfindingEdge.id))
    for a, b, kind, coords, oneway, floor_a, floor_b in edges:
        if floor_a == floor_b:
            paths.append(Path(kind, coords, bool(oneway)))  # coords: [[x, y], ...] as imported (checked then)
            continue
        here, other, leaves = (a, floor_b, True) if floor_a == number else (b, floor_a, not oneway)
        entry = landings.setdefault((here, kind), {"floors": set(), "up": False, "down": False})
        entry["floors"].add(other)
        # From this landing one can go to ``other`` unless the edge is one-way towards here.
        if leaves:
            entry["up" if other > number else "down"] = True
    return FloorGraph(
        version=version,
        amenities=[n for n in nodes.values() if n.amenity is not None],
        entrances=[n for n in nodes.values() if n.kind == "entrance"],
        paths=paths,
        landings=[Landing(nodes[node_id], kind, sorted(v["floors"]), v["up"], v["down"])
                  for (node_id, kind), v in sorted(landings.items())])
