"""A route in words: where to start, how far to walk, every floor change, where you arrive (zh-CN or English).

Texts come from the ``routes`` catalogue (mallapp/locales/*/routes.toml). Floors read as a shopper reads
them: "2楼" / "B2层" in Chinese, "L2" / "B2" in English (:func:`mallapp.domain.venue_admin.floor_name`).
Distances are rounded as one says them ("about 40 m": to 5 m, to the metre under 10 m); a walk of less than
a metre is not a step.
"""

from __future__ import annotations

from dataclasses import dataclass

from mallapp import i18n
from mallapp.domain.wayfinding.graph import Graph
from mallapp.domain.wayfinding.routes import Leg, Route

__all__ = ["Label", "Step", "about_m", "describe", "floor_label", "summary"]

# Nodes whose names are worth saying on the way ("past the atrium"): not the doors and bays one passes.
_LANDMARK_KINDS = frozenset({"junction", "entrance", "amenity", "lift", "stairs", "escalator", "ramp"})


@dataclass(frozen=True)
class Label:
    """What the steps call a route's start or end.

    ``kind``: "store", "item" (a sale item in a store: ``item`` is its name), "bay", "car" (the member's
    parked car: ``name`` is the bay's code), "position" (the member's own), "amenity" (``amenity`` the kind),
    "place" (a named node) or "point" (a node without a name).
    """

    kind: str
    name: str = ""
    name_en: str = ""
    unit: str = ""
    item: str = ""
    amenity: str = ""


@dataclass(frozen=True)
class Step:
    kind: str  # "start", "walk", "change", "arrive"
    floor: int  # the floor the step starts on
    text: str
    distance_m: float | None = None  # a walk's, as measured (the text says it rounded)
    change: str | None = None  # a change's kind: lift, escalator, stairs, ramp
    to_floor: int | None = None  # a change's target floor


def _locale(locale: str | None) -> str:
    return i18n.normalise(locale) or i18n.DEFAULT


def _pick(locale: str, zh: str, en: str) -> str:
    """A name in the reader's language, else in the other one."""
    return (en or zh) if locale == "en" else (zh or en)


def floor_label(locale: str | None, floor: int) -> str:
    """A floor as the reader says it: 2楼 / B2层, L2 / B2."""
    key = "routes.floor.below" if floor < 0 else "routes.floor.above"
    return i18n.t(_locale(locale), key, number=abs(floor))


def about_m(metres: float) -> int:
    """A distance as one says it: to the metre under 10 m, else to 5 m."""
    return max(1, round(metres)) if metres < 10 else int(5 * round(metres / 5))


def summary(route: Route, locale: str | None) -> str:
    return i18n.t(_locale(locale), "routes.summary.text", distance=about_m(route.distance_m), minutes=route.minutes)


def describe(route: Route, graph: Graph, locale: str | None, origin: Label, destination: Label) -> list[Step]:
    """The steps of ``route`` in ``locale``'s language (zh-CN by default)."""
    loc = _locale(locale)
    out = [Step("start", route.start[0], _start_text(loc, origin, route.start[0]))]
    last = len(route.legs) - 1
    for n, leg in enumerate(route.legs):
        walk = _walk_text(loc, graph, leg, final=n == last)
        if walk is not None:
            out.append(Step("walk", leg.floor, walk, distance_m=leg.distance_m))
        if leg.change is not None:
            ch = leg.change
            text = i18n.t(loc, f"routes.change.{ch.kind}_{ch.direction}", floor=floor_label(loc, ch.to_floor))
            out.append(Step("change", leg.floor, text, change=ch.kind, to_floor=ch.to_floor))
    out.append(Step("arrive", route.end[0], _arrive_text(loc, destination)))
    return out


def _start_text(loc: str, origin: Label, floor: int) -> str:
    where = floor_label(loc, floor)
    name = _pick(loc, origin.name, origin.name_en)
    if origin.kind in ("store", "item"):
        return i18n.t(loc, "routes.start.store", name=name, floor=where)
    if origin.kind in ("bay", "car"):
        return i18n.t(loc, "routes.start.bay", bay=origin.name, floor=where)
    if origin.kind == "position":
        return i18n.t(loc, "routes.start.position", floor=where)
    if origin.kind == "amenity":
        return i18n.t(loc, "routes.start.place", name=i18n.t(loc, f"routes.amenity.{origin.amenity}"), floor=where)
    if name:
        return i18n.t(loc, "routes.start.place", name=name, floor=where)
    return i18n.t(loc, "routes.start.point", floor=where)


def _walk_text(loc: str, graph: Graph, leg: Leg, *, final: bool) -> str | None:
    if leg.distance_m < 1.0:
        return None
    distance = about_m(leg.distance_m)
    if leg.change is not None:
        landing = graph.nodes[leg.change.node]
        landmark = _pick(loc, landing.name, landing.name_en) or i18n.t(loc, f"routes.landing.{leg.change.kind}")
        return i18n.t(loc, "routes.walk.to", distance=distance, landmark=landmark)
    if final:
        for node_id in leg.nodes[1:-1]:  # the first named place on the way
            node = graph.nodes[node_id]
            via = _pick(loc, node.name, node.name_en) if node.kind in _LANDMARK_KINDS else ""
            if via:
                return i18n.t(loc, "routes.walk.via", distance=distance, via=via)
    return i18n.t(loc, "routes.walk.plain", distance=distance)


def _arrive_text(loc: str, dest: Label) -> str:
    name = _pick(loc, dest.name, dest.name_en)
    if dest.kind == "store":
        if dest.unit:
            return i18n.t(loc, "routes.arrive.store", name=name, unit=dest.unit)
        return i18n.t(loc, "routes.arrive.store_no_unit", name=name)
    if dest.kind == "item":
        key = "routes.arrive.item" if dest.unit else "routes.arrive.item_no_unit"
        return i18n.t(loc, key, name=name, unit=dest.unit, item=dest.item)
    if dest.kind == "car":
        return i18n.t(loc, "routes.arrive.car", bay=dest.name)
    if dest.kind == "bay":
        return i18n.t(loc, "routes.arrive.bay", bay=dest.name)
    if dest.kind == "amenity":
        return i18n.t(loc, "routes.arrive.amenity", name=i18n.t(loc, f"routes.amenity.{dest.amenity}"))
    if name:
        return i18n.t(loc, "routes.arrive.place", name=name)
    return i18n.t(loc, "routes.arrive.point")
