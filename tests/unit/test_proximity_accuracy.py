"""The position estimate and its baselines on small synthetic cases, and the evaluation on the recorded data."""

from __future__ import annotations

import math

import pytest

from mallapp.domain.proximity import evaluate
from mallapp.domain.proximity.engine import Engine, EngineConfig, MemberState
from mallapp.domain.proximity.floorplan import FloorPlan, Geometry
from mallapp.domain.proximity.locate import (
    UNMAPPED_CENTROID_SHARE,
    UNMAPPED_EXPONENT,
    LocateParams,
    Locator,
    centroid_of_three,
    params_for_plan,
    strongest_anchor,
    weighted_centroid,
)
from mallapp.domain.venue import Anchor, Registry, ZoneInfo

SQUARE = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0), (10.0, 10.0)]


def model_readings(x: float, y: float, anchors, exponent=2.0, offset=-60.0, body=(0.0, 0.0)):
    """Noise-free readings from the log-distance model, with a phone offset and a body shadow a cos + b sin."""
    out = []
    for ax, ay in anchors:
        d = max(math.hypot(ax - x, ay - y), 0.5)
        c, s = (ax - x) / d, (ay - y) / d
        out.append((ax, ay, offset - 10 * exponent * math.log10(d) + body[0] * c + body[1] * s, -59.0))
    return out


def test_symmetric_beacons_put_the_estimate_at_the_centre():
    readings = [(x, y, -70.0, -59.0) for x, y in SQUARE]
    for estimate in (weighted_centroid(readings), Locator.for_anchors(SQUARE).estimate(readings)):
        assert estimate == pytest.approx((5.0, 5.0), abs=0.3)
    triangle = [(0.0, 0.0, -70.0, -59.0), (6.0, 0.0, -70.0, -59.0), (3.0, 6.0, -70.0, -59.0)]
    assert centroid_of_three(triangle) == pytest.approx((3.0, 2.0))


def test_a_much_stronger_beacon_pulls_the_estimate_toward_it():
    readings = [(x, y, -55.0 if (x, y) == (10.0, 10.0) else -80.0, -59.0) for x, y in SQUARE]
    for estimate in (weighted_centroid(readings), Locator.for_anchors(SQUARE).estimate(readings)):
        assert estimate[0] > 6.0 and estimate[1] > 6.0


def test_the_model_places_clean_readings_whatever_the_phone_gain():
    anchors = SQUARE + [(5.0, 0.0), (0.0, 5.0), (10.0, 5.0), (5.0, 10.0)]
    locator = Locator.for_anchors(anchors, params=LocateParams(exponent=2.0))
    for truth in ((3.0, 4.0), (6.5, 2.5), (5.0, 8.0)):
        quiet, loud = (locator.estimate(model_readings(*truth, anchors, offset=o)) for o in (-80.0, -45.0))
        assert quiet == pytest.approx(loud)
        # The body-shadow term has no pattern to explain here and does not move the estimate off.
        assert math.dist(quiet, truth) < 0.4
        assert math.dist(quiet, truth) < math.dist(weighted_centroid(model_readings(*truth, anchors)), truth) + 0.1


def test_readings_that_fit_a_place_well_are_placed_on_it():
    # The readings' spread is integrated out rather than assumed, so the posterior is as sharp as the fit is
    # good: with a fixed 6 dB spread, these clean readings left the mean 0.6 m towards the centroid.
    anchors = SQUARE + [(5.0, 0.0), (0.0, 5.0), (10.0, 5.0), (5.0, 10.0)]
    locator = Locator.for_anchors(anchors, params=LocateParams(exponent=2.0))
    for truth in ((1.5, 2.0), (6.5, 2.5), (8.5, 8.0)):
        readings = model_readings(*truth, anchors)
        assert math.dist(weighted_centroid(readings), truth) > 0.5  # where the search starts
        assert math.dist(locator.estimate(readings), truth) < 0.1


def test_a_body_shadow_costs_the_model_less_than_the_centroid():
    # A 5 dB shadow from each of 24 directions: the model is nearer on average and at worst, though not in
    # every direction (where the shadowed readings fit a place off the truth closely, the posterior trusts it).
    anchors = SQUARE + [(5.0, 0.0), (0.0, 5.0), (10.0, 5.0), (5.0, 10.0)]
    locator = Locator.for_anchors(anchors)
    for truth in ((6.5, 2.5), (5.0, 8.0)):
        model, centroid = [], []
        for k in range(24):
            bearing = k * math.pi / 12
            readings = model_readings(*truth, anchors, body=(5 * math.cos(bearing), 5 * math.sin(bearing)))
            model.append(math.dist(locator.estimate(readings), truth))
            centroid.append(math.dist(weighted_centroid(readings), truth))
        assert sum(model) < sum(centroid) and max(model) < max(centroid)


