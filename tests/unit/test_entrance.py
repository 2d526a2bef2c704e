"""The entrance rule (interior confirmation), the labelled-recording format and its evaluation."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest

from mallapp.domain.proximity import entrance, entrance_evaluate, entrance_recording, entrance_sim
from mallapp.domain.proximity.engine import MALL_ENTER, ZONE_ENTER, Engine, EngineConfig, MemberState
from mallapp.domain.proximity.locate import FILTERS
from mallapp.domain.venue import Anchor, Registry, ZoneInfo

DOOR_ZONE, STORE_ZONE = 1, 2
DOOR, STORE, CORRIDOR = 10, 20, 30  # the entrance's beacon, a store's, and a corridor beacon in no zone


@pytest.fixture
def engine() -> Engine:
    zones = {DOOR_ZONE: ZoneInfo(DOOR_ZONE, "North entrance", "entrance", 1, None, None, None),
             STORE_ZONE: ZoneInfo(STORE_ZONE, "Starlight Coffee", "store", 1, 7, None, None)}
    anchors = {DOOR: Anchor(DOOR, "beacon", DOOR_ZONE, None, None, 1, 0.0, 0.0, -59),
               STORE: Anchor(STORE, "beacon", STORE_ZONE, 7, None, 1, 20.0, 0.0, -59),
               CORRIDOR: Anchor(CORRIDOR, "beacon", None, None, None, 1, 6.0, 0.0, -59)}
    return Engine(EngineConfig(checkin_interior_filter="median", checkin_interior_min_db=-20.0),
                  Registry(1, zones, anchors, {}))


def play(engine: Engine, seconds: int, readings) -> list[str]:
    """One batch a second; ``readings(i)`` gives the batch's {anchor: rssi}. Returns the transition kinds."""
    state = MemberState()
    kinds = []
    for i in range(seconds):
        t = 1000.0 + i
        fresh = [engine.observe(state, a, rssi, t) for a, rssi in readings(i).items()]
        kinds += [tr.kind for tr in engine.update(state, t, any(fresh))]
    return kinds


def test_someone_waiting_outside_with_occasional_strong_readings_is_not_checked_in(engine):
    # At the door for two minutes: the entrance beacon loud, the corridor's through the wall weak, and every
    # fifth reading of it a strong reflection through the glass.
    def outside(i):
        return {DOOR: -62 - i % 3, CORRIDOR: -60 - i % 2 if i % 5 == 0 else -86 - i % 4}

    kinds = play(engine, 120, outside)
    assert MALL_ENTER not in kinds
    assert ZONE_ENTER in kinds  # the entrance zone itself: footfall at the door still counts
    # The strongest reading of a 10 s window is always a reflection: the max filter would check them in.
    with_max = Engine(replace(engine.config, checkin_interior_filter="max"), engine.registry)
    assert MALL_ENTER in play(with_max, 120, outside)


def test_a_member_who_walks_from_the_door_inside_is_checked_in(engine):
    def walk_in(i):  # 6 s at the door, then 1 m a second towards the corridor beacon 6 m inside
        if i < 6:
            return {DOOR: -60 - i % 2, CORRIDOR: -88 - i % 3}
        return {DOOR: -70 - i % 3, CORRIDOR: -62 - i % 3}

    kinds = play(engine, 20, walk_in)
    assert kinds.count(MALL_ENTER) == 1


def test_someone_standing_in_the_vestibule_is_not_checked_in(engine):
    # Between the doors: the corridor beacon through the inner door, about 25 dB below its 1 m power.
    kinds = play(engine, 90, lambda i: {DOOR: -55 - i % 3, CORRIDOR: -83 - i % 4})
    assert MALL_ENTER not in kinds


def test_an_unconfirmed_batch_starts_the_count_again():
    run: entrance.Run = (None, 0.0, 0)
    entered = []
    for t, confirmed in ((0.0, True), (3.0, True), (4.0, False), (6.0, True), (9.0, True), (11.0, True)):
        run, done = entrance.step(run, t, t, 1, confirmed, 30.0, 3, 5.0)
        entered.append(done)
    assert entered == [False] * 5 + [True] and run[0] == 6.0  # counted from 6 s, not from 0 s


def test_interior_level_wants_enough_readings_and_takes_the_best_anchor():
    windows = [([-70, -72], -59.0), ([-80, -81, -79], -59.0), ([-65, -66, -90], -63.0)]
    assert entrance.interior_level(windows, FILTERS["median"], 3) == -3.0  # -66 - -63; the two-reading one is out
    assert entrance.interior_level(windows, FILTERS["median"], 4) is None
    assert not entrance.confirms(None, -20.0) and entrance.confirms(-20.0, -20.0)


