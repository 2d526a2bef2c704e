"""Sightings through the API, the stream and the worker: automatic check-in, dwell events, visits, idempotence."""

from __future__ import annotations

import contextlib
import json
import threading
from datetime import timedelta

import pytest
from factories import UUID, post_sightings, signed, walk
from sqlalchemy import func, select

from mallapp.domain.checkin import Checkin
from mallapp.domain.proximity import effects, history, identity, live
from mallapp.domain.proximity.engine import MemberState
from mallapp.domain.proximity.history import MallVisit, ProximityEvent, ZoneVisit
from mallapp.domain.proximity.ingest import member_partition, stream, streams
from mallapp.domain.proximity.leases import WORKERS, lease_key
from mallapp.domain.venue import Beacon, BeaconStatus, bump_registry_version
from mallapp.processes.streams import dead_letters
from mallapp.processes.worker import GROUP, Worker, state_key, stats_key


@pytest.fixture
def worker(rt, venue):
    w = Worker(rt, "worker-1", block_ms=0, flush_every_s=0)
    w.ensure_group()
    return w


CORRIDOR = 4  # the minor of the corridor beacon inside the door (the corridor fixture)
IN = {1: -60, CORRIDOR: -66}  # a member just inside: the entrance beacon, and the corridor's inside the door


@pytest.fixture
def corridor(rt, venue) -> int:
    """A beacon in no zone a few metres inside the entrance: the mall entry needs an interior anchor heard
    (docs/presence.md), and this one adds no zone events or dwell of its own."""
    with rt.sessions.begin() as s:
        beacon = Beacon(uuid=UUID, major=1, minor=CORRIDOR, label="corridor", zone_id=None, floor=1, x=6.0, y=0.0,
                        measured_power=-59, created_at=rt.now())
        s.add(beacon)
        s.flush()
        beacon_id = beacon.id
    bump_registry_version(rt.redis)
    return beacon_id


def lapse(rt, worker: Worker) -> None:
    """A worker's leases lapse (it died, or stalled for longer than a lease): no leases, no heartbeat."""
    rt.redis.delete(*[lease_key(p) for p in worker.leases.held])
    rt.redis.zrem(WORKERS, worker.consumer)
    worker.leases.held.clear()  # what a stalled worker finds out at its next renewal


def pending(rt) -> int:
    """Entries read but not acknowledged, over all partitions."""
    return sum(rt.redis.xpending(name, GROUP)["pending"] for name in streams(rt.settings))


def count(rt, model, **where) -> int:
    with rt.sessions() as s:
        stmt = select(func.count()).select_from(model)
        for name, value in where.items():
            stmt = stmt.where(getattr(model, name) == value)
        return s.scalar(stmt)


def test_walking_in_checks_the_member_in_once_and_leaving_records_the_visit(client, member, worker, clock, rt, venue,
                                                                           corridor):
    walk(client, member, worker, clock, 1, IN)
    assert count(rt, Checkin) == 0  # one batch is not enough
    walk(client, member, worker, clock, 7, IN)
    assert count(rt, Checkin, member_id=member["member"]["id"], method="beacon") == 1
    me = client.get("/api/v1/me", headers=member["headers"]).get_json()
    assert me["checked_in_today"] is True and me["points"]["balance"] == 5
    assert live.zone_counts(rt.redis, [0, venue.entrance]) == {0: 1, venue.entrance: 1}
    # Silence for longer than the exit timeout: the sweep ends both stays.
    clock.advance(seconds=31)
    worker.sweep()
    assert live.zone_counts(rt.redis, [0, venue.entrance]) == {0: 0, venue.entrance: 0}
    assert count(rt, MallVisit, member_id=member["member"]["id"]) == 1
    assert count(rt, ZoneVisit, zone_id=venue.entrance) == 1
    # Coming back the same day walks in again, but checks in no more.
    walk(client, member, worker, clock, 8, IN)
    assert count(rt, Checkin) == 1
    assert client.get("/api/v1/me", headers=member["headers"]).get_json()["points"]["balance"] == 5


