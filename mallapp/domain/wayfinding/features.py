"""Reading the graph's GeoJSON: each feature's tags to a node or an edge, every defect named, none raised.

The file format is docs/wayfinding.md ("The graph file"): Point features are nodes, LineString features are
edges, their properties follow OpenStreetMap's Simple Indoor Tagging where it has a tag and use ``mall:`` keys
where it has none. Coordinates are metres on the floor's plan, as everywhere in mallapp (not RFC 7946's WGS84).
:func:`read_feature` turns one feature into a :class:`NodeSpec` or :class:`EdgeSpec` plus its problems; the
checks that need the whole graph (connected, every store has a door…) are :mod:`.validate`'s.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mallapp.domain.wayfinding.graph import AMENITY_KINDS

# Every key a feature may carry, and the values of the keys that take a fixed set.
NODE_KEYS = frozenset({"level", "indoor", "door", "entrance", "highway", "conveying", "ramp", "amenity", "name",
                       "name:en", "ref", "mall:store", "mall:amenity"})
EDGE_KEYS = frozenset({"level", "indoor", "highway", "conveying", "ramp", "incline", "name", "name:en", "ref",
                       "mall:from", "mall:to", "mall:length_m", "mall:closed"})
VALUES: dict[str, frozenset[str]] = {
    "indoor": frozenset({"corridor", "door", "area"}),
    "door": frozenset({"yes"}),
    "entrance": frozenset({"main", "yes"}),
    "conveying": frozenset({"forward", "backward"}),
    "ramp": frozenset({"yes"}),
    "mall:closed": frozenset({"yes", "no"}),
}
NODE_HIGHWAY = frozenset({"elevator", "steps"})
EDGE_HIGHWAY = frozenset({"corridor", "footway", "elevator", "steps"})
# amenity= values OpenStreetMap has; mall:amenity= for the ones it has no tag for.
OSM_AMENITIES = {"toilets": "toilets"}
MALL_AMENITIES = {"service_desk": "service_desk", "nursing_room": "nursing_room"}
MAX_ID = 64
# A feature's id appears in the edit endpoints' paths: letters, digits and . _ : - only.
ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
MAX_NAME = 80


@dataclass
class NodeSpec:
    id: str
    floor: int
    x: float
    y: float
    kind: str
    unit: str | None  # mall:store, resolved to a store id by the caller
    amenity: str | None
    name: str
    name_en: str
    props: dict[str, Any]


@dataclass
class EdgeSpec:
    id: str
    a: str  # walking order: an escalator runs a -> b (conveying=backward swaps the file's order)
    b: str
    kind: str
    given_length_m: float | None
    geometry_length_m: float
    oneway: bool
    closed: bool
    levels: tuple[int, ...]  # from the level tag: one floor, or the two ends of a floor change
    props: dict[str, Any]
    coords: list[list[float]] = field(default_factory=list)

    @property
    def length_m(self) -> float:
        return self.given_length_m if self.given_length_m is not None else self.geometry_length_m


def problem(feature: str | None, kind: str, text: str) -> dict[str, Any]:
    """One defect as the API lists it: the feature's id, an English sentence, a stable kind."""
    return {"feature": feature, "problem": text, "kind": kind}


