"""Reading the graph file's features and the edges' costs: pure rules (docs/wayfinding.md)."""

from __future__ import annotations

import pytest

from mallapp.domain.wayfinding.features import floors_crossed, parse_level, read_collection, read_feature
from mallapp.domain.wayfinding.store import edge_seconds
from mallapp.settings import WayfindingSettings


def _point(props, fid="n1", coords=(1, 2)):
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": list(coords)},
            "properties": props}


def _line(props, fid="e1", coords=((0, 0), (3, 4))):
    return {"type": "Feature", "id": fid, "geometry": {"type": "LineString", "coordinates": [list(c) for c in coords]},
            "properties": {"mall:from": "a", "mall:to": "b", **props}}


@pytest.mark.parametrize(("text", "floors"), [("1", (1,)), ("-2", (-2,)), ("1;2", (1, 2)), (" -1 ; 1 ", (-1, 1)),
                                              ("0", None), ("1;2;3", None), ("first", None), (1, None), ("", None)])
def test_level_reads_one_floor_or_a_floor_change(text, floors):
    assert parse_level(text) == floors


def test_there_is_no_floor_zero_between_basement_and_ground():
    assert (floors_crossed(-1, 1), floors_crossed(-2, 3), floors_crossed(1, 2), floors_crossed(2, -1)) == (1, 4, 1, 2)


@pytest.mark.parametrize(("props", "kind", "amenity"), [
    ({"indoor": "corridor"}, "junction", None),
    ({"door": "yes", "mall:store": "L1-02"}, "door", None),
    ({"entrance": "main"}, "entrance", "exit"),
    ({"highway": "elevator"}, "lift", "lift"),
    ({"highway": "steps"}, "stairs", None),
    ({"highway": "steps", "conveying": "forward"}, "escalator", None),
    ({"ramp": "yes"}, "ramp", None),
    ({"amenity": "toilets"}, "amenity", "toilets"),
    ({"mall:amenity": "nursing_room"}, "amenity", "nursing_room"),
])
def test_a_points_tags_say_its_kind_and_amenity(props, kind, amenity):
    spec, problems = read_feature(_point({"level": "1", **props}))
    assert problems == [] and (spec.kind, spec.amenity) == (kind, amenity)


@pytest.mark.parametrize(("props", "kind", "oneway"), [
    ({}, "walk", False), ({"highway": "corridor"}, "walk", False), ({"highway": "elevator"}, "lift", False),
    ({"highway": "steps"}, "stairs", False), ({"highway": "steps", "conveying": "forward"}, "escalator", True),
    ({"ramp": "yes"}, "ramp", False), ({"incline": "up"}, "ramp", False)])
def test_a_linestrings_tags_say_its_kind(props, kind, oneway):
    spec, problems = read_feature(_line({"level": "1;2", **props}))
    assert problems == [] and (spec.kind, spec.oneway) == (kind, oneway)


def test_a_backward_escalator_runs_from_its_to_end_and_length_is_the_geometrys_unless_given():
    spec, _ = read_feature(_line({"level": "1;2", "highway": "steps", "conveying": "backward"}))
    assert (spec.a, spec.b, spec.length_m) == ("b", "a", 5.0)
    given, _ = read_feature(_line({"level": "1", "mall:length_m": 7.5}))
    assert given.length_m == 7.5


def test_every_problem_of_every_feature_is_reported_with_its_feature():
    _, _, problems = read_collection({"type": "FeatureCollection", "features": [
        _point({"level": "1", "indoor": "corridor", "shop": "x"}),
        _point({"level": "1", "amenity": "casino"}, fid="n2"),
        _point({"level": "1", "indoor": "corridor"}, fid="n2"),
        _line({"level": "1", "conveying": "forward"}),
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [0, 0]}},
        "not a feature"]})
    assert sorted(((p["feature"] or ""), p["kind"]) for p in problems) == [
        ("", "bad_feature"), ("", "missing_id"), ("e1", "unknown_value"), ("n1", "unknown_tag"),
        ("n2", "duplicate_id"), ("n2", "unknown_amenity")]


def test_edge_seconds_follow_the_settings():
    costs = WayfindingSettings()
    assert edge_seconds("walk", 12, 1, 1, costs) == pytest.approx(10)
    assert edge_seconds("lift", 0, -2, 3, costs) == pytest.approx(40 + 6 * 4)
    assert edge_seconds("escalator", 10, 1, 2, costs) == pytest.approx(20)
    assert edge_seconds("stairs", 6, 1, 2, costs) == pytest.approx(5 + 20)