def test_dwelling_at_a_store_and_its_sale_item_records_one_event_each(client, member, worker, clock, rt, venue):
    walk(client, member, worker, clock, 25, {2: -66, 3: -62})
    with rt.sessions() as s:
        events = s.scalars(select(ProximityEvent).order_by(ProximityEvent.zone_id)).all()
    assert [(e.zone_id, e.store_id, e.sale_item_id) for e in events] == [
        (venue.store_zone, venue.store, None), (venue.item_zone, venue.store, venue.item)]
    published = rt.redis.xrange(effects.EVENTS_STREAM)
    assert sorted(int(fields[b"zone_id"]) for _, fields in published) == [venue.store_zone, venue.item_zone]
    # Staying longer does not repeat them.
    walk(client, member, worker, clock, 10, {2: -66, 3: -62})
    assert count(rt, ProximityEvent) == 2


def test_a_far_away_beacon_does_not_place_the_member_at_the_item(client, member, worker, clock, rt, venue):
    walk(client, member, worker, clock, 25, {3: -85})
    assert count(rt, ProximityEvent) == 0
    assert live.zone_counts(rt.redis, [venue.item_zone]) == {venue.item_zone: 0}


def test_sightings_with_a_position_far_from_the_mall_do_not_check_in(client, member, worker, clock, rt, venue):
    for _ in range(8):
        clock.advance(seconds=2)
        response = client.post("/api/v1/sightings", headers=member["headers"], json={
            "beacons": [{"uuid": UUID, "major": 1, "minor": 1, "rssi": -60}],
            "location": {"latitude": 39.9042, "longitude": 116.4074}})  # Beijing, not Shanghai
        assert response.status_code == 202
        worker.step(block_ms=0)
    assert count(rt, Checkin) == 0


def test_redelivered_entries_change_nothing(client, member, worker, clock, rt, venue):
    walk(client, member, worker, clock, 25, {1: -60, 2: -64})
    key = state_key(member["member"]["id"])
    before = (count(rt, Checkin), count(rt, ProximityEvent), rt.redis.get(key).partition(b"|")[2])
    for p in range(rt.settings.beacons.ingest.stream_partitions):  # all of it again, as after a crash before the acks
        if rt.redis.exists(stream(p)):
            worker.handle(rt.redis.xrange(stream(p)), p)
    after = (count(rt, Checkin), count(rt, ProximityEvent), rt.redis.get(key).partition(b"|")[2])
    assert before == after
    assert before[:2] == (1, 1)


def test_a_crash_before_the_effects_are_written_loses_nothing(client, member, worker, clock, rt, venue, corridor,
                                                             monkeypatch):
    real = effects.apply_transitions
    calls = {"n": 0}

    def crash_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the worker died here")
        return real(*args, **kwargs)

    monkeypatch.setattr(effects, "apply_transitions", crash_once)
    for i in range(8):
        clock.advance(seconds=1)
        post_sightings(client, member, {1: -60 - i % 2, CORRIDOR: -66 - i % 2})
        with contextlib.suppress(RuntimeError):
            worker.step(block_ms=0)
    assert calls["n"] >= 1
    # The entry whose effects failed was not acknowledged; another consumer claims it.
    assert pending(rt) >= 1
    lapse(rt, worker)
    rescuer = Worker(rt, "worker-2", block_ms=0, claim_idle_ms=0, flush_every_s=0)
    rescuer.reclaim()
    clock.advance(seconds=1)
    post_sightings(client, member, IN)
    rescuer.step(block_ms=0)
    assert pending(rt) == 0
    assert count(rt, Checkin, method="beacon") == 1


def test_decisions_do_not_wait_for_the_flush_and_a_crash_before_it_loses_nothing(client, member, clock, rt, venue,
                                                                                 corridor):
    lazy = Worker(rt, "lazy", block_ms=0, flush_every_s=3600)
    lazy.ensure_group()
    walk(client, member, lazy, clock, 8, IN)
    # Checked in at once, though the sightings since are neither saved nor acknowledged yet.
    assert count(rt, Checkin, method="beacon") == 1
    assert pending(rt) >= 1
    saved = rt.redis.get(state_key(member["member"]["id"]))
    walk(client, member, lazy, clock, 3, IN)  # nothing new happens: nothing to save at once
    assert rt.redis.get(state_key(member["member"]["id"])) == saved
    # It dies unflushed: the next holder applies the unacknowledged entries to the last saved state.
    lapse(rt, lazy)
    rescuer = Worker(rt, "rescuer", block_ms=0, claim_idle_ms=0, flush_every_s=0)
    rescuer.reclaim()
    assert pending(rt) == 0
    track = rescuer._states[member["member"]["id"]].tracks[venue.beacons["entrance"]]
    assert track.fresh == clock.now.timestamp()  # the unflushed sightings were applied again
    walk(client, member, rescuer, clock, 22, {2: -66})
    assert count(rt, Checkin, method="beacon") == 1
    with rt.sessions() as s:
        assert s.scalars(select(ProximityEvent.zone_id)).all() == [venue.store_zone]
    assert live.zone_counts(rt.redis, [0, venue.store_zone]) == {0: 1, venue.store_zone: 1}