def parse_level(value: Any) -> tuple[int, ...] | None:
    """``"1"`` → (1,), ``"-2"`` → (-2,), ``"1;2"`` → (1, 2); None when it is not that."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        floors = tuple(int(part.strip()) for part in value.split(";"))
    except ValueError:
        return None
    if len(floors) > 2 or any(f == 0 or not -20 <= f <= 200 for f in floors):
        return None
    return floors


def level_text(floors: tuple[int, ...]) -> str:
    return ";".join(str(f) for f in floors)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and abs(value) <= 100_000


def _tag_problems(fid: str, props: Mapping[str, Any], keys: frozenset[str]) -> list[dict[str, Any]]:
    found = []
    for key, value in props.items():
        if key not in keys:
            found.append(problem(fid, "unknown_tag", f"unknown tag {key!r}"))
        elif key in VALUES and value not in VALUES[key]:
            found.append(problem(fid, "unknown_value", f"{key}={value!r} is not one of {sorted(VALUES[key])}"))
        elif key in ("name", "name:en", "ref", "mall:store", "mall:from", "mall:to") and not (
                isinstance(value, str) and len(value) <= MAX_NAME):
            found.append(problem(fid, "unknown_value", f"{key} must be a text of at most {MAX_NAME} characters"))
    return found


def _node_kind(fid: str, props: Mapping[str, Any]) -> tuple[str | None, str | None, list[dict[str, Any]]]:
    """(kind, amenity, problems) of a Point's tags; the amenity of a lift is decided by its floor later."""
    highway = props.get("highway")
    if highway is not None and highway not in NODE_HIGHWAY:
        return None, None, [problem(fid, "unknown_value", f"highway={highway!r} on a node is not one of "
                                                          f"{sorted(NODE_HIGHWAY)}")]
    amenity, mall_amenity = props.get("amenity"), props.get("mall:amenity")
    if amenity is not None and amenity not in OSM_AMENITIES:
        return None, None, [problem(fid, "unknown_amenity", f"amenity={amenity!r} is not one of "
                                                            f"{sorted(OSM_AMENITIES)}")]
    if mall_amenity is not None and mall_amenity not in MALL_AMENITIES:
        return None, None, [problem(fid, "unknown_amenity", f"mall:amenity={mall_amenity!r} is not one of "
                                                            f"{sorted(MALL_AMENITIES)}")]
    if props.get("mall:store") is not None:
        if props.get("door") != "yes":
            return None, None, [problem(fid, "store_door_untagged", "mall:store needs door=yes (a store's door)")]
        return "door", None, []
    if props.get("entrance") is not None:
        return "entrance", "exit", []
    if highway == "elevator":
        return "lift", "lift", []
    if highway == "steps":
        return ("escalator" if "conveying" in props else "stairs"), None, []
    if props.get("ramp") == "yes":
        return "ramp", None, []
    if amenity is not None or mall_amenity is not None:
        return "amenity", OSM_AMENITIES.get(amenity) or MALL_AMENITIES[mall_amenity], []
    if props.get("indoor") in ("corridor", "area", "door") or props.get("door") == "yes":
        return "junction", None, []
    return None, None, [problem(fid, "node_untyped", "a node needs indoor=corridor|area|door, door=yes, entrance, "
                                                     "highway=elevator|steps, ramp=yes or an amenity")]


def _edge_kind(fid: str, props: Mapping[str, Any]) -> tuple[str | None, bool, list[dict[str, Any]]]:
    """(kind, oneway, problems) of a LineString's tags."""
    highway = props.get("highway")
    if highway is not None and highway not in EDGE_HIGHWAY:
        return None, False, [problem(fid, "unknown_value", f"highway={highway!r} on an edge is not one of "
                                                           f"{sorted(EDGE_HIGHWAY)}")]
    if "incline" in props and not isinstance(props["incline"], str):
        return None, False, [problem(fid, "unknown_value", "incline must be a text (up, down, 8%)")]
    if highway == "elevator":
        return "lift", False, []
    if highway == "steps":
        return ("escalator", True, []) if "conveying" in props else ("stairs", False, [])
    if "conveying" in props:
        return None, False, [problem(fid, "unknown_value", "conveying needs highway=steps (an escalator)")]
    if props.get("ramp") == "yes" or "incline" in props:
        return "ramp", False, []
    return "walk", False, []


def _common(feature: Any) -> tuple[str | None, str, Mapping[str, Any], Any, list[dict[str, Any]]]:
    """(id, geometry type, properties, coordinates, problems) of a feature, however malformed."""
    if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
        return None, "", {}, None, [problem(None, "bad_feature", "not a GeoJSON Feature")]
    fid = feature.get("id")
    if isinstance(fid, int) and not isinstance(fid, bool):
        fid = str(fid)
    if not isinstance(fid, str) or not ID.match(fid):
        return None, "", {}, None, [problem(None, "missing_id", f"every feature needs an id: 1 to {MAX_ID} letters, "
                                                                "digits, '.', '_', ':' or '-'")]
    props = feature.get("properties") or {}
    geometry = feature.get("geometry")
    if not isinstance(props, Mapping) or not isinstance(geometry, Mapping):
        return fid, "", {}, None, [problem(fid, "bad_feature", "properties must be an object and geometry present")]
    return fid, str(geometry.get("type")), props, geometry.get("coordinates"), []