def test_the_rule_before_is_every_batch_confirming():
    run: entrance.Run = (None, 0.0, 0)
    entered = []
    for t in (0.0, 2.0, 4.0, 5.0):
        run, done = entrance.step(run, t, t, 1, True, 30.0, 3, 5.0)
        entered.append(done)
    assert entered == [False, False, False, True] and run[0] == 0.0


def test_trimmed_mean_20_drops_a_fifth_at_each_end():
    assert entrance.trimmed_mean_20([-90, -60, -61, -62, -63]) == pytest.approx(-62.0)
    assert entrance.trimmed_mean_20([-60, -70]) == -65.0


# --- the recording format ------------------------------------------------------------------------------

HEADER = "tag,label,timestamp_ms,rssi_gw1,rssi_gw2\n"


def parse(text: str) -> entrance_recording.Recording:
    return entrance_recording.parse(text.splitlines(keepends=True), "rec.csv")


def test_a_recording_parses_with_sentinels_as_not_heard_and_runs_per_place():
    rec = parse(HEADER + "a,outside,2000,-80,\n"
                         "a,outside,1000,100,-200\n"
                         "b,inside,1000,0,-70\n"
                         "a,inside,3000,-60,-61\n"
                         "a,outside,9000,-81,\n")
    assert rec.receivers == ["gw1", "gw2"]
    assert [(r.key, r.label) for r in rec.runs] == [("a#1", "outside"), ("b#1", "inside"), ("a#2", "inside"),
                                                   ("a#3", "outside")]
    assert rec.runs[0].rows == [(1000, ()), (2000, ((0, -80),))]  # in time order; 100 and -200 not heard
    assert rec.runs[1].rows == [(1000, ((1, -70),))]  # 0 not heard


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty file"),
    ("tag,place,timestamp_ms,rssi_a\n", "rec.csv:1: the header must start with tag,label,timestamp_ms"),
    ("tag,label,timestamp_ms\n", "rec.csv:1: no receiver columns"),
    ("tag,label,timestamp_ms,gw1\n", "rec.csv:1: column 'gw1' is not rssi_<receiver>"),
    ("tag,label,timestamp_ms,rssi_a,rssi_a\n", "rec.csv:1: receiver 'a' appears twice"),
    (HEADER + "a,inside,1000,-70,-71\na,lobby,2000,-70,\n", "rec.csv:3: label 'lobby' is not one of"),
    (HEADER + "a,inside,soon,-70,\n", "rec.csv:2: timestamp_ms 'soon' is not an integer"),
    (HEADER + "a,inside,-5,-70,\n", "rec.csv:2: timestamp_ms -5 is negative"),
    (HEADER + "a,inside,1000,-70\n", "rec.csv:2: 4 fields, the header has 5"),
    (HEADER + ",inside,1000,-70,\n", "rec.csv:2: empty tag"),
    (HEADER + "a,inside,1000,-70,-70.5\n", "rec.csv:2: rssi_gw2 '-70.5' is not a whole number of dBm"),
    (HEADER + "a,inside,1000,12,\n", "rec.csv:2: rssi_gw1 12 is not an RSSI"),
    (HEADER + "a,inside,1000,-128,\n", "rec.csv:2: rssi_gw1 -128 is not an RSSI"),
])
def test_a_malformed_recording_is_refused_naming_the_line(text, message):
    with pytest.raises(entrance_recording.RecordingError) as exc:
        parse(text)
    assert message in str(exc.value)


def test_the_command_refuses_a_malformed_file_with_status_2(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "a,inside,1000,-70,-71\na,garden,2000,-70,\n")
    assert entrance_evaluate.main(["--labelled", str(path)]) == 2
    assert f"{path}:3: label 'garden'" in capsys.readouterr().err


# --- the evaluation ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_recording(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("entrance") / "sim.csv"
    assert entrance_evaluate.main(["--simulate", str(path), "--seed", "3", "--tags", "10,4,12"]) == 0
    return str(path)


def test_the_simulator_writes_the_documented_format(small_recording):
    rec = entrance_recording.load([small_recording])
    b = entrance_sim.building(3)
    assert rec.receivers == [r[0] for r in b.receivers]
    assert [sum(r.label == label for r in rec.runs) for label in entrance_recording.LABELS] == [10, 4, 12]
    assert len({r.tag for r in rec.runs}) == 26


