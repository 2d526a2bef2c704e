"""Routes across the mall's floors: GET /api/v1/routes (public; ``from=me`` and ``to=car`` need a member token).

The compiled graph (:class:`mallapp.domain.wayfinding.routes.Router`) is kept in the app's memory for the graph
version it was built from; each request reads the version (one primary-key read) and compiles again only when
ops changed the graph.
"""

from __future__ import annotations

import threading
from typing import Annotated, Literal

from flask import Blueprint, current_app, request
from pydantic import ConfigDict, Field
from sqlalchemy.orm import Session

from mallapp import i18n
from mallapp.api.core import (
    Out,
    Query,
    authenticate_member,
    current_member_id,
    operation,
    runtime,
    transaction,
)
from mallapp.domain import members, venue
from mallapp.domain.proximity.engine import Engine
from mallapp.domain.proximity.position import position_engine
from mallapp.domain.venue_admin import floor_name
from mallapp.domain.wayfinding import plan as planner
from mallapp.domain.wayfinding import store as graph_store
from mallapp.domain.wayfinding.graph import AMENITY_KINDS
from mallapp.domain.wayfinding.routes import Leg, Router
from mallapp.domain.wayfinding.steps import describe, summary

bp = Blueprint("routes", __name__, url_prefix="/api/v1")

_AMENITY = "|".join(AMENITY_KINDS)
FROM_PATTERN = r"^(store:[0-9]{1,10}|bay:[A-Za-z0-9-]{1,20}|node:[^\s]{1,100}|me)$"
TO_PATTERN = rf"^(store:[0-9]{{1,10}}|item:[0-9]{{1,10}}|amenity:({_AMENITY})|node:[^\s]{{1,100}}|car)$"
_CACHE = "mallapp.routes.router"
_ENGINE = "mallapp.routes.position_engine"
_LOCK = threading.Lock()


class RoutesQuery(Query):
    """Where from, where to, how."""

    origin: Annotated[str, Field(alias="from", pattern=FROM_PATTERN, description=(
        "store:<id> (its doors), bay:<code or id> (B2-C058), node:<graph node id>, or me (your current position: "
        "needs a member token)"))]
    to: Annotated[str, Field(pattern=TO_PATTERN, description=(
        f"store:<id>, item:<sale item id> (its store), amenity:<{_AMENITY}> (the nearest by walking time), "
        "node:<graph node id>, or car (your parked car's bay: needs a member token)"))]
    profile: Literal["fastest", "step_free"] = Field("fastest", description=(
        "fastest: every way; step_free: no stairs and no escalators (lifts and ramps)"))
    lang: Annotated[str | None, Field(max_length=20, description=(
        "zh-CN or en; else the member's language (with a token), else Accept-Language, else zh-CN"))] = None


class ChangeOut(Out):
    kind: str  # lift, escalator, stairs, ramp
    direction: Literal["up", "down"]
    to_floor: int
    to_floor_name: str
    distance_m: float  # ridden or climbed (the legs' distances are walked)
    seconds: int


class LegOut(Out):
    floor: int
    floor_name: str  # L2, B1
    polyline: list[list[float]]  # [[x, y], ...] metres on the floor's plan, from the start point to the goal point
    distance_m: float
    seconds: int
    change: ChangeOut | None  # the floor change that ends this leg


class StepOut(Out):
    kind: Literal["start", "walk", "change", "arrive"]
    floor: int
    text: str
    distance_m: float | None = None
    change: str | None = None
    to_floor: int | None = None


class EndOut(Out):
    floor: int
    floor_name: str
    x: float
    y: float


