"""Positioning on any UJI-style zone (--zone DIR), floor outlines in the position model, and the nested
cross-validation whose figure never saw the room it is scored on."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from mallapp.domain.proximity import evaluate, nested_cv, room_stats, zones
from mallapp.domain.proximity.floorplan import FloorPlan, Geometry
from mallapp.domain.proximity.recordings import GRID, Point

SMALL = {"spacing_m": 4.0, "phones": 1, "powers": 2, "samples": 3}


@pytest.fixture
def zone_dir(tmp_path):
    return zones.write_synthetic_zone(tmp_path / "office", prefix="geo", outline=False, **SMALL)


def test_a_zone_with_string_beacon_ids_and_no_obstacles_or_outline_spans_its_beacons_plus_a_metre(zone_dir):
    ds = zones.load_zone(zone_dir)
    assert ds.name == "zone:office/geo" and ds.beacon_names[1] == "B1" and len(ds.anchors) == 14
    xs, ys = [x for x, _ in ds.anchors.values()], [y for _, y in ds.anchors.values()]
    assert ds.plan is not None and ds.plan.outline is None and ds.plan.obstacles == ()
    assert ds.plan.bounds == pytest.approx((min(xs) - 1, min(ys) - 1, max(xs) + 1, max(ys) + 1))
    # Points keep phone, power and campaign apart: two powers at each place, never mixed in one point.
    places = {(p.x, p.y) for p in ds.points}
    assert len(ds.points) == 2 * len(places) and {p.power for p in ds.points} == {1, 2}
    assert all(len(p.samples) == 3 for p in ds.points)
    assert all(r[1] != zones.NOT_HEARD for p in ds.points for s in p.samples for r in s.readings)


def test_an_outline_file_in_the_zone_or_given_on_the_command_line_is_the_extent(zone_dir, tmp_path):
    outline = tmp_path / "walls.csv"
    outline.write_text("x,y\n0,0\n24,0\n24,10\n14,10\n14,16\n0,16\n")
    ds = zones.load_zone(zone_dir, outline=outline)
    assert ds.plan.outline == zones.SYNTHETIC_OUTLINE and ds.plan.bounds == (0.0, 0.0, 24.0, 16.0)
    (zone_dir / "outline").mkdir(exist_ok=True)
    shutil.copy(outline, zone_dir / "outline" / "geo.csv")
    assert zones.load_zone(zone_dir).plan.outline == zones.SYNTHETIC_OUTLINE


def test_the_prefix_is_detected_and_must_be_chosen_when_a_directory_holds_two_zones(zone_dir, tmp_path):
    assert zones.detect_prefix(zone_dir) == "geo"
    zones.write_synthetic_zone(zone_dir, prefix="lab", **SMALL)
    with pytest.raises(zones.ZoneError, match="several zones: geo, lab"):
        zones.load_zone(zone_dir)
    assert zones.load_zone(zone_dir, "lab").name == "zone:office/lab"
    assert evaluate.main(["--zone", str(zone_dir)]) == 2
    with pytest.raises(zones.ZoneError, match="no zone files"):
        zones.detect_prefix(tmp_path)


def test_the_outline_keeps_the_lattice_inside_it():
    plan = FloorPlan.from_outline(zones.SYNTHETIC_OUTLINE)
    geometry = Geometry(plan, 0.5)
    boxed = Geometry(FloorPlan(plan.bounds), 0.5)
    assert len(geometry.xs) < len(boxed.xs)
    cells = list(zip(geometry.xs, geometry.ys, strict=True))
    assert not any(x > 14.0 and y > 10.0 for x, y in cells)  # the cut corner of the L
    assert any(x > 20.0 and y < 2.0 for x, y in cells) and any(x < 2.0 and y > 14.0 for x, y in cells)
    # The area is the outline's (24 x 16 less 10 x 6 = 324 m2), in lattice weight.
    assert sum(geometry.weights) * 0.25 == pytest.approx(324.0, rel=0.01)


def test_the_zone_command_prints_one_json_object_with_each_estimator_and_the_nested_cv(zone_dir, capsys):
    assert evaluate.main(["--zone", str(zone_dir), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    for name in ("engine", "strongest", "centroid3"):
        assert doc[name]["median_m"] > 0 and doc[name]["p90_m"] >= doc[name]["median_m"]
    assert set(doc["rooms"]) == {"zone:office/geo"}
    cv = doc["nested_cv"]
    assert cv["mode"] == "blocks" and len(cv["folds"]) == nested_cv.BLOCKS
    assert sum(f["engine"]["points"] for f in cv["folds"]) == doc["engine"]["points"]
    assert set(cv["goal"]) == {"median_m", "p90_m", "met"} and isinstance(cv["goal"]["met"], bool)


def test_two_zones_are_scored_leaving_one_room_out_and_the_tables_say_so(zone_dir, tmp_path, capsys):
    other = zones.write_synthetic_zone(tmp_path / "lab", prefix="lab", seed=3, **SMALL)
    assert evaluate.main(["--zone", str(zone_dir), "--zone", str(other)]) == 0
    out = capsys.readouterr().out
    assert "== zone:office/geo: 14 beacons" in out and "== zone:lab/lab: 14 beacons" in out
    assert "leave one room out (2 folds" in out and "GOAL unseen rooms per point" in out


def _points(places):
    return [Point(x, y, []) for x, y in places]


def test_spatial_blocks_are_bands_that_keep_every_measurement_of_a_place_together():
    places = [(x, y) for x in range(12) for y in range(3)]
    points = _points(places + places)  # each place measured twice
    blocks = nested_cv.spatial_blocks(points, 4)
    assert sorted(set(blocks)) == [0, 1, 2, 3]
    for i, p in enumerate(points):
        assert all(blocks[j] == blocks[i] for j, q in enumerate(points) if (q.x, q.y) == (p.x, p.y))
    spans = [(min(p.x for p, b in zip(points, blocks, strict=True) if b == k),
              max(p.x for p, b in zip(points, blocks, strict=True) if b == k)) for k in range(4)]
    assert all(spans[k][1] < spans[k + 1][0] for k in range(3))  # along x, not interleaved


def test_the_choice_for_a_held_out_room_is_made_on_the_other_rooms_only():
    favourite, other = GRID[0], GRID[-1]

    def room(name, good):
        points = _points([(float(i), 0.0) for i in range(10)])
        grid = {g: [0.5 if g == good else 3.0] * 10 for g in GRID}
        return nested_cv.RoomErrors(name, points, {"strongest": [2.0] * 10, "centroid3": [2.0] * 10}, grid, True)

    # The held-out room would score best with `favourite`; the two others agree on `other`.
    cv = nested_cv.nested_cv([room("held", favourite), room("a", other), room("b", other)],
                             evaluate.LocateParams())
    held = next(f for f in cv.folds if f.unit == "held")
    assert (held.chosen.exponent, held.chosen.wall_db, held.chosen.independent_readings) == other
    assert held.figures()["engine"].median == 3.0
    met, figures = cv.goal()
    assert not met and figures["engine"].points == 30


def test_a_knob_the_training_rooms_cannot_tell_apart_keeps_its_default():
    points = _points([(float(i), 0.0) for i in range(10)])
    flat = {g: [1.0] * 10 for g in GRID}  # e.g. dB per obstacle in rooms without obstacles
    rooms = [nested_cv.RoomErrors(n, points, {"strongest": [2.0] * 10, "centroid3": [2.0] * 10}, flat, True)
             for n in ("a", "b")]
    params = evaluate.LocateParams()
    for fold in nested_cv.nested_cv(rooms, params).folds:
        assert fold.chosen == params
    assert math.isfinite(nested_cv.pooled([[1.0, None, 2.0]]).median)


def test_the_command_writes_the_synthetic_zone_it_documents(tmp_path, capsys):
    assert evaluate.main(["--write-synthetic-zone", str(tmp_path / "z"), "--prefix", "geo", "--no-outline"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert zones.detect_prefix(tmp_path / "z") == "geo" and not (tmp_path / "z" / "outline" / "geo.csv").exists()
    assert len((tmp_path / "z" / "rss" / "geo_ids.csv").read_text().split()) == 2 * 3 * 81 * 6


def test_a_header_row_of_beacon_ids_in_the_rss_file_is_skipped(zone_dir):
    rss = zone_dir / "rss" / "geo_rss.csv"
    points = len(zones.load_zone(zone_dir).points)
    rss.write_text(",".join(zones.SYNTHETIC_BEACONS) + "\n" + rss.read_text())
    (zone_dir / "rss" / "geo_tms.csv").unlink()  # optional: sample k of a point is at k seconds
    ds = zones.load_zone(zone_dir)
    assert len(ds.points) == points and [s.t for s in ds.points[0].samples] == [0.0, 1.0, 2.0]


def test_the_synthetic_zone_at_the_librarys_beacon_density_puts_a_beacon_in_every_square_inside_the_outline(tmp_path):
    beacons = zones.grid_beacons(2.7)
    plan = FloorPlan.from_outline(zones.SYNTHETIC_OUTLINE)
    assert len(beacons) == 46 and list(beacons)[:2] == ["B1", "B2"]
    assert all(zones._on_plan(plan, x, y) for x, y in beacons.values())
    assert evaluate.main(["--write-synthetic-zone", str(tmp_path / "z"), "--prefix", "geo",
                          "--beacon-spacing", "2.7"]) == 0
    assert len(zones.load_zone(tmp_path / "z").anchors) == 46


def test_the_synthetic_transmit_powers_are_eight_db_apart_as_in_the_real_geo_zone(tmp_path):
    # Its data descriptor: -4, -12 and -20 dBm. Without noise, shadowing or body, a beacon heard at one place
    # at all three powers reads 8 dB less at each step (to the rounding).
    quiet = {"shadow_db": 0.0, "noise_db": 0.0, "body_db": 0.0, "missed": 0.0}
    ds = zones.load_zone(zones.write_synthetic_zone(tmp_path / "p", prefix="geo", **{**SMALL, "powers": 3}, **quiet))
    levels: dict[tuple[float, float, int], dict[int, int]] = {}
    for p in ds.points:
        for a, rssi, _ in p.samples[0].readings:
            levels.setdefault((p.x, p.y, a), {})[p.power] = rssi
    steps = [(by[1] - by[2], by[2] - by[3]) for by in levels.values() if len(by) == 3]
    assert steps and all(7 <= step <= 9 for pair in steps for step in pair)


def test_room_stats_compares_a_simulated_room_with_the_models_it_was_drawn_from(zone_dir, capsys):
    ds = zones.load_zone(zone_dir)
    exponent, spread = room_stats.residual_spread(ds)
    # Drawn with exponent 2.4, shadowing 5 dB, noise 2.3 dB and a body shadow; the detection floor and the
    # rounding bend both a little.
    assert 1.6 < exponent < 2.8 and 3.5 < spread < 7.0
    assert room_stats.main(["--zone", str(zone_dir)]) == 0
    out = capsys.readouterr().out
    assert "spread within a point" in out and "heard per sample by distance: 0-2 m" in out and "m^2 per beacon" in out