def test_a_clean_stop_saves_what_is_in_memory_and_gives_the_partitions_back(client, member, clock, rt, venue):
    lazy = Worker(rt, "lazy", block_ms=0, flush_every_s=3600)
    lazy.ensure_group()
    walk(client, member, lazy, clock, 9, {1: -60})
    assert pending(rt) >= 1
    stop = threading.Event()
    stop.set()
    lazy.run(stop)  # what SIGTERM leads to: the loop ends and the worker closes
    assert pending(rt) == 0
    assert not any(rt.redis.exists(lease_key(p)) for p in range(rt.settings.beacons.ingest.stream_partitions))
    assert rt.redis.zscore(WORKERS, "lazy") is None
    saved = rt.redis.get(state_key(member["member"]["id"]))
    assert MemberState.from_bytes(saved.partition(b"|")[2]).clock == clock.now.timestamp()


def test_a_stale_copy_in_memory_is_caught_and_redone_on_the_saved_state(client, member, worker, clock, rt, venue):
    walk(client, member, worker, clock, 7, {1: -60})
    other = Worker(rt, "other", block_ms=0, flush_every_s=0)
    # The member's partition moves to another worker and back (identities rotate, leases lapse).
    lapse(rt, worker)
    walk(client, member, other, clock, 21, {2: -66})
    assert count(rt, ProximityEvent) == 1
    lapse(rt, other)
    # The first worker still has the member's old state in memory; its next sightings do not undo the other's.
    walk(client, member, worker, clock, 2, {2: -66})
    assert worker.stats.conflicts >= 1
    assert live.zone_counts(rt.redis, [venue.store_zone]) == {venue.store_zone: 1}
    walk(client, member, worker, clock, 25, {2: -66})
    assert count(rt, ProximityEvent) == 1 and count(rt, Checkin) == 1
    assert count(rt, ZoneVisit, zone_id=venue.store_zone) == 0  # one stay, still going


def test_two_workers_share_the_stream_without_losing_updates(client, members_api, rt, clock, venue):
    people = [members_api.sign_in(openid=f"o-walker-{i}") for i in range(6)]
    workers = [Worker(rt, f"w-{i}", block_ms=0) for i in range(2)]
    workers[0].ensure_group()
    for second in range(30):
        clock.advance(seconds=1)
        for person in people:
            post_sightings(client, person, {1: -60 - second % 2, 2: -64 - second % 3})
    stop = threading.Event()

    def drain(w):
        while w.step(block_ms=0):
            pass

    threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    assert pending(rt) == 0
    assert count(rt, Checkin, method="beacon") == 6
    assert count(rt, ProximityEvent) == 6
    assert live.zone_counts(rt.redis, [0])[0] == 6


def test_a_gateway_hears_a_member_by_the_rotating_identity(client, member, worker, clock, rt, venue, corridor):
    ident = client.get("/api/v1/me/beacon-identity", headers=member["headers"]).get_json()
    assert ident["uuid"] == rt.settings.beacons.identity_uuid
    for i in range(8):
        clock.advance(seconds=1)
        sighting = {"t": clock.now.timestamp(), "kind": "ibeacon", "rssi": -58 - i % 2, "address": "7A:11:22:33:44:55",
                    "uuid": ident["uuid"], "major": ident["major"], "minor": ident["minor"], "measured_power": -59}
        body, headers = signed(venue.gateway_key, {"sightings": [sighting]}, clock.now)
        response = client.post("/api/v1/gateway/sightings", data=body, headers=headers)
        assert response.status_code == 202, response.get_json()
        worker.step(block_ms=0)
    # Heard by the entrance's gateway only: placed at the entrance, not checked in (it may be someone
    # waiting outside the door: docs/presence.md).
    assert live.members_in(rt.redis, venue.entrance) == {member["member"]["id"]}
    assert count(rt, Checkin) == 0
    # Their phone then hears the corridor beacon inside: in.
    walk(client, member, worker, clock, 8, IN)
    assert count(rt, Checkin, member_id=member["member"]["id"], method="beacon") == 1