def test_json_has_the_product_figures_as_fractions_and_beats_any_sighting_outside(small_recording, capsys):
    assert entrance_evaluate.main(["--labelled", small_recording, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("inside_accuracy", "outside_checked_in_share", "vestibule_checked_in_share"):
        assert 0.0 <= result[key] <= 1.0
        assert 0.0 <= result["any_sighting"][key] <= 1.0
        assert 0.0 <= result["nested"][key] <= 1.0
    assert set(result["filters_at_configured_threshold"]) == set(entrance.ENTRANCE_FILTERS)
    assert result["outside_checked_in_share"] < result["any_sighting"]["outside_checked_in_share"]
    assert result["inside_accuracy"] > result["any_sighting"]["inside_accuracy"]
    assert result["rule"]["require_interior"] is True


def test_receivers_named_as_an_entrances_never_confirm_inside(small_recording, capsys):
    rec = entrance_recording.load([small_recording])
    args = ["--labelled", small_recording, "--json", "--entrance-receivers", ",".join(rec.receivers)]
    assert entrance_evaluate.main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["inside_checked_in_share"] == 0.0 and result["outside_checked_in_share"] == 0.0
    assert result["any_sighting"]["inside_checked_in_share"] == 1.0  # heard, but only at the door
    assert entrance_evaluate.main(["--labelled", small_recording, "--entrance-receivers", "nobody"]) == 2


def test_the_grid_search_decides_as_the_engine_does(small_recording):
    rec = entrance_recording.load([small_recording])
    for cfg in (EngineConfig(checkin_interior_filter="median", checkin_interior_min_db=-20.0),
                EngineConfig(checkin_interior_filter="max", checkin_interior_min_db=-12.0)):
        registry = entrance_evaluate.registry_for(rec.receivers)
        interior = [True] * len(rec.receivers)
        filt = entrance.ENTRANCE_FILTERS[cfg.checkin_interior_filter]
        for run in rec.runs:
            series = entrance_evaluate.level_series(run, cfg, filt, -59, interior)
            assert entrance_evaluate.fires(series, cfg, cfg.checkin_interior_min_db) == \
                entrance_evaluate.replay(Engine(cfg, registry), run, -59), run.key


# --- the demo's walks ------------------------------------------------------------------------------------

def test_every_demo_walk_checks_its_shopper_in():
    """walks.ITINERARIES through the demo gateways (one at the north entrance, one in each of two shops),
    heard as walks.cycle makes them, with the demo's settings: each shopper passes an interior gateway."""
    from mallapp.devtools import demo, walks
    from mallapp.settings import DEMO_SETTINGS_FILE, load_settings

    plan = demo.load_plan()
    zone_ids = {row["key"]: k + 1 for k, row in enumerate(plan["zones"])}
    zones = {zone_ids[row["key"]]: ZoneInfo(zone_ids[row["key"]], row["name"], row["kind"], row["floor"], None,
                                            None, None) for row in plan["zones"]}
    gateways = [demo.DemoGateway(k + 1, row["name"], "", row["floor"], row["x"], row["y"])
                for k, row in enumerate(plan["gateways"])]
    anchors = {-g.id: Anchor(-g.id, "gateway", zone_ids[row["zone"]], None, None, g.floor, g.x, g.y, None)
               for g, row in zip(gateways, plan["gateways"], strict=True)}
    centres = {row["key"]: (row["floor"], sum(p[0] for p in row["polygon"]) / len(row["polygon"]),
                            sum(p[1] for p in row["polygon"]) / len(row["polygon"])) for row in plan["zones"]}
    mall = demo.DemoMall(gateways, [], [], centres)
    identities = [(1, n) for n in range(len(walks.ITINERARIES))]
    heard = walks.cycle(mall, identities, "6d616c6c-6170-7000-8000-6d656d626572", random.Random(5), 300.0)
    batches: dict[int, dict[int, list[tuple[int, int]]]] = {}  # shopper -> second -> (anchor, rssi)
    for gateway_id, adverts in heard.items():
        for advert in adverts:
            if advert.address.startswith("5E:"):
                shopper = int(advert.address.split(":")[4], 16)
                batches.setdefault(shopper, {}).setdefault(int(advert.t), []).append((-gateway_id, advert.rssi))
    settings = load_settings(environ={}, overlay=DEMO_SETTINGS_FILE)
    engine = Engine(EngineConfig.from_settings(settings.beacons), Registry(1, zones, anchors, {}))
    entered = {}
    for shopper, seconds in batches.items():
        state = MemberState()
        kinds = []
        for second in sorted(seconds):
            fresh = [engine.observe(state, a, rssi, float(second), walks.PHONE_POWER, phone=False)
                     for a, rssi in seconds[second]]
            kinds += [tr.kind for tr in engine.update(state, float(second), any(fresh))]
        entered[shopper] = kinds.count(MALL_ENTER)
    assert entered == {n: 1 for n in range(len(walks.ITINERARIES))}


def test_the_recorded_data_behind_the_simulators_noise(shared_data):
    stats = entrance_sim.ble_statistics(shared_data / "ble")
    # What docs/presence.md quotes for the simulator's ranges: a standing person's spread, the phones' offsets.
    assert stats["uji_still_sd_median_db"] == pytest.approx(1.60, abs=0.01)
    assert stats["uci_still_sd_median_db"] == pytest.approx(2.43, abs=0.01)
    assert stats["uji_path_loss_exponent"] == pytest.approx(2.67, abs=0.01)
    assert stats["uji_phone_offset_spread_db"] == pytest.approx(18.0, abs=0.1)
