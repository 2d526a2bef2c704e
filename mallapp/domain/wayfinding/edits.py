"""Ops' edits of the stored graph: add, move and remove a node, add and remove an edge, close and reopen an edge.

Each edit is applied to the whole stored graph in memory, checked as an import is (:func:`.validate.check`), and
only then written (the rows it changed) with the version bumped; an edit whose result has problems is refused
with all of them (422 wayfinding.invalid_graph) and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from mallapp.domain.wayfinding.features import EdgeSpec, NodeSpec, problem, read_feature
from mallapp.domain.wayfinding.store import (
    Change,
    WayfindingEdge,
    WayfindingNode,
    bays,
    bump,
    edge_row,
    lock,
    node_row,
    refuse,
    stored_specs,
    stores,
)
from mallapp.domain.wayfinding.validate import check
from mallapp.errors import Conflict, NotFound
from mallapp.settings import WayfindingSettings


def _one(feature: Any, want: type) -> Any:
    spec, problems = read_feature(feature)
    if problems:
        raise refuse(problems)
    if not isinstance(spec, want):
        fid = spec.id if spec is not None else None
        what = "a node (a Point)" if want is NodeSpec else "an edge (a LineString)"
        raise refuse([problem(fid, "bad_geometry", f"this edit takes {what}")])
    return spec


Mutation = Callable[[dict[str, NodeSpec], dict[str, EdgeSpec]], None]


def _key(found: Mapping[str, Any]) -> tuple[Any, ...]:
    return found["kind"], found["feature"], found.get("store"), found.get("bay")


def _edit(session: Session, change: str, mutate: Mutation, *, by: int | None, now: datetime,
          costs: WayfindingSettings) -> Change:
    """Apply one edit to the stored graph in memory, check the result as an import would, then write only what
    changed and bump the version; refuse (422 wayfinding.invalid_graph) and write nothing when the edit brings a
    problem. Problems the graph already had (a store opened since the import, without a door yet) do not block
    an edit, or ops could not add that door."""
    row = lock(session, now, costs.bay_snap_m)
    if row.version == 0:
        raise NotFound("there is no graph yet: import one first (PUT /api/v1/ops/wayfinding/graph)",
                       code="wayfinding.no_graph")
    nodes, edges = stored_specs(session)
    before_nodes, before_edges = dict(nodes), dict(edges)
    venue_stores, venue_bays = stores(session), bays(session)
    had = {_key(p) for p in check(list(nodes.values()), list(edges.values()), venue_stores, venue_bays,
                                  row.bay_snap_m).problems}
    mutate(nodes, edges)
    checked = check(list(nodes.values()), list(edges.values()), venue_stores, venue_bays, row.bay_snap_m)
    brought = [p for p in checked.problems if _key(p) not in had]
    if brought:
        raise refuse(brought)
    gone_edges = [e for e in before_edges if e not in edges or edges[e] is not before_edges[e]]
    if gone_edges:
        session.execute(delete(WayfindingEdge).where(WayfindingEdge.id.in_(gone_edges)))
    gone_nodes = [n for n in before_nodes if n not in nodes or nodes[n] is not before_nodes[n]]
    if gone_nodes:
        session.execute(delete(WayfindingNode).where(WayfindingNode.id.in_(gone_nodes)))
    session.flush()
    session.add_all([node_row(n, checked.node_store.get(n.id)) for key, n in nodes.items()
                     if before_nodes.get(key) is not n])
    session.flush()
    floors = {n.id: n.floor for n in nodes.values()}
    session.add_all([edge_row(e, floors, costs) for key, e in edges.items() if before_edges.get(key) is not e])
    bump(row, change, by, now)
    session.flush()
    return Change(row.version, len(nodes), len(edges), checked.warnings)


def _exists(nodes: Mapping[str, NodeSpec], edges: Mapping[str, EdgeSpec], fid: str) -> None:
    if fid in nodes or fid in edges:
        raise Conflict(f"a feature with the id {fid!r} exists", code="wayfinding.feature_exists")


def add_node(session: Session, node: Any, joins: list[Any], *, by: int | None, now: datetime,
             costs: WayfindingSettings) -> Change:
    """Add a node (a Point feature) and the edges (LineStrings) that join it to the graph, checked together."""
    spec = _one(node, NodeSpec)
    new_edges = [_one(edge, EdgeSpec) for edge in joins]

    def mutate(nodes: dict[str, NodeSpec], edges: dict[str, EdgeSpec]) -> None:
        for fid in [spec.id, *(e.id for e in new_edges)]:
            _exists(nodes, edges, fid)
        if len({spec.id, *(e.id for e in new_edges)}) != 1 + len(new_edges):
            raise Conflict("the new features' ids are not distinct", code="wayfinding.feature_exists")
        nodes[spec.id] = spec
        edges.update((e.id, e) for e in new_edges)

    return _edit(session, "add_node", mutate, by=by, now=now, costs=costs)


def _node_of(nodes: Mapping[str, NodeSpec], node_id: str) -> NodeSpec:
    if node_id not in nodes:
        raise NotFound(f"no node {node_id!r} in the graph", code="wayfinding.node_not_found")
    return nodes[node_id]


def _edge_of(edges: Mapping[str, EdgeSpec], edge_id: str) -> EdgeSpec:
    if edge_id not in edges:
        raise NotFound(f"no edge {edge_id!r} in the graph", code="wayfinding.edge_not_found")
    return edges[edge_id]


def move_node(session: Session, node_id: str, x: float, y: float, *, by: int | None, now: datetime,
              costs: WayfindingSettings) -> Change:
    """Move a node; the edges it ends take their end along (their length and seconds follow unless given)."""

    def mutate(nodes: dict[str, NodeSpec], edges: dict[str, EdgeSpec]) -> None:
        old = _node_of(nodes, node_id)
        nodes[node_id] = NodeSpec(old.id, old.floor, x, y, old.kind, old.unit, old.amenity, old.name, old.name_en,
                                  old.props)
        for key, edge in list(edges.items()):
            ends = edge.props.get("mall:from"), edge.props.get("mall:to")
            if node_id not in ends:
                continue
            coords = [list(p) for p in edge.coords]
            if ends[0] == node_id:
                coords[0] = [x, y]
            if ends[1] == node_id:
                coords[-1] = [x, y]
            moved, _ = read_feature({"type": "Feature", "id": key, "properties": edge.props,
                                     "geometry": {"type": "LineString", "coordinates": coords}})
            assert isinstance(moved, EdgeSpec)
            edges[key] = moved

    return _edit(session, "move_node", mutate, by=by, now=now, costs=costs)


def remove_node(session: Session, node_id: str, *, by: int | None, now: datetime, costs: WayfindingSettings) -> Change:
    """Remove a node and the edges that end at it (refused if that leaves the graph in pieces or a store doorless)."""

    def mutate(nodes: dict[str, NodeSpec], edges: dict[str, EdgeSpec]) -> None:
        _node_of(nodes, node_id)
        del nodes[node_id]
        for key in [k for k, e in edges.items() if node_id in (e.a, e.b)]:
            del edges[key]

    return _edit(session, "remove_node", mutate, by=by, now=now, costs=costs)


def add_edge(session: Session, edge: Any, *, by: int | None, now: datetime, costs: WayfindingSettings) -> Change:
    """Add an edge (a LineString feature naming its ends)."""
    spec = _one(edge, EdgeSpec)

    def mutate(nodes: dict[str, NodeSpec], edges: dict[str, EdgeSpec]) -> None:
        _exists(nodes, edges, spec.id)
        edges[spec.id] = spec

    return _edit(session, "add_edge", mutate, by=by, now=now, costs=costs)


def remove_edge(session: Session, edge_id: str, *, by: int | None, now: datetime, costs: WayfindingSettings) -> Change:
    """Remove an edge (refused if the graph falls apart without it)."""

    def mutate(nodes: dict[str, NodeSpec], edges: dict[str, EdgeSpec]) -> None:
        _edge_of(edges, edge_id)
        del edges[edge_id]

    return _edit(session, "remove_edge", mutate, by=by, now=now, costs=costs)


def set_closed(session: Session, edge_id: str, closed: bool, *, by: int | None, now: datetime,
               costs: WayfindingSettings) -> Change:
    """Close an edge (a lift out of service: routes avoid it, the edge stays) or reopen it. Closing is refused when
    it leaves the graph in pieces; closing the only step-free way is accepted with a step_free_unreachable warning."""

    def mutate(nodes: dict[str, NodeSpec], edges: dict[str, EdgeSpec]) -> None:
        old = _edge_of(edges, edge_id)
        props = {k: v for k, v in old.props.items() if k != "mall:closed"}
        if closed:
            props["mall:closed"] = "yes"
        edges[edge_id] = EdgeSpec(old.id, old.a, old.b, old.kind, old.given_length_m, old.geometry_length_m,
                                  old.oneway, closed, old.levels, props, old.coords)

    return _edit(session, "close_edge" if closed else "reopen_edge", mutate, by=by, now=now, costs=costs)
