"""The walkable graph for operations (import, export, edits, summary) and the public list of amenities.

Any ops user reads the graph; only an admin imports or edits it. Every change is checked as a whole graph and
refused with every problem at once (422 wayfinding.invalid_graph); docs/wayfinding.md has the file format.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from flask import Blueprint
from pydantic import ConfigDict, Field, StringConstraints

from mallapp import i18n
from mallapp.api.core import Body, Out, Query, current_ops, operation, runtime, transaction
from mallapp.api.directory import caller_locale
from mallapp.domain.venue_admin import floor_name
from mallapp.domain.wayfinding import edits, store
from mallapp.domain.wayfinding.graph import AMENITY_KINDS

bp = Blueprint("wayfinding_admin", __name__, url_prefix="/api/v1/ops/wayfinding")
public_bp = Blueprint("wayfinding_public", __name__, url_prefix="/api/v1")

GRAPH_MAX_BODY = 8 * 1024 * 1024  # a mall of a few thousand nodes is a few MB of GeoJSON
FeatureId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")]
Metres = Annotated[float, Field(ge=-100_000, le=100_000, allow_inf_nan=False)]
_ADMIN = ("ops.admin_required",)
_INVALID = ("wayfinding.invalid_graph",)
_EDIT = (*_ADMIN, *_INVALID, "wayfinding.no_graph")


class GraphIn(Body):
    """A GeoJSON FeatureCollection (docs/wayfinding.md, "The graph file"); each feature is read by the domain,
    which names every problem."""

    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["FeatureCollection"]
    features: list[dict[str, Any]] = Field(max_length=100_000)


class GraphOut(Out):
    model_config = ConfigDict(extra="allow")
    type: Literal["FeatureCollection"]
    features: list[dict[str, Any]]


class Problem(Out):
    model_config = ConfigDict(extra="allow")
    feature: str | None
    problem: str
    kind: str


class ChangeOut(Out):
    version: int
    nodes: int
    edges: int
    warnings: list[Problem] = Field(description="accepted, but worth knowing: bays without a position, places only "
                                                "stairs or escalators reach")


class NodeIn(Body):
    node: dict[str, Any] = Field(description="a Point feature")
    edges: list[dict[str, Any]] = Field(default_factory=list, max_length=100,
                                        description="LineString features joining the node to the graph")


class MoveIn(Body):
    x: Metres
    y: Metres


class EdgeIn(Body):
    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["Feature"]


class EdgePatch(Body):
    closed: bool = Field(description="true: out of service (routes avoid it, it stays in the graph); false: reopened")


class FloorCount(Out):
    floor: int
    floor_name: str
    nodes: int
    edges: int
    closed_edges: int


class SummaryOut(Out):
    version: int
    imported_at: datetime | None
    imported_by: int | None
    changed_at: datetime | None
    changed_by: int | None
    change: str | None
    floors: list[FloorCount]
    problems: list[Problem] = Field(description="the import's checks run again on the stored graph: none, unless "
                                                "stores or bays changed under it")
    warnings: list[Problem]


class AmenitiesQuery(Query):
    floor: int | None = Field(default=None, ge=-20, le=200)
    kind: Literal[AMENITY_KINDS] | None = None  # type: ignore[valid-type]
    lang: Literal["zh-CN", "en"] | None = Field(default=None, description="else the Accept-Language header, else zh-CN")


class AmenityOut(Out):
    id: str = Field(description="the graph node's id: a route's from/to node")
    kind: str
    label: str = Field(description="the kind in the caller's language")
    name: str
    name_en: str
    floor: int
    floor_name: str
    x: float
    y: float


class AmenitiesOut(Out):
    amenities: list[AmenityOut]


def _change(change: store.Change) -> ChangeOut:
    return ChangeOut(version=change.version, nodes=change.nodes, edges=change.edges,
                     warnings=[Problem(**w) for w in change.warnings])


def _who() -> dict[str, Any]:
    rt = runtime()
    return {"by": current_ops().id, "now": rt.now(), "costs": rt.settings.wayfinding}


# --- the whole graph -------------------------------------------------------------------------------------

@operation(bp, "/graph", "GET", summary="The current graph as GeoJSON (the format PUT takes: it round-trips)",
           auth="ops", response=GraphOut)
def export_graph() -> GraphOut:
    with transaction() as session:
        return GraphOut(**store.export_graph(session))


@operation(bp, "/graph", "PUT", summary="Replace the whole graph by a GeoJSON FeatureCollection, checked first",
           auth="ops_admin", body=GraphIn, response=ChangeOut, errors=(*_ADMIN, *_INVALID), max_body=GRAPH_MAX_BODY)
def import_graph(body: GraphIn) -> ChangeOut:
    with transaction() as session:
        return _change(store.replace_graph(session, body.model_dump(), **_who()))


@operation(bp, "/graph/summary", "GET", summary="Nodes and edges per floor, the version, and the checks' findings",
           auth="ops", response=SummaryOut)
def graph_summary() -> SummaryOut:
    snap_m = runtime().settings.wayfinding.bay_snap_m
    with transaction() as session:
        row = store.state(session)
        checked = store.revalidate(session, row.bay_snap_m if row else snap_m)
        floors = [FloorCount(floor=f, floor_name=floor_name(f), **c)
                  for f, c in sorted(store.floor_counts(session).items())]
        return SummaryOut(version=row.version if row else 0, imported_at=row.imported_at if row else None,
                          imported_by=row.imported_by if row else None, changed_at=row.changed_at if row else None,
                          changed_by=row.changed_by if row else None, change=row.change if row else None,
                          floors=floors, problems=[Problem(**p) for p in checked.problems] if row else [],
                          warnings=[Problem(**w) for w in checked.warnings] if row else [])


# --- edits -----------------------------------------------------------------------------------------------

@operation(bp, "/graph/nodes", "POST", summary="Add a node and the edges that join it (checked as a whole graph)",
           auth="ops_admin", body=NodeIn, response=ChangeOut, status=201,
           errors=(*_EDIT, "wayfinding.feature_exists"))
def add_node(body: NodeIn) -> ChangeOut:
    with transaction() as session:
        return _change(edits.add_node(session, body.node, body.edges, **_who()))


@operation(bp, "/graph/nodes/<node_id>", "PATCH", summary="Move a node (the edges it ends follow)",
           auth="ops_admin", body=MoveIn, response=ChangeOut, errors=(*_EDIT, "wayfinding.node_not_found"))
def move_node(node_id: str, body: MoveIn) -> ChangeOut:
    with transaction() as session:
        return _change(edits.move_node(session, node_id, body.x, body.y, **_who()))


@operation(bp, "/graph/nodes/<node_id>", "DELETE", summary="Remove a node and its edges (refused if the graph falls "
           "apart)", auth="ops_admin", response=ChangeOut, errors=(*_EDIT, "wayfinding.node_not_found"))
def remove_node(node_id: str) -> ChangeOut:
    with transaction() as session:
        return _change(edits.remove_node(session, node_id, **_who()))


@operation(bp, "/graph/edges", "POST", summary="Add an edge (a LineString naming its ends)", auth="ops_admin",
           body=EdgeIn, response=ChangeOut, status=201, errors=(*_EDIT, "wayfinding.feature_exists"))
def add_edge(body: EdgeIn) -> ChangeOut:
    with transaction() as session:
        return _change(edits.add_edge(session, body.model_dump(), **_who()))


@operation(bp, "/graph/edges/<edge_id>", "DELETE", summary="Remove an edge (refused if the graph falls apart)",
           auth="ops_admin", response=ChangeOut, errors=(*_EDIT, "wayfinding.edge_not_found"))
def remove_edge(edge_id: str) -> ChangeOut:
    with transaction() as session:
        return _change(edits.remove_edge(session, edge_id, **_who()))


@operation(bp, "/graph/edges/<edge_id>", "PATCH", summary="Close an edge (out of service: routes avoid it) or reopen "
           "it", auth="ops_admin", body=EdgePatch, response=ChangeOut, errors=(*_EDIT, "wayfinding.edge_not_found"))
def patch_edge(edge_id: str, body: EdgePatch) -> ChangeOut:
    with transaction() as session:
        return _change(edits.set_closed(session, edge_id, body.closed, **_who()))


# --- amenities (public) ----------------------------------------------------------------------------------

@operation(public_bp, "/amenities", "GET", summary="Toilets, the service desk, exits, lifts, nursing rooms, car-park "
           "lifts: the graph's amenity nodes", query=AmenitiesQuery, response=AmenitiesOut)
def list_amenities(query: AmenitiesQuery) -> AmenitiesOut:
    locale = caller_locale(query.lang)
    with transaction() as session:
        return AmenitiesOut(amenities=[
            AmenityOut(id=r.id, kind=r.amenity or "", label=i18n.t(locale, f"wayfinding_admin.amenity.{r.amenity}"),
                       name=r.name, name_en=r.name_en, floor=r.floor, floor_name=floor_name(r.floor), x=r.x, y=r.y)
            for r in store.amenities(session, query.floor, query.kind)])
