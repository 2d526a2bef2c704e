"""The engine's presence rules on a tiny venue: entry needs consistency, hysteresis, dwell, stale Android entries."""

from __future__ import annotations

import pytest

from mallapp.domain.proximity.engine import (
    APPLIED_BYTES,
    MALL_ENTER,
    MALL_EXIT,
    ZONE_DWELL,
    ZONE_ENTER,
    ZONE_EXIT,
    Engine,
    EngineConfig,
    MemberState,
)
from mallapp.domain.venue import Anchor, Registry, ZoneInfo

ENTRANCE, STORE, ITEM = 1, 2, 3


@pytest.fixture
def engine() -> Engine:
    zones = {ENTRANCE: ZoneInfo(ENTRANCE, "North entrance", "entrance", 1, None, None, None),
             STORE: ZoneInfo(STORE, "Starlight Coffee", "store", 1, 7, None, None),
             ITEM: ZoneInfo(ITEM, "New arrivals", "item", 1, 7, None, None)}
    anchors = {10: Anchor(10, "beacon", ENTRANCE, None, None, 1, 0.0, 0.0, -59),
               20: Anchor(20, "beacon", STORE, 7, None, 1, 20.0, 0.0, -59),
               30: Anchor(30, "beacon", ITEM, 7, 5, 1, 25.0, 0.0, -59)}
    registry = Registry(1, zones, anchors, {("u", 1, a): a for a in anchors})
    return Engine(EngineConfig(), registry)


def feed(engine: Engine, state: MemberState, t: float, readings: dict[int, int]) -> list:
    fresh = [engine.observe(state, anchor, rssi, t) for anchor, rssi in readings.items()]
    return engine.update(state, t, any(fresh))


def kinds(transitions) -> list[tuple[str, int]]:
    return [(t.kind, t.zone_id) for t in transitions]


def test_one_burst_of_sightings_does_not_enter_the_mall(engine):
    state = MemberState()
    out = feed(engine, state, 1000.0, {10: -60}) + feed(engine, state, 1000.5, {10: -61}) + \
        feed(engine, state, 1001.0, {10: -62})
    assert (MALL_ENTER, 0) not in kinds(out)  # three updates, but within one second


def test_consistent_sightings_over_time_enter_the_mall_once(engine):
    state = MemberState()
    out = []
    for i in range(8):  # near the store's beacon, inside
        out += feed(engine, state, 1000.0 + 3 * i, {20: -60 - i % 3})
    entries = [t for t in out if t.kind == MALL_ENTER]
    assert len(entries) == 1
    # Interior confirmation wants three readings in the window (from 1006), then three batches over 5 s.
    assert entries[0].since == 1006.0 and entries[0].at == 1012.0


def test_the_entrance_beacon_alone_does_not_enter_the_mall_however_strong(engine):
    state = MemberState()
    out = []
    for i in range(40):  # standing at the door for two minutes, under the entrance beacon
        out += feed(engine, state, 1000.0 + 3 * i, {10: -60 - i % 3})
    assert (MALL_ENTER, 0) not in kinds(out)
    assert (ZONE_ENTER, ENTRANCE) in kinds(out)  # the entrance zone itself is still entered


def test_without_interior_confirmation_any_sighting_enters_the_mall_as_before():
    zones = {ENTRANCE: ZoneInfo(ENTRANCE, "North entrance", "entrance", 1, None, None, None)}
    anchors = {10: Anchor(10, "beacon", ENTRANCE, None, None, 1, 0.0, 0.0, -59)}
    engine = Engine(EngineConfig(checkin_require_interior=False), Registry(1, zones, anchors, {}))
    state = MemberState()
    out = []
    for i in range(8):
        out += feed(engine, state, 1000.0 + 3 * i, {10: -60 - i % 3})
    entries = [t for t in out if t.kind == MALL_ENTER]
    assert len(entries) == 1
    assert entries[0].since == 1000.0 and entries[0].at == 1006.0


