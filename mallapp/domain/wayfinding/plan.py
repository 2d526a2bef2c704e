"""A route asked for by name: ``from`` and ``to`` as GET /api/v1/routes takes them, resolved against the database.

``from``: ``store:<id>`` (its doors), ``bay:<code or id>``, ``node:<id>``, ``me`` (the member's current
position, :mod:`mallapp.domain.proximity.position`). ``to``: ``store:<id>``, ``item:<sale item id>`` (its
store's doors), ``amenity:<kind>`` (every node of that kind: the search finds the nearest by time on the
profile), ``node:<id>``, ``car`` (the bay of the member's parked car, :mod:`mallapp.domain.parking.locate`).

A store the graph has no door for is reached at its position on its floor (the nearest nodes, and a straight
walk); a bay likewise when the graph did not snap it to a node, and when it did the walk from that node to
the bay's own position ends the route.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from mallapp.db import MAX_ID
from mallapp.domain.parking import carparks, locate
from mallapp.domain.parking.models import ParkingBay, ParkingLevel
from mallapp.domain.proximity.engine import Engine
from mallapp.domain.proximity.position import current_position
from mallapp.domain.venue import SaleItem, Store
from mallapp.domain.wayfinding.graph import AMENITY_KINDS, Graph
from mallapp.domain.wayfinding.routes import Place, Route, Router, unreachable
from mallapp.domain.wayfinding.steps import Label
from mallapp.errors import Conflict, InvalidInput, NotFound

__all__ = ["FROM_KINDS", "TO_KINDS", "End", "Planned", "plan"]

FROM_KINDS = ("store", "bay", "node", "me")
TO_KINDS = ("store", "item", "amenity", "node", "car")


@dataclass(frozen=True)
class End:
    place: Place
    label: Label


@dataclass(frozen=True)
class Planned:
    route: Route
    origin: Label
    destination: Label


def plan(session: Session, redis: Redis, router: Router | None, frm: str, to: str, profile: str, *,
         member_id: int | None, engine: Callable[[], Engine], now: float) -> Planned:
    """The route from ``frm`` to ``to``; ``member_id`` is needed for ``me`` and ``car`` (the caller checks the token),
    ``engine`` gives the proximity engine that places the member for ``me`` (the caller keeps one per venue version)."""
    if router is None or not router.graph.nodes:
        raise Conflict("no walkable graph has been imported yet", code="routes.no_graph")
    start = _origin(session, redis, router, frm, member_id, engine, now)
    goal = _destination(session, router, to, member_id, profile)
    return Planned(router.route(start.place, goal.place, profile), start.label, goal.label)


def _split(spec: str, kinds: tuple[str, ...], field: str) -> tuple[str, str]:
    kind, colon, value = spec.partition(":")
    bare = kind in ("me", "car")
    if kind not in kinds or (bare and colon) or (not bare and not value):
        raise InvalidInput(f"{field}: one of {', '.join(k + ('' if k in ('me', 'car') else ':…') for k in kinds)}",
                           code="request.invalid_query")
    return kind, value


def _int_id(value: str) -> int | None:
    return int(value) if value.isdigit() and 0 < int(value) <= MAX_ID else None


def _origin(session: Session, redis: Redis, router: Router, spec: str, member_id: int | None,
            engine: Callable[[], Engine], now: float) -> End:
    kind, value = _split(spec, FROM_KINDS, "from")
    if kind == "store":
        return _store(session, router, value)
    if kind == "bay":
        bay, level = _bay(session, router.graph, value)
        return End(_bay_place(router, bay, level), Label("bay", bay.code))
    if kind == "node":
        return _node(router, value)
    assert member_id is not None, "the view authenticates the member for 'me'"
    where = current_position(redis, engine(), member_id, now)
    if where is None:
        raise Conflict("we cannot tell where you are now: no recent sightings", code="routes.no_position")
    return End(router.point_place(*where), Label("position"))


def _destination(session: Session, router: Router, spec: str, member_id: int | None, profile: str) -> End:
    kind, value = _split(spec, TO_KINDS, "to")
    if kind == "store":
        return _store(session, router, value)
    if kind == "item":
        item_id = _int_id(value)
        item = session.get(SaleItem, item_id) if item_id else None
        if item is None or not item.active:
            raise NotFound(f"no sale item {value}", code="routes.item_not_found")
        store = _store(session, router, str(item.store_id))
        return End(store.place, Label("item", store.label.name, store.label.name_en, store.label.unit, item.name))
    if kind == "amenity":
        return _amenity(router, value, profile)
    if kind == "node":
        return _node(router, value)
    assert member_id is not None, "the view authenticates the member for 'car'"
    found = _parked_bay(session, member_id)
    if found is None:
        raise Conflict("none of your cars is parked with a known bay", code="routes.no_car")
    bay, level = found
    if bay.id not in router.graph.bay_nodes and (bay.x is None or bay.y is None):
        raise unreachable(profile)
    return End(_bay_place(router, bay, level), Label("car", bay.code))


def _store(session: Session, router: Router, value: str) -> End:
    store_id = _int_id(value)
    store = session.get(Store, store_id) if store_id else None
    if store is None or not store.active:
        raise NotFound(f"no store {value}", code="routes.store_not_found")
    doors = router.graph.store_nodes.get(store.id)
    place = Place.at_nodes(doors) if doors else router.point_place(store.floor, store.x, store.y)
    return End(place, Label("store", store.name, store.name_en or "", store.unit or ""))


def _bay(session: Session, graph: Graph, value: str) -> tuple[ParkingBay, ParkingLevel]:
    bay_id = _int_id(value)
    if bay_id is not None:
        rows = [session.get(ParkingBay, bay_id)]
    else:
        try:
            code = carparks.normalize_bay(value)
        except InvalidInput:
            rows = []
        else:
            # One mall may have more than one car park: the bay the graph knows first, then the lowest id.
            rows = sorted(session.scalars(select(ParkingBay).where(ParkingBay.code == code)),
                          key=lambda b: (b.id not in graph.bay_nodes, b.id))
    bay = next((b for b in rows if b is not None and b.active), None)
    if bay is None:
        raise NotFound(f"no parking bay {value}", code="routes.bay_not_found")
    return bay, session.get(ParkingLevel, bay.level_id)


def _bay_place(router: Router, bay: ParkingBay, level: ParkingLevel) -> Place:
    node_id = router.graph.bay_nodes.get(bay.id)
    if node_id is None:
        if bay.x is None or bay.y is None:
            return Place(())  # nowhere on the graph: the route is unreachable
        return router.point_place(level.floor, bay.x, bay.y)
    if bay.x is None or bay.y is None:
        return Place.at_nodes([node_id])
    node = router.graph.nodes[node_id]
    walk = math.hypot(node.x - bay.x, node.y - bay.y)
    return Place(((node_id, walk / router.walk_pace, walk),), (node.floor, float(bay.x), float(bay.y)))


def _parked_bay(session: Session, member_id: int) -> tuple[ParkingBay, ParkingLevel] | None:
    """The bay of the member's car parked most recently with a known bay (given, or seen by a camera)."""
    for row in locate.parked(session, member_id):
        if not row.bay_code:
            continue
        bay = carparks.bay_by_code(session, row.car_park_id, row.bay_code)
        if bay is not None and bay.active:
            return bay, session.get(ParkingLevel, bay.level_id)
    return None


def _node(router: Router, value: str) -> End:
    node = router.graph.nodes.get(value)
    if node is None:
        raise NotFound(f"no node {value[:100]} on the graph", code="routes.node_not_found")
    if node.amenity:
        return End(Place.at_nodes([node.id]), Label("amenity", amenity=node.amenity))
    return End(Place.at_nodes([node.id]), Label("place" if node.name or node.name_en else "point", node.name,
                                                node.name_en))


def _amenity(router: Router, kind: str, profile: str) -> End:
    if kind not in AMENITY_KINDS:
        raise InvalidInput(f"to: amenity:<{'|'.join(AMENITY_KINDS)}>", code="request.invalid_query")
    nodes = router.graph.nodes.values()
    found = [n.id for n in nodes if n.amenity == kind]
    if not found and kind == "lift":
        found = [n.id for n in nodes if n.kind == "lift" and n.floor > 0]
    if not found and kind == "carpark_lift":
        found = [n.id for n in nodes if n.kind == "lift" and n.floor < 0]
    if not found and kind == "exit":
        found = [n.id for n in nodes if n.kind == "entrance"]
    if not found:
        raise unreachable(profile)
    return End(Place.at_nodes(found), Label("amenity", amenity=kind))