def test_strongest_baseline_is_the_position_of_the_strongest_reading():
    readings = [(0.0, 0.0, -70.0, -59.0), (4.0, 1.0, -62.0, -59.0), (9.0, 9.0, -65.0, -40.0)]
    assert strongest_anchor(readings) == (4.0, 1.0)


def test_centroid3_weights_the_three_strongest_by_received_power():
    readings = [(0.0, 0.0, -60.0, -59.0), (10.0, 0.0, -70.0, -59.0), (0.0, 10.0, -70.0, -59.0),
                (50.0, 50.0, -90.0, -59.0)]
    x, y = centroid_of_three(readings)
    assert x == pytest.approx(10 * 0.1 / 1.2) and y == pytest.approx(10 * 0.1 / 1.2)


def test_an_obstacle_between_place_and_beacon_counts_as_a_wall():
    shelf = ((4.0, 0.0), (5.0, 0.0), (5.0, 10.0), (4.0, 10.0))
    geometry = Geometry(FloorPlan((0.0, 0.0, 10.0, 10.0), (shelf,)), step_m=0.5)
    assert all(not (4.0 < x < 5.0) for x in geometry.xs)  # nobody stands inside the shelf
    left = geometry.cells_near(2.0, 5.0, 0.3)
    right = geometry.cells_near(8.0, 5.0, 0.3)
    paths = geometry.paths(1.0, 5.0, left + right)
    assert all(paths[c][1] == 0 for c in left) and all(paths[c][1] == 1 for c in right)


def test_a_beacon_mounted_on_a_shelf_radiates_from_its_face():
    shelf = ((4.0, 0.0), (5.0, 0.0), (5.0, 10.0), (4.0, 10.0))
    geometry = Geometry(FloorPlan((0.0, 0.0, 10.0, 10.0), (shelf,)))
    x, _ = geometry.source(4.97, 5.0)
    assert x > 5.0  # on the east face: the shelf is behind it for the west side
    paths = geometry.paths(4.97, 5.0, geometry.cells_near(3.0, 5.0, 0.3))
    assert all(walls == 1 for _, walls in paths.values())


def test_engine_places_the_member_on_the_floor_of_the_strongest_reading():
    zones = {1: ZoneInfo(1, "ground", "area", 1, None, None, None), 2: ZoneInfo(2, "first", "area", 2, None, None, None)}
    anchors = {i: Anchor(i, "beacon", 1 if i < 10 else 2, None, None, 1 if i < 10 else 2, x, y, -59)
               for i, (x, y) in zip((1, 2, 3, 11, 12, 13), [(0, 0), (10, 0), (5, 8), (40, 40), (50, 40), (45, 48)],
                                    strict=True)}
    engine = Engine(EngineConfig(rssi_filter="max"), Registry(1, zones, anchors, {}))
    state = MemberState()
    for anchor, rssi in {1: -80, 2: -82, 3: -81, 11: -60, 12: -75, 13: -74}.items():
        engine.observe(state, anchor, rssi, 100.0)
    engine.update(state, 100.0, 1)
    x, y = engine.position(state)
    assert 40.0 <= x <= 50.0 and 38.0 <= y <= 48.0
    assert engine.position(MemberState()) is None


def test_engine_beats_both_baselines_per_point_on_the_library(shared_data):
    ds = evaluate.load_uji_library(shared_data)
    assert len(ds.anchors) == 24 and len(ds.points) == 350 and sum(len(p.samples) for p in ds.points) == 2100
    run = evaluate.replay(ds, EngineConfig(rssi_filter="max"), LocateParams(), per_sample=False)
    results = {name: per_point for name, (_, per_point) in evaluate.evaluate(ds, run).items()}
    assert results["engine"].samples == 350
    for baseline in ("strongest", "centroid3"):
        assert results["engine"].better_than(results[baseline]), (baseline, results)
    assert results["engine"].median < 1.3 and results["engine"].p90 < 2.6


def test_evaluation_command_prints_figures_for_the_wmu_data(shared_data, capsys):
    assert evaluate.main(["--dataset", "uci435_ibeacon_wmu", "--data", str(shared_data)]) == 0
    out = capsys.readouterr().out
    assert "uci435_ibeacon_wmu: 13 beacons" in out
    for name in evaluate.ESTIMATORS:
        row = next(line for line in out.splitlines() if line.strip().startswith(name))
        numbers = [float(v) for v in row.split()[3:7]]
        assert all(math.isfinite(v) and v > 0 for v in numbers)


