"""The walkable graph as routes see it: plain, immutable values compiled from what ops imported.

:mod:`mallapp.domain.wayfinding.store` keeps the graph in the database and compiles it into a
:class:`Graph`; :mod:`mallapp.domain.wayfinding.routes` finds routes over one. Both sides meet here
only, so a route can be computed (and tested) on a graph built in memory.

Coordinates are metres on the floor's plan (x east, y north), the frame of ``stores.x/y``, the zones'
polygons and the parking bays' ``x/y``. A floor is the venue's number: 1 the ground floor, 2 and up
above, -1 and down the car-park levels (``parking_levels.floor``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# What a node is. "door": a store's door (store_id set); "entrance": a door of the mall to the street;
# "junction": a point along a corridor or a car-park aisle; "lift", "stairs", "escalator", "ramp": the
# landing of a floor change on this floor; "amenity": a toilet, service desk… (amenity set).
NODE_KINDS = ("junction", "door", "entrance", "lift", "stairs", "escalator", "ramp", "amenity")
# How an edge is walked. Floor changes are "lift", "stairs", "escalator" and "ramp" (typed: an edge between
# two floors of any other kind is refused on import); "walk" stays on one floor.
EDGE_KINDS = ("walk", "lift", "stairs", "escalator", "ramp")
# What the step-free profile may not use.
STEPPED = frozenset({"stairs", "escalator"})
# The amenities a member can ask for, as OpenStreetMap tags them where it has a tag.
AMENITY_KINDS = ("toilets", "service_desk", "exit", "lift", "nursing_room", "carpark_lift")


@dataclass(frozen=True)
class Node:
    id: str  # the imported feature's id, stable across re-imports ("L1-j12")
    floor: int
    x: float
    y: float
    kind: str
    store_id: int | None = None  # a door's store
    amenity: str | None = None  # an amenity node's kind (AMENITY_KINDS)
    name: str = ""  # what the steps call it, zh-CN ("3号电梯"); "" when it has no name
    name_en: str = ""


@dataclass(frozen=True)
class Edge:
    a: str
    b: str
    kind: str  # EDGE_KINDS
    length_m: float  # the distance walked (or ridden) from a to b, for the answer's distance
    seconds: float  # what it takes from a to b at walking pace (a lift: waiting and riding), the fastest profile's cost
    oneway: bool = False  # an escalator runs from a to b only
    # Of ``seconds``, what is paid once per boarding (a lift's wait): riding on through the next landing of the
    # same lift costs only the rest, so a ride from L3 to B2 waits once, not once per floor.
    board_s: float = 0.0


@dataclass(frozen=True)
class Graph:
    """One compiled version of the mall's graph."""

    version: int
    nodes: dict[str, Node]
    edges: tuple[Edge, ...]
    # Where a store, a parking bay and a sale item are reached: the node ids, nearest first.
    store_nodes: dict[int, tuple[str, ...]] = field(default_factory=dict)
    bay_nodes: dict[int, str] = field(default_factory=dict)