def read_feature(feature: Any) -> tuple[NodeSpec | EdgeSpec | None, list[dict[str, Any]]]:
    """One feature as a node or an edge, or None and what is wrong with it."""
    fid, gtype, props, coords, found = _common(feature)
    if found:
        return None, found
    assert fid is not None
    floors = parse_level(props.get("level"))
    if floors is None:
        found.append(problem(fid, "bad_level", 'level must be a floor ("1", "-2") or a floor change ("1;2")'))
    if gtype == "Point":
        found += _tag_problems(fid, props, NODE_KEYS)
        if not (isinstance(coords, list) and len(coords) >= 2 and all(_number(c) for c in coords[:2])):
            found.append(problem(fid, "bad_geometry", "a Point's coordinates are [x, y] in metres"))
        if floors is not None and len(floors) != 1:
            found.append(problem(fid, "bad_level", "a node is on one floor"))
        kind, amenity, kind_problems = _node_kind(fid, props)
        found += kind_problems
        if found or kind is None or floors is None:
            return None, found
        return NodeSpec(fid, floors[0], float(coords[0]), float(coords[1]), kind, props.get("mall:store"), amenity,
                        props.get("name", ""), props.get("name:en", ""), dict(props)), []
    if gtype == "LineString":
        found += _tag_problems(fid, props, EDGE_KEYS)
        if not (isinstance(coords, list) and len(coords) >= 2 and all(
                isinstance(p, list) and len(p) >= 2 and all(_number(c) for c in p[:2]) for p in coords)):
            found.append(problem(fid, "bad_geometry", "a LineString's coordinates are two or more [x, y] in metres"))
        ends = props.get("mall:from"), props.get("mall:to")
        if not all(isinstance(end, str) and end for end in ends):
            found.append(problem(fid, "edge_ends_missing", "an edge names its ends: mall:from and mall:to (node ids)"))
        given = props.get("mall:length_m")
        if given is not None and not (_number(given) and given >= 0):
            found.append(problem(fid, "unknown_value", "mall:length_m must be a number of metres"))
        kind, oneway, kind_problems = _edge_kind(fid, props)
        found += kind_problems
        if found or kind is None or floors is None:
            return None, found
        a, b = str(ends[0]), str(ends[1])
        if props.get("conveying") == "backward":
            a, b = b, a
        points = [[float(p[0]), float(p[1])] for p in coords]
        run = sum(math.dist(p, q) for p, q in zip(points, points[1:], strict=False))
        return EdgeSpec(fid, a, b, kind, None if given is None else float(given), run, oneway,
                        props.get("mall:closed") == "yes", floors, dict(props), points), []
    return None, [problem(fid, "bad_geometry", f"geometry {gtype!r}: nodes are Points and edges LineStrings")]


def read_collection(doc: Any) -> tuple[list[NodeSpec], list[EdgeSpec], list[dict[str, Any]]]:
    """Every feature of a FeatureCollection, with every problem of every feature (duplicate ids included)."""
    if not isinstance(doc, Mapping) or doc.get("type") != "FeatureCollection" or not isinstance(
            doc.get("features"), list):
        return [], [], [problem(None, "bad_collection", "the body is a GeoJSON FeatureCollection")]
    nodes: list[NodeSpec] = []
    edges: list[EdgeSpec] = []
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for feature in doc["features"]:
        spec, its = read_feature(feature)
        fid = feature.get("id") if isinstance(feature, Mapping) else None
        fid = str(fid) if isinstance(fid, (str, int)) and not isinstance(fid, bool) else None
        if fid is not None:
            if fid in seen:
                its = [*its, problem(fid, "duplicate_id", f"the id {fid!r} is used by more than one feature")]
            seen.add(fid)
        found += its
        if isinstance(spec, NodeSpec):
            nodes.append(spec)
        elif isinstance(spec, EdgeSpec):
            edges.append(spec)
    return nodes, edges, found


def floors_crossed(a: int, b: int) -> int:
    """Floors between two floor numbers; there is no floor 0, so -1 to 1 is one floor."""
    return abs(a - b) - (1 if a * b < 0 else 0)


__all__ = ["AMENITY_KINDS", "EdgeSpec", "NodeSpec", "floors_crossed", "level_text", "parse_level", "problem",
           "read_collection", "read_feature"]