class RouteOut(Out):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "profile": "step_free", "locale": "en", "graph_version": 3, "distance_m": 96.4, "seconds": 131,
        "minutes": 3, "summary": "About 95 m, about 3 min",
        "start": {"floor": 2, "floor_name": "L2", "x": 40.0, "y": 12.0},
        "end": {"floor": -2, "floor_name": "B2", "x": 18.5, "y": 30.0},
        "legs": [{"floor": 2, "floor_name": "L2", "polyline": [[40.0, 12.0], [40.0, 4.0], [12.0, 4.0]],
                  "distance_m": 36.0, "seconds": 30,
                  "change": {"kind": "lift", "direction": "down", "to_floor": -2, "to_floor_name": "B2",
                             "distance_m": 9.0, "seconds": 45}},
                 {"floor": -2, "floor_name": "B2", "polyline": [[12.0, 4.0], [18.5, 30.0]], "distance_m": 51.4,
                  "seconds": 56, "change": None}],
        "steps": [{"kind": "start", "floor": 2, "text": "Start at Starbucks (L2)"},
                  {"kind": "walk", "floor": 2, "text": "Walk about 35 m to Lift 3", "distance_m": 36.0},
                  {"kind": "change", "floor": 2, "text": "Take the lift down to B2", "change": "lift",
                   "to_floor": -2},
                  {"kind": "walk", "floor": -2, "text": "Walk about 50 m", "distance_m": 51.4},
                  {"kind": "arrive", "floor": -2, "text": "Arrive at your car, bay B2-C058"}]}]})

    profile: str
    locale: str  # the language of summary and steps
    graph_version: int
    distance_m: float  # rounded to 0.1 m
    seconds: int
    minutes: int  # rounded up
    summary: str
    start: EndOut
    end: EndOut
    legs: list[LegOut]
    steps: list[StepOut]


def _router(session: Session) -> Router | None:
    """The compiled graph of the current version, compiled once per version in this process."""
    version = graph_store.graph_version(session)
    if version == 0:
        return None
    cached = current_app.extensions.get(_CACHE)
    if cached is not None and cached.graph.version == version:
        return cached
    with _LOCK:
        cached = current_app.extensions.get(_CACHE)
        if cached is None or cached.graph.version != version:
            cached = Router(graph_store.load_graph(session))
            current_app.extensions[_CACHE] = cached
        return cached


def _position_engine(session: Session) -> Engine:
    """The proximity engine that places a member for ``from=me``, built once per venue registry version."""
    rt = runtime()
    version = venue.registry_version(rt.redis)
    cached = current_app.extensions.get(_ENGINE)
    if cached is not None and cached[0] == version:
        return cached[1]
    engine = position_engine(session, rt.settings.beacons, version)
    current_app.extensions[_ENGINE] = (version, engine)
    return engine


def _leg_out(leg: Leg) -> LegOut:
    ch = leg.change
    change = None if ch is None else ChangeOut(kind=ch.kind, direction=ch.direction, to_floor=ch.to_floor,
                                               to_floor_name=floor_name(ch.to_floor), distance_m=round(ch.distance_m, 1),
                                               seconds=round(ch.seconds))
    return LegOut(floor=leg.floor, floor_name=floor_name(leg.floor),
                  polyline=[[round(x, 2), round(y, 2)] for x, y in leg.polyline], distance_m=leg.distance_m,
                  seconds=round(leg.seconds), change=change)


@operation(bp, "/routes", "GET", summary="A route across floors: polylines per floor, distance, time and steps",
           query=RoutesQuery, response=RouteOut,
           errors=("auth.required", "auth.invalid_token", "auth.wrong_caller", "routes.no_graph",
                   "routes.store_not_found", "routes.bay_not_found", "routes.node_not_found", "routes.item_not_found",
                   "routes.no_position", "routes.no_car", "routes.unreachable"))
def route(query: RoutesQuery) -> RouteOut:
    rt = runtime()
    member_id = None
    if query.origin == "me" or query.to == "car" or request.headers.get("Authorization"):
        authenticate_member()
        member_id = current_member_id()
    with transaction() as session:
        chosen = members.locale_of(members.get(session, member_id)) if member_id is not None else None
        locale = i18n.negotiate(query.lang, chosen, accept_language=request.headers.get("Accept-Language"))
        router = _router(session)
        planned = planner.plan(session, rt.redis, router, query.origin, query.to, query.profile,
                               member_id=member_id, engine=lambda: _position_engine(session),
                               now=rt.now().timestamp())
    found = planned.route
    steps = describe(found, router.graph, locale, planned.origin, planned.destination)
    return RouteOut(
        profile=found.profile, locale=locale, graph_version=router.graph.version, distance_m=found.distance_m,
        seconds=round(found.seconds), minutes=found.minutes, summary=summary(found, locale),
        start=EndOut(floor=found.start[0], floor_name=floor_name(found.start[0]), x=found.start[1],
                     y=found.start[2]),
        end=EndOut(floor=found.end[0], floor_name=floor_name(found.end[0]), x=found.end[1], y=found.end[2]),
        legs=[_leg_out(leg) for leg in found.legs],
        steps=[StepOut(kind=s.kind, floor=s.floor, text=s.text, distance_m=s.distance_m, change=s.change,
                       to_floor=s.to_floor) for s in steps])