def test_near_a_store_enters_dwells_once_and_exits_after_the_timeout(engine):
    state = MemberState()
    out = []
    for i in range(30):  # 29 s at about 1-2 m from the store's beacon
        out += feed(engine, state, 2000.0 + i, {20: -62 - i % 4})
    assert kinds(out).count((ZONE_ENTER, STORE)) == 1
    dwell = [t for t in out if t.kind == ZONE_DWELL and t.zone_id == STORE]
    assert len(dwell) == 1 and dwell[0].at - dwell[0].since >= 20
    assert (ZONE_EXIT, STORE) not in kinds(out)
    # Silence: still present at 29 s, gone after 30 s unseen, with the exit dated at the last sighting.
    assert engine.update(state, 2029.0 + 29) == []
    out = engine.update(state, 2029.0 + 31)
    assert (ZONE_EXIT, STORE, 2029.0, 2000.0) in [(t.kind, t.zone_id, t.at, t.since) for t in out]
    assert (MALL_EXIT, 0) in kinds(out)


def test_hysteresis_keeps_a_member_who_drifts_just_past_the_enter_distance(engine):
    state = MemberState()
    feed(engine, state, 0.0, {30: -60})  # item zone: enter within 2 m (-59 dBm at 1 m, n = 2: -65 dBm)
    assert ITEM in state.zones
    out = []
    for i in range(1, 60):  # about 2.5 m: beyond enter (2 m), within exit (3 m)
        out += feed(engine, state, float(i), {30: -67 + (i % 2)})
    assert (ZONE_EXIT, ITEM) not in kinds(out)
    assert ITEM in state.zones


def test_weak_signal_does_not_enter_the_item_zone(engine):
    state = MemberState()
    out = []
    for i in range(10):
        out += feed(engine, state, float(i), {30: -80 - i % 3})  # about 12 m away
    assert (ZONE_ENTER, ITEM) not in kinds(out)


def test_android_stale_entries_do_not_keep_a_member_present(engine):
    state = MemberState()
    out = []
    for i in range(10):
        out += feed(engine, state, 100.0 + i, {20: -60 - i % 3})
    assert STORE in state.zones
    # The phone walked away; Android keeps listing the beacon with its last RSSI.
    for i in range(10, 80):
        out += feed(engine, state, 100.0 + i, {20: -62})
    assert (ZONE_EXIT, STORE) in kinds(out)
    assert STORE not in state.zones


def test_gateway_channel_repeats_are_real_readings(engine):
    state = MemberState()
    for i in range(40):
        engine.observe(state, 20, -62, 100.0 + i, power=-59, phone=False)
        engine.update(state, 100.0 + i, True)
    assert STORE in state.zones


def test_late_batches_keep_the_window_in_time_order(engine):
    state = MemberState()
    for t in (10.0, 12.0, 11.0, 9.5):
        engine.observe(state, 20, -60 - int(t), t)
    assert state.tracks[20].times == [9.5, 10.0, 11.0, 12.0]
    assert state.tracks[20].rssis == [-69, -70, -71, -72]


def test_a_state_remembers_the_last_entries_applied_and_forgets_old_ones():
    state = MemberState()
    ids = [b"1700000000%03d-0" % i for i in range(200)]
    for entry_id in ids:
        state.mark_applied(entry_id)
    assert state.has_applied(ids[-1]) and state.has_applied(ids[-60])
    assert not state.has_applied(ids[0])
    assert not state.has_applied(b"1700000000199") and not state.has_applied(b"0-0")  # whole ids only
    assert len(state.applied) <= APPLIED_BYTES


def test_state_round_trips_through_its_wire_form(engine):
    state = MemberState()
    for i in range(12):
        feed(engine, state, 50.0 + i, {10: -60 - i % 2, 20: -63, 30: -75 - i % 3})
    for entry_id in (b"1700000000000-0", b"2-15"):
        state.mark_applied(entry_id)
    state.outbox = feed(engine, state, 63.0, {10: -90})
    copy = MemberState.from_bytes(state.to_bytes(), version=4)
    assert copy.to_wire() == state.to_wire() and copy.version == 4
    assert feed(engine, copy, 70.0, {20: -61}) == feed(engine, state, 70.0, {20: -61})
    empty = MemberState.from_bytes(MemberState().to_bytes())
    assert empty.to_wire() == MemberState().to_wire()


def test_position_is_pulled_toward_the_strongest_beacon(engine):
    state = MemberState()
    feed(engine, state, 0.0, {10: -80, 20: -55, 30: -75})
    x, _ = engine.position(state)
    assert 15.0 < x < 25.0