def test_a_plan_without_obstacles_gets_the_no_walls_variant_and_one_with_obstacles_keeps_its_parameters():
    shelf = ((4.0, 0.0), (5.0, 0.0), (5.0, 3.0), (4.0, 3.0))
    params = LocateParams()
    assert params_for_plan(FloorPlan((0.0, 0.0, 10.0, 10.0), (shelf,)), params) is params
    outlined = params_for_plan(FloorPlan.from_outline([(0, 0), (10, 0), (10, 10), (0, 10)]), params)
    assert (outlined.exponent, outlined.centroid_share) == (UNMAPPED_EXPONENT, UNMAPPED_CENTROID_SHARE)
    assert (outlined.wall_db, outlined.independent_readings) == (params.wall_db, params.independent_readings)


def test_engine_on_an_outlined_floor_without_obstacles_is_halfway_between_the_model_and_the_centroid():
    # The product's floors table stores outlines, no obstacles: Engine.position must use the no-walls variant
    # there (on the library the plain model without its shelves did worse than the centroid).
    outline = [(-2.0, -2.0), (12.0, -2.0), (12.0, 12.0), (-2.0, 12.0)]
    anchors_xy = [*SQUARE, (5.0, 0.0), (0.0, 5.0)]
    zones = {1: ZoneInfo(1, "ground", "area", 1, None, None, None)}
    anchors = {i: Anchor(i, "beacon", 1, None, None, 1, x, y, -59) for i, (x, y) in enumerate(anchors_xy, start=1)}
    plan = FloorPlan.from_outline(outline)
    engine = Engine(EngineConfig(rssi_filter="max"), Registry(1, zones, anchors, {}), {1: plan})
    state = MemberState()
    readings = model_readings(3.0, 6.0, anchors_xy, exponent=3.0)
    for (i, _), (_, _, rssi, _) in zip(enumerate(anchors_xy, start=1), readings, strict=True):
        engine.observe(state, i, round(rssi), 100.0)
    engine.update(state, 100.0, 1)
    position = engine.position(state)
    filtered = [(x, y, float(round(rssi)), -59.0) for x, y, rssi, _ in readings]
    variant = params_for_plan(plan, LocateParams())
    locator = Locator(Geometry(plan, variant.step_m), variant)
    start, cells, losses = locator.fit(filtered)
    model = locator.posterior_mean(cells, losses, variant.independent_readings, len(filtered))
    centroid = weighted_centroid(filtered)
    assert start == pytest.approx(centroid)
    assert position == pytest.approx(((model[0] + centroid[0]) / 2, (model[1] + centroid[1]) / 2))
    assert math.dist(position, (3.0, 6.0)) < math.dist(centroid, (3.0, 6.0))


def test_the_library_outlined_without_its_shelves_does_no_worse_than_the_centroid(shared_data):
    # "unmapped": the library's box without the shelves, as a floor ops outlined but whose walls nobody stored.
    config = EngineConfig(rssi_filter="max")
    outlined = evaluate.load_uji_library(shared_data, "unmapped")
    bare = evaluate.load_uji_library(shared_data, "none")
    with_outline = evaluate.evaluate(outlined, evaluate.replay(outlined, config, LocateParams(), per_sample=False))
    without = evaluate.evaluate(bare, evaluate.replay(bare, config, LocateParams(), per_sample=False))
    engine, centroid = with_outline["engine"][1], without["engine"][1]
    assert engine.median <= centroid.median and engine.p90 <= centroid.p90, (engine, centroid)


def test_the_halfway_step_never_leaves_an_l_shaped_floor():
    # Beacons at both ends of an L: the weighted centroid falls in the missing corner, off the floor.
    outline = [(0.0, 0.0), (20.0, 0.0), (20.0, 4.0), (4.0, 4.0), (4.0, 20.0), (0.0, 20.0)]
    plan = FloorPlan.from_outline(outline)
    params = params_for_plan(plan, LocateParams(radius_m=12.0))
    locator = Locator(Geometry(plan, params.step_m), params)
    readings = [(19.0, 2.0, -70.0, -59.0), (17.0, 2.0, -70.0, -59.0), (2.0, 19.0, -70.0, -59.0),
                (2.0, 17.0, -70.0, -59.0)]
    assert locator.geometry.nearest(*weighted_centroid(readings)) is None
    x, y = locator.estimate(readings)
    assert locator.geometry.nearest(x, y) is not None