def test_an_identity_recorded_yesterday_resolves_to_nobody_today(client, member, worker, clock, rt, venue):
    ident = client.get("/api/v1/me/beacon-identity", headers=member["headers"]).get_json()
    clock.advance(days=1)
    for _ in range(8):
        clock.advance(seconds=1)
        sighting = {"t": clock.now.timestamp(), "kind": "ibeacon", "rssi": -58, "uuid": ident["uuid"],
                    "major": ident["major"], "minor": ident["minor"], "measured_power": -59}
        body, headers = signed(venue.gateway_key, {"sightings": [sighting]}, clock.now)
        assert client.post("/api/v1/gateway/sightings", data=body, headers=headers).status_code == 202
        worker.step(block_ms=0)
    assert count(rt, Checkin) == 0
    assert live.zone_counts(rt.redis, [0])[0] == 0


def test_a_worker_remembers_an_identity_only_for_as_long_as_it_is_valid(rt, clock, monkeypatch):
    asked = []
    lookup = identity._lookup
    monkeypatch.setattr(identity, "_lookup", lambda redis, pairs: asked.append(pairs) or lookup(redis, pairs))
    resolver = identity.Resolver(rt.redis)
    issued = identity.issue(rt.redis, rt.settings, 7, clock.now)
    pair, t = (issued.major, issued.minor), clock.now.timestamp()
    assert resolver.resolve({pair: t}) == {pair: 7}
    assert resolver.resolve({pair: t + 60}) == {pair: 7} and len(asked) == 1  # from memory
    # Heard after its validity: Redis decides, and the token may belong to someone else by then.
    later = issued.valid_until.timestamp() + 1
    rt.redis.set(identity._token_key((pair[0] << 16) | pair[1]), f"8:{later + 900}")
    assert resolver.resolve({pair: later}) == {pair: 8} and len(asked) == 2


def test_identities_rotate(client, member, clock):
    first = client.get("/api/v1/me/beacon-identity", headers=member["headers"]).get_json()
    assert client.get("/api/v1/me/beacon-identity", headers=member["headers"]).get_json() == first
    clock.advance(minutes=11)  # less than a third of the 15 minutes left
    second = client.get("/api/v1/me/beacon-identity", headers=member["headers"]).get_json()
    assert (second["major"], second["minor"]) != (first["major"], first["minor"])


def test_gateway_telemetry_updates_fleet_health(client, worker, clock, rt, venue):
    at = clock.now.timestamp()
    batch = {"sightings": [
        {"t": at, "kind": "ibeacon", "rssi": -70, "uuid": UUID, "major": 1, "minor": 2, "measured_power": -59},
        {"t": at, "kind": "tlm", "rssi": -70, "uuid": UUID, "major": 1, "minor": 2, "battery_mv": 2400,
         "temperature_c": -1.5, "adv_count": 1200, "uptime_s": 86400.5},
        {"t": at, "kind": "tlm", "rssi": -80, "battery_mv": 3000, "temperature_c": None, "adv_count": 1,
         "uptime_s": 1.0}]}
    body, headers = signed(venue.gateway_key, batch, clock.now)
    response = client.post("/api/v1/gateway/sightings", data=body, headers=headers)
    assert response.get_json() == {"accepted": 2, "ignored": 1}
    worker.step(block_ms=0)
    with rt.sessions() as s:
        status = s.get(BeaconStatus, venue.beacons["store"])
    assert (status.battery_mv, status.temperature_c, status.adv_count, status.last_rssi) == (2400, -1.5, 1200, -70)
    assert status.last_seen_at == clock.now


def _tlm(at: float, adv_count: int) -> dict:
    return {"t": at, "kind": "tlm", "rssi": -70, "uuid": UUID, "major": 1, "minor": 2, "battery_mv": 2400,
            "temperature_c": 21.0, "adv_count": adv_count, "uptime_s": 429496729.5}


def test_the_largest_tlm_advertising_count_is_stored_and_a_larger_one_refused(client, worker, clock, rt, venue):
    at = clock.now.timestamp()
    body, headers = signed(venue.gateway_key, {"sightings": [_tlm(at, 2**32 - 1)]}, clock.now)
    assert client.post("/api/v1/gateway/sightings", data=body, headers=headers).status_code == 202
    worker.step(block_ms=0)
    with rt.sessions() as s:
        assert s.get(BeaconStatus, venue.beacons["store"]).adv_count == 2**32 - 1
    body, headers = signed(venue.gateway_key, {"sightings": [_tlm(at, 2**32)]}, clock.now)
    response = client.post("/api/v1/gateway/sightings", data=body, headers=headers)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "sightings.invalid_beacon"


