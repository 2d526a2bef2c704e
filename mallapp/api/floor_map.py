"""The floor plan for shoppers (public: no token): the floors in use, and one floor's map to draw routes on.

Only what any shopper may see: no beacons, gateways or member data (docs/directory.md, "The floor plan for
shoppers"). The language is the directory's: the member token's locale, else ``lang``, else Accept-Language.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Literal

from flask import Blueprint, Response, current_app, request
from pydantic import Field
from sqlalchemy.orm import Session

from mallapp import i18n
from mallapp.api.core import Out, operation, runtime, transaction
from mallapp.api.directory import CategoryOut, LangQuery, caller_locale
from mallapp.api.wayfinding_admin import AmenityOut
from mallapp.domain import directory, floor_map
from mallapp.domain.floor_map import FloorInfo
from mallapp.domain.venue import floor_name
from mallapp.domain.wayfinding import store as graph_store
from mallapp.errors import NotFound

bp = Blueprint("floor_map", __name__, url_prefix="/api/v1/floors")
_CACHE = "mallapp.floor_map.graph"  # (graph version, {floor: its graph part}) in app.extensions
_LOCK = threading.Lock()

Point = list[float]


class FloorOut(Out):
    number: int = Field(description="1 the ground floor, 2 and up above, -1 and down below")
    floor_name: str = Field(description='"L1", "B2" ...')
    name: str = Field(description="in the caller's language: the name ops gave the floor, else the car-park "
                                  'level\'s, else "1楼" / "L1"')
    kind: Literal["mall", "carpark"] = Field(description="carpark: a car-park level with no active store")
    outline: list[Point] = Field(description="[[x, y], ...] in plan metres, not closed; [] when there is nothing "
                                             "to draw yet")
    outline_source: Literal["floor", "hull", "none"] = Field(
        description="floor: drawn by ops; hull: the convex hull of the graph's nodes and the stores on it")
    stores: int = Field(description="active stores on the floor")
    amenities: int = Field(description="the graph's amenities on the floor")


class FloorsOut(Out):
    floors: list[FloorOut] = Field(description="lowest first")
    locale: str


class MapStoreOut(Out):
    id: int
    display_name: str = Field(description="the name in the caller's language (the Chinese one when it has no "
                                          "English name)")
    name: str = Field(description="the primary (Chinese) name")
    name_en: str
    unit: str
    category: CategoryOut
    x: float
    y: float
    outline: list[Point] | None = Field(description="the polygon of its store zone; null when it has none")
    open_now: bool | None = Field(description="null without published hours")


class PathOut(Out):
    kind: str = Field(description='"walk"')
    coords: list[Point] = Field(description="the corridor's polyline in plan metres")
    oneway: bool


class LandingOut(Out):
    id: str = Field(description="the graph node's id (a route's node:)")
    kind: Literal["lift", "stairs", "escalator", "ramp"]
    display_name: str
    name: str
    name_en: str
    x: float
    y: float
    floors: list[int] = Field(description="the floors its open edges join")
    up: bool = Field(description="one can go up from here (an escalator may run one way only)")
    down: bool


class EntranceOut(Out):
    id: str
    display_name: str
    name: str
    name_en: str
    x: float
    y: float


class FloorMapOut(Out):
    floor: FloorOut
    graph_version: int = Field(description="the walkable graph's version: refetch when a route names another")
    stores: list[MapStoreOut] = Field(description="the active stores, by unit")
    amenities: list[AmenityOut] = Field(description="as GET /api/v1/amenities gives them")
    entrances: list[EntranceOut]
    paths: list[PathOut] = Field(description="the open walkable edges on this floor (closed ones are left out)")
    landings: list[LandingOut] = Field(description="lifts, stairs, escalators and ramps with an open floor change")
    locale: str


def _display(locale: str, name: str, name_en: str) -> str:
    return name_en if locale == "en" and name_en else name


def floor_out(info: FloorInfo, locale: str) -> FloorOut:
    own = info.name_en if locale == "en" else info.name_zh
    default = i18n.t(locale, "floor_map.name.above" if info.number > 0 else "floor_map.name.below",
                     number=abs(info.number))
    return FloorOut(number=info.number, floor_name=floor_name(info.number), name=own or default, kind=info.kind,
                    outline=info.outline, outline_source=info.outline_source, stores=info.stores,
                    amenities=info.amenities)


def _graph_part(session: Session, number: int) -> tuple[floor_map.FloorGraph, list[PathOut]]:
    """The graph's part of floor ``number``'s map, read once per graph version and floor in this process (as the
    routes keep their compiled graph): its corridors are most of the answer, and they change only with the
    version. One read (the version) when it is kept already."""
    version = graph_store.graph_version(session)
    kept = current_app.extensions.get(_CACHE)
    if kept is not None and kept[0] == version and number in kept[1]:
        return kept[1][number]
    graph = floor_map.floor_graph(session, number)
    # Read from rows the import checked: hundreds of corridors a floor are not validated again.
    part = graph, [PathOut.model_construct(kind=p.kind, coords=p.coords, oneway=p.oneway) for p in graph.paths]
    with _LOCK:
        kept = current_app.extensions.get(_CACHE)
        if kept is None or kept[0] != graph.version:
            kept = (graph.version, {})
            current_app.extensions[_CACHE] = kept
        kept[1][number] = part
    return part


@operation(bp, "", "GET", summary="The floors in use, lowest first, with names, outlines and counts; no token "
           "needed", query=LangQuery, response=FloorsOut)
def list_floors(query: LangQuery) -> FloorsOut:
    locale = caller_locale(query.lang)
    with transaction() as session:
        return FloorsOut(floors=[floor_out(f, locale) for f in floor_map.floors(session)], locale=locale)


@operation(bp, "/<floor>/map", "GET", summary="Everything to draw one floor (by number, or L1/B2): outline, "
           "stores, amenities, corridors, landings, entrances, the graph's version; no token needed",
           query=LangQuery, response=FloorMapOut, errors=("floor_map.unknown_floor",),
           also={304: "not modified: If-None-Match named the current ETag (no body)"})
def get_floor_map(floor: str, query: LangQuery):  # type: ignore[no-untyped-def]
    number = floor_map.parse_floor(floor[:8])
    if number is None:
        raise NotFound(f"no floor {floor[:8]!r}: a number (2, -1) or a name (L2, B1)",
                       code="floor_map.unknown_floor", details={"floor": floor[:8]})
    locale = caller_locale(query.lang)
    rt = runtime()
    now, tz = rt.now(), rt.settings.mall.tz
    with transaction() as session:
        venue = floor_map.floor_venue(session, number)
        graph, paths = _graph_part(session, number)
    out = FloorMapOut(
        floor=floor_out(venue.floor, locale), graph_version=graph.version,
        stores=[MapStoreOut(
            id=s.store.id, display_name=_display(locale, s.store.name, s.store.name_en), name=s.store.name,
            name_en=s.store.name_en, unit=s.store.unit,
            category=CategoryOut(code=s.store.category, label=i18n.t(locale, f"directory.category.{s.store.category}")
                                 if s.store.category in directory.CATEGORIES else s.store.category),
            x=s.store.x, y=s.store.y, outline=s.outline, open_now=directory.open_now(s.store.hours, now, tz))
            for s in venue.stores],
        amenities=[AmenityOut(id=n.id, kind=n.amenity or "",
                              label=i18n.t(locale, f"wayfinding_admin.amenity.{n.amenity}"), name=n.name,
                              name_en=n.name_en, floor=n.floor, floor_name=floor_name(n.floor), x=n.x, y=n.y)
                   for n in graph.amenities],
        entrances=[EntranceOut(id=n.id, display_name=_display(locale, n.name, n.name_en), name=n.name,
                               name_en=n.name_en, x=n.x, y=n.y) for n in graph.entrances],
        paths=paths,
        landings=[LandingOut(id=g.node.id, kind=g.kind, display_name=_display(locale, g.node.name, g.node.name_en),
                             name=g.node.name, name_en=g.node.name_en, x=g.node.x, y=g.node.y, floors=g.floors,
                             up=g.up, down=g.down) for g in graph.landings],
        locale=locale)
    body = out.model_dump_json().encode()  # serialised once: hashed for the ETag and sent as it is
    # The answer's own fingerprint: it moves with the graph's version, any store, zone or floor edit, the
    # language and open_now, and with nothing else. The client sends it back in If-None-Match.
    etag = f"v{graph.version}-{hashlib.sha256(body).hexdigest()[:24]}"
    response = Response(body, mimetype="application/json")
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"  # keep it, but ask each time (a 304 costs no body)
    response.headers["Vary"] = "Accept-Language, Authorization"
    if request.if_none_match.contains(etag):
        response.set_data(b"")
        response.headers.pop("Content-Type", None)
        return response, 304
    return response
