"""The mall's walkable graph in the database: its tables, the import and export of the GeoJSON file, ops' edits,
and compiling the current version into a :class:`~mallapp.domain.wayfinding.graph.Graph`.

Service functions in the house style: each takes a Session and never commits. Every change (an import, an
edit, a bay placed) bumps ``wayfinding_graphs.version`` under a row lock, so :func:`graph_version` (one indexed
read) tells a process whether its compiled Graph is still current. Each edge's seconds are computed from
``[wayfinding]`` when it is written and stored with it, so a compiled version is the same in every process.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, SmallInteger, String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime
from mallapp.domain.parking.models import CarPark, ParkingBay, ParkingLevel
from mallapp.domain.venue import Store
from mallapp.domain.wayfinding.features import (
    EdgeSpec,
    NodeSpec,
    floors_crossed,
    parse_level,
    read_collection,
    read_feature,
)
from mallapp.domain.wayfinding.graph import Edge, Graph, Node
from mallapp.domain.wayfinding.validate import BayRef, Checked, StoreRef, check, snap
from mallapp.errors import RuleViolation
from mallapp.settings import WayfindingSettings

STATE_ID = 1  # the one row of wayfinding_graphs: the mall has one graph
MAX_PROBLEMS = 200  # listed in a refusal; the count says how many there were


class WayfindingGraph(Base):
    """The graph's version (bumped by every change) and who imported and last changed it, when."""

    __tablename__ = "wayfinding_graphs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    # [wayfinding] bay_snap_m when the graph was last written: load_graph snaps bays with it.
    bay_snap_m: Mapped[float] = mapped_column(Float)
    imported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    imported_by: Mapped[int | None] = mapped_column(ForeignKey("ops_users.id"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_by: Mapped[int | None] = mapped_column(ForeignKey("ops_users.id"))
    change: Mapped[str] = mapped_column(String(24))  # "import", "add_node", "close_edge", "bay_placed"…


class WayfindingNode(Base):
    """A node as imported: the derived columns routes need, and the feature's properties as given (export)."""

    __tablename__ = "wayfinding_nodes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    floor: Mapped[int] = mapped_column(SmallInteger)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(16))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    amenity: Mapped[str | None] = mapped_column(String(16), index=True)
    name: Mapped[str] = mapped_column(String(80))
    name_en: Mapped[str] = mapped_column(String(80))
    props: Mapped[dict[str, Any]] = mapped_column(JSON)


class WayfindingEdge(Base):
    """An edge in walking order (a -> b; an escalator runs that way only); closed ones stay, left out of routes."""

    __tablename__ = "wayfinding_edges"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    a: Mapped[str] = mapped_column(ForeignKey("wayfinding_nodes.id"), index=True)
    b: Mapped[str] = mapped_column(ForeignKey("wayfinding_nodes.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    length_m: Mapped[float] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float)
    # Of seconds, what is paid once per boarding (a lift's wait): a ride through several landings pays it once.
    board_s: Mapped[float] = mapped_column(Float)
    oneway: Mapped[bool] = mapped_column(Boolean)
    closed: Mapped[bool] = mapped_column(Boolean)
    props: Mapped[dict[str, Any]] = mapped_column(JSON)
    coords: Mapped[list[list[float]]] = mapped_column(JSON)


@dataclass(frozen=True)
class Change:
    """What an import or an edit left: the new version, the graph's size, and the warnings it was accepted with."""

    version: int
    nodes: int
    edges: int
    warnings: list[dict[str, Any]]


# --- reading ---------------------------------------------------------------------------------------------

def graph_version(session: Session) -> int:
    """The current version (0 before any import): one primary-key read, for caching a compiled Graph by it."""
    return session.scalar(select(WayfindingGraph.version).where(WayfindingGraph.id == STATE_ID)) or 0


def load_graph(session: Session) -> Graph:
    """The current version compiled for routes. Closed edges are left out. store_nodes: each active store's door
    nodes, nearest to the store's position first; bay_nodes: each active, placed bay's nearest node on its level's
    floor within the bay_snap_m the graph was written with. Four reads: state, nodes with their stores, open
    edges, bays."""
    state = session.get(WayfindingGraph, STATE_ID)
    if state is None:
        return Graph(version=0, nodes={}, edges=())
    nodes: dict[str, Node] = {}
    doors: dict[int, list[tuple[float, str]]] = {}
    specs: list[NodeSpec] = []
    # Columns, not entities: the properties and geometry (JSON) are the export's, not the routes'.
    rows = session.execute(select(WayfindingNode.id, WayfindingNode.floor, WayfindingNode.x, WayfindingNode.y,
                                  WayfindingNode.kind, WayfindingNode.store_id, WayfindingNode.amenity,
                                  WayfindingNode.name, WayfindingNode.name_en, Store.x, Store.y, Store.active)
                           .outerjoin(Store, Store.id == WayfindingNode.store_id).order_by(WayfindingNode.id))
    for nid, floor, x, y, kind, store_id, amenity, name, name_en, sx, sy, active in rows:
        nodes[nid] = Node(nid, floor, x, y, kind, store_id, amenity, name, name_en)
        specs.append(NodeSpec(nid, floor, x, y, kind, None, amenity, "", "", {}))
        if store_id is not None and active:
            doors.setdefault(store_id, []).append(((x - sx) ** 2 + (y - sy) ** 2, nid))
    edges = tuple(Edge(*row) for row in session.execute(
        select(WayfindingEdge.a, WayfindingEdge.b, WayfindingEdge.kind, WayfindingEdge.length_m,
               WayfindingEdge.seconds, WayfindingEdge.oneway, WayfindingEdge.board_s)
        .where(WayfindingEdge.closed.is_(False)).order_by(WayfindingEdge.id)))
    bay_nodes, _far = snap(specs, bays(session), state.bay_snap_m)
    return Graph(version=state.version, nodes=nodes, edges=edges,
                 store_nodes={store: tuple(n for _d, n in sorted(found)) for store, found in doors.items()},
                 bay_nodes=bay_nodes)


def stores(session: Session) -> list[StoreRef]:
    return [StoreRef(*row) for row in session.execute(
        select(Store.id, Store.unit, Store.floor, Store.x, Store.y, Store.active))]


def bays(session: Session) -> list[BayRef]:
    """The active bays of active car parks, on their level's floor."""
    return [BayRef(*row) for row in session.execute(
        select(ParkingBay.id, ParkingBay.code, ParkingLevel.floor, ParkingBay.x, ParkingBay.y)
        .join(ParkingLevel, ParkingLevel.id == ParkingBay.level_id).join(CarPark, CarPark.id == ParkingBay.car_park_id)
        .where(ParkingBay.active, CarPark.active).order_by(ParkingBay.id))]


def _node_features(session: Session, ordered: bool = False) -> list[dict[str, Any]]:
    """Every node as its feature, from a Core select of the four columns a feature needs: no ORM entity per row
    (building 2,000 entities cost more than reading them)."""
    query = select(WayfindingNode.id, WayfindingNode.x, WayfindingNode.y, WayfindingNode.props)
    return [{"type": "Feature", "id": nid, "geometry": {"type": "Point", "coordinates": [x, y]},
             "properties": props}  # a new dict per row (decoded from JSON)
            for nid, x, y, props in session.execute(query.order_by(WayfindingNode.id) if ordered else query)]


def _edge_features(session: Session, ordered: bool = False) -> list[dict[str, Any]]:
    """Every edge as its feature (as :func:`_node_features`)."""
    query = select(WayfindingEdge.id, WayfindingEdge.coords, WayfindingEdge.props)
    return [{"type": "Feature", "id": eid, "geometry": {"type": "LineString", "coordinates": coords},
             "properties": props}  # a new dict per row (decoded from JSON)
            for eid, coords, props in session.execute(query.order_by(WayfindingEdge.id) if ordered else query)]


def export_graph(session: Session) -> dict[str, Any]:
    """The current graph as the FeatureCollection it was imported as (nodes first, each kind by id)."""
    features = _node_features(session, ordered=True) + _edge_features(session, ordered=True)
    return {"type": "FeatureCollection", "mall:version": graph_version(session), "mall:frame": "plan-metres",
            "features": features}


def state(session: Session) -> WayfindingGraph | None:
    return session.get(WayfindingGraph, STATE_ID)


def revalidate(session: Session, snap_m: float) -> Checked:
    """The checks of an import run on the stored graph (the summary's problems: none, unless stores or bays
    changed under it)."""
    nodes, edges = stored_specs(session)
    return check(list(nodes.values()), list(edges.values()), stores(session), bays(session), snap_m)


# --- writing ---------------------------------------------------------------------------------------------

def edge_seconds(kind: str, length_m: float, floor_a: int, floor_b: int, costs: WayfindingSettings) -> float:
    """What walking (or riding) an edge takes: docs/wayfinding.md, "Costs"."""
    floors = floors_crossed(floor_a, floor_b)
    if kind == "lift":
        return costs.lift_wait_s + costs.lift_s_per_floor * floors
    if kind == "escalator":
        return length_m / costs.escalator_speed_mps
    seconds = length_m / costs.walk_speed_mps
    if kind == "stairs":
        seconds += costs.stairs_s_per_floor * floors
    return seconds


def node_row(spec: NodeSpec, store_id: int | None) -> WayfindingNode:
    amenity = "carpark_lift" if spec.amenity == "lift" and spec.floor < 0 else spec.amenity
    return WayfindingNode(id=spec.id, floor=spec.floor, x=spec.x, y=spec.y, kind=spec.kind, store_id=store_id,
                          amenity=amenity, name=spec.name, name_en=spec.name_en, props=spec.props)


def edge_row(spec: EdgeSpec, floors: Mapping[str, int], costs: WayfindingSettings) -> WayfindingEdge:
    return WayfindingEdge(id=spec.id, a=spec.a, b=spec.b, kind=spec.kind, length_m=spec.length_m,
                          seconds=edge_seconds(spec.kind, spec.length_m, floors[spec.a], floors[spec.b], costs),
                          board_s=costs.lift_wait_s if spec.kind == "lift" else 0.0,
                          oneway=spec.oneway, closed=spec.closed, props=spec.props, coords=spec.coords)


def refuse(problems: list[dict[str, Any]]) -> RuleViolation:
    return RuleViolation(f"the graph has {len(problems)} problem(s); nothing was changed",
                         code="wayfinding.invalid_graph",
                         details={"problems": problems[:MAX_PROBLEMS], "count": len(problems)})


def lock(session: Session, now: datetime, snap_m: float) -> WayfindingGraph:
    """The state row, locked until the transaction ends, so two changes bump the version one after the other."""
    locked = select(WayfindingGraph).where(WayfindingGraph.id == STATE_ID).with_for_update()
    row = session.scalars(locked).first()
    if row is None:
        # The first change makes the row. Two first imports at once: the second waits on the key, fails, and
        # then locks the row the first made (a savepoint keeps its transaction usable).
        try:
            with session.begin_nested():
                session.add(WayfindingGraph(id=STATE_ID, version=0, bay_snap_m=snap_m, changed_at=now,
                                            change="created"))
        except IntegrityError:
            pass
        row = session.scalars(locked).one()
    return row


def bump(row: WayfindingGraph, change: str, by: int | None, now: datetime) -> None:
    row.version += 1
    row.change, row.changed_by, row.changed_at = change, by, now


def replace_graph(session: Session, doc: Any, *, by: int | None, now: datetime, costs: WayfindingSettings) -> Change:
    """Replace the whole graph by a FeatureCollection, or refuse it with every problem (422
    wayfinding.invalid_graph) and change nothing."""
    nodes, edges, problems = read_collection(doc)
    checked = check(nodes, edges, stores(session), bays(session), costs.bay_snap_m)
    if problems:  # a feature that could not be read makes the whole-graph findings unreliable; say the rest
        checked.problems = [p for p in checked.problems if p["kind"] not in ("disconnected", "edge_node_missing")]
    problems += checked.problems
    if problems:
        raise refuse(problems)
    row = lock(session, now, costs.bay_snap_m)
    session.execute(delete(WayfindingEdge))
    session.execute(delete(WayfindingNode))
    session.flush()
    session.add_all([node_row(n, checked.node_store.get(n.id)) for n in nodes])
    session.flush()
    floors = {n.id: n.floor for n in nodes}
    session.add_all([edge_row(e, floors, costs) for e in edges])
    bump(row, "import", by, now)
    row.imported_at, row.imported_by, row.bay_snap_m = now, by, costs.bay_snap_m
    session.flush()
    return Change(row.version, len(nodes), len(edges), checked.warnings)


def bump_version(session: Session, change: str, *, by: int | None, now: datetime) -> int:
    """Bump the version for a change outside the graph that moves what it compiles to (a bay placed, a store's
    door…); nothing happens before the first import."""
    row = session.scalars(select(WayfindingGraph).where(WayfindingGraph.id == STATE_ID).with_for_update()).first()
    if row is None:
        return 0
    bump(row, change, by, now)
    return row.version


def stored_specs(session: Session) -> tuple[dict[str, NodeSpec], dict[str, EdgeSpec]]:
    """The stored graph as the specs it was written from, built from the columns (two Core selects). Every row was
    read and checked feature by feature when it was written, so it is not parsed again on each read (that was
    most of the summary's time); :func:`read_specs` does parse again, and a test keeps the two equal."""
    nodes: dict[str, NodeSpec] = {}
    edges: dict[str, EdgeSpec] = {}
    for nid, floor, x, y, kind, amenity, name, name_en, props in session.execute(
            select(WayfindingNode.id, WayfindingNode.floor, WayfindingNode.x, WayfindingNode.y, WayfindingNode.kind,
                   WayfindingNode.amenity, WayfindingNode.name, WayfindingNode.name_en, WayfindingNode.props)):
        # node_row stored a lift's amenity by floor (carpark_lift below ground); the spec says "lift"
        nodes[nid] = NodeSpec(nid, floor, x, y, kind, props.get("mall:store"), "lift" if kind == "lift" else amenity,
                              name, name_en, props)
    for eid, a, b, kind, oneway, closed, props, coords in session.execute(
            select(WayfindingEdge.id, WayfindingEdge.a, WayfindingEdge.b, WayfindingEdge.kind, WayfindingEdge.oneway,
                   WayfindingEdge.closed, WayfindingEdge.props, WayfindingEdge.coords)):
        given = props.get("mall:length_m")
        levels = parse_level(props.get("level"))
        assert levels is not None, eid  # stored features were read once already
        edges[eid] = EdgeSpec(eid, a, b, kind, None if given is None else float(given),
                              sum(math.dist(p, q) for p, q in zip(coords, coords[1:], strict=False)), oneway, closed,
                              levels, props, coords)
    return nodes, edges


def read_specs(session: Session) -> tuple[dict[str, NodeSpec], dict[str, EdgeSpec]]:
    """The stored graph's features read again as on import (what :func:`stored_specs` must equal)."""
    nodes: dict[str, NodeSpec] = {}
    edges: dict[str, EdgeSpec] = {}
    for feature in _node_features(session):
        spec, _ = read_feature(feature)
        assert isinstance(spec, NodeSpec), feature["id"]
        nodes[spec.id] = spec
    for feature in _edge_features(session):
        spec, _ = read_feature(feature)
        assert isinstance(spec, EdgeSpec), feature["id"]
        edges[spec.id] = spec
    return nodes, edges


# --- amenities -------------------------------------------------------------------------------------------

def amenities(session: Session, floor: int | None = None, kind: str | None = None) -> list[WayfindingNode]:
    """The nodes with an amenity (AMENITY_KINDS), of one floor and kind when given, by floor then id."""
    query = select(WayfindingNode).where(WayfindingNode.amenity.is_not(None))
    if floor is not None:
        query = query.where(WayfindingNode.floor == floor)
    if kind is not None:
        query = query.where(WayfindingNode.amenity == kind)
    return list(session.scalars(query.order_by(WayfindingNode.floor, WayfindingNode.id)))


def floor_counts(session: Session) -> dict[int, dict[str, int]]:
    """Per floor: nodes, edges (an edge counts on the floor of its first end) and closed edges."""
    counts: dict[int, dict[str, int]] = {}
    floors = dict(session.execute(select(WayfindingNode.id, WayfindingNode.floor)).all())
    for floor in floors.values():
        counts.setdefault(floor, {"nodes": 0, "edges": 0, "closed_edges": 0})["nodes"] += 1
    for a, closed in session.execute(select(WayfindingEdge.a, WayfindingEdge.closed)):
        entry = counts.setdefault(floors[a], {"nodes": 0, "edges": 0, "closed_edges": 0})
        entry["edges"] += 1
        entry["closed_edges"] += int(closed)
    return counts