def test_a_poison_entry_is_set_aside_and_the_members_with_it_apply_once(client, member, clock, rt, venue):
    """An entry the database refuses (as an older ingest let through) fails its worker's chunk: the others
    of the chunk still apply exactly once, and after three deliveries the entry is set aside for ops."""
    worker = Worker(rt, "w", block_ms=0, flush_every_s=0, claim_idle_ms=0, max_deliveries=3)
    worker.ensure_group()
    partition = member_partition(rt.settings, member["member"]["id"])
    poison = {"src": "g", "gateway": venue.gateway, "at": clock.now.timestamp(), "s": [],
              "tlm": [[0, 1, 2, 2400, 21.0, 1.0, 2**70, clock.now.timestamp()]]}  # no database holds 2**70
    rt.redis.xadd(stream(partition), {"d": json.dumps(poison)})
    failed = 0
    for i in range(40):
        clock.advance(seconds=1)
        post_sightings(client, member, {1: -60 - i % 3} if i < 7 else {2: -66 - i % 3})  # in, then to the store
        try:
            worker.step(block_ms=0)
        except Exception:
            failed += 1
    assert worker.dead_lettered == 1 and failed == 1  # the poison claimed alone on its 2nd delivery
    assert pending(rt) == 0
    (_, dead), = rt.redis.xrange(dead_letters(stream(partition)))
    assert json.loads(dead[b"d"]) == poison and dead[b"dead:delivered"] == b"3" and dead[b"dead:error"]
    worker.publish_stats()
    assert rt.redis.hget(stats_key("w"), "dead_lettered") == b"1"
    # One continuous stay: one check-in, one dwell event, no visit closed.
    assert count(rt, Checkin, method="beacon") == 1
    assert count(rt, ProximityEvent) == 1
    assert count(rt, ZoneVisit) == 0 and count(rt, MallVisit) == 0
    assert live.zone_counts(rt.redis, [0, venue.entrance, venue.store_zone]) == {
        0: 1, venue.entrance: 1, venue.store_zone: 1}


def test_a_worker_carries_on_by_itself_after_redis_lost_its_data(client, member, members_api, worker, clock, rt,
                                                                 venue, corridor):
    walk(client, member, worker, clock, 8, IN)
    assert count(rt, Checkin, method="beacon") == 1
    rt.redis.flushall()  # restarted without persistence: groups, leases, states, registry version all gone
    member = members_api.sign_in(openid="o-member-1")  # and the member's token: they sign in again
    walk(client, member, worker, clock, 25, {2: -66})  # not one step fails
    assert worker.groups_lost == 1 and worker.leases.held
    assert pending(rt) == 0
    assert count(rt, Checkin, method="beacon") == 1  # the database remembers today's check-in
    assert count(rt, ProximityEvent, zone_id=venue.store_zone) == 1  # presence rebuilt from the sightings
    assert live.zone_counts(rt.redis, [venue.store_zone]) == {venue.store_zone: 1}


def test_a_stay_rebuilt_after_its_state_was_lost_is_told_once_and_a_new_stay_after_its_exit_again(rt, venue,
                                                                                                   members_api):
    member_id = members_api.sign_in(openid="o-rebuilt")["member"]["id"]
    first = rt.now()
    with rt.sessions.begin() as s:
        assert not history.stay_goes_on(s, member_id, venue.store_zone, first)
        history.record_proximity_event(s, member_id, venue.store_zone, venue.store, None, first,
                                       first + timedelta(seconds=20))
        # Presence rebuilt a minute later (Redis lost the worker's state): the same stay, told already.
        assert history.stay_goes_on(s, member_id, venue.store_zone, first + timedelta(minutes=1))
        # The rebuilt stay ends: its visit is written, so a later stay is a new one.
        history.record_zone_visit(s, member_id, venue.store_zone, first + timedelta(minutes=1),
                                  first + timedelta(minutes=5))
        assert not history.stay_goes_on(s, member_id, venue.store_zone, first + timedelta(minutes=30))
        # Another zone's stay is its own.
        assert not history.stay_goes_on(s, member_id, venue.item_zone, first + timedelta(minutes=1))
