"""Sighting ingest: bad batches get a clear 4xx and add nothing; gateways must sign, freshly, once."""

from __future__ import annotations

import logging

import pytest
from factories import UUID, signed

from mallapp.domain.proximity.ingest import streams

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def beacon(**over):
    return {"uuid": UUID, "major": 1, "minor": 1, "rssi": -60, **over}


def post(client, member, body):
    return client.post("/api/v1/sightings", headers=member["headers"], json=body)


def stream_len(rt) -> int:
    """Entries in all partitions of the sightings stream."""
    return sum(rt.redis.xlen(name) for name in streams(rt.settings) if rt.redis.exists(name))


def test_a_member_batch_is_appended_and_ios_unmeasured_entries_ignored(client, member, rt):
    response = post(client, member, {"beacons": [beacon(), beacon(minor=2, rssi=0)]})
    assert response.status_code == 202
    assert response.get_json() == {"accepted": 1, "ignored": 1}
    assert stream_len(rt) == 1


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"beacons": [beacon(uuid="11111111-2222-3333-4444-555555555555")]}, 422, "sightings.unknown_uuid"),
    ({"beacons": [beacon(rssi=12)]}, 400, "sightings.impossible_rssi"),
    ({"beacons": [beacon(rssi=-200)]}, 400, "sightings.impossible_rssi"),
    ({"beacons": [beacon(major=70000)]}, 400, "sightings.invalid_beacon"),
    ({"beacons": [beacon(uuid="not-a-uuid")]}, 400, "request.invalid"),
    ({"beacons": [beacon(rssi="-60")]}, 400, "request.invalid"),
    ({"beacons": [beacon()] * 101}, 413, "sightings.batch_too_large"),
    ({"beacons": [beacon()], "ts": 1_000}, 422, "sightings.stale"),
    ({"beacons": [beacon()], "extra": 1}, 400, "request.invalid"),
])
def test_bad_member_batches_are_refused_and_add_nothing(client, member, rt, body, status, code):
    response = post(client, member, body)
    assert (response.status_code, response.get_json()["error"]["code"]) == (status, code)
    assert stream_len(rt) == 0


def test_timestamps_from_the_future_are_refused(client, member, clock, rt):
    ts = int(clock.now.timestamp() * 1000) + 120_000
    response = post(client, member, {"beacons": [beacon()], "ts": ts})
    assert response.get_json()["error"]["code"] == "sightings.from_future"


def test_member_batches_are_rate_limited(client, member, rt):
    limit = rt.settings.beacons.ingest.member_batches_per_minute
    for _ in range(limit):
        assert post(client, member, {"beacons": [beacon()]}).status_code == 202
    response = post(client, member, {"beacons": [beacon()]})
    assert response.status_code == 429
    assert response.get_json()["error"]["code"] == "sightings.rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert stream_len(rt) == limit


def test_sightings_need_a_member_token(client, merchant):
    assert client.post("/api/v1/sightings", json={"beacons": []}).status_code == 401
    assert client.post("/api/v1/sightings", headers=merchant["headers"], json={"beacons": []}).status_code == 403


def gateway_post(client, body, headers):
    return client.post("/api/v1/gateway/sightings", data=body, headers=headers)


def sighting(clock, **over):
    return {"t": clock.now.timestamp(), "kind": "ibeacon", "rssi": -70, "uuid": UUID, "major": 1, "minor": 1,
            "measured_power": -59, "address": "C1:00:00:00:00:01", **over}


def test_a_signed_gateway_batch_is_accepted_once(client, venue, clock, rt):
    body, headers = signed(venue.gateway_key, {"sightings": [sighting(clock)]}, clock.now)
    assert gateway_post(client, body, headers).status_code == 202
    replay = gateway_post(client, body, headers)
    assert (replay.status_code, replay.get_json()["error"]["code"]) == (409, "gateway.replayed")
    assert stream_len(rt) == 1


def test_gateway_batches_with_a_bad_signature_stale_time_or_old_key_are_refused(client, venue, clock, rt):
    body, headers = signed(venue.gateway_key, {"sightings": [sighting(clock)]}, clock.now)
    tampered = gateway_post(client, body.replace(b"-70", b"-40"), headers)
    assert tampered.get_json()["error"]["code"] == "gateway.bad_signature"
    old = clock.now.replace(minute=clock.now.minute) - __import__("datetime").timedelta(minutes=6)
    body, headers = signed(venue.gateway_key, {"sightings": [sighting(clock)]}, old)
    assert gateway_post(client, body, headers).get_json()["error"]["code"] == "gateway.stale_signature"
    wrong_key = venue.gateway_key.replace(".1.", ".2.")
    body, headers = signed(wrong_key, {"sightings": [sighting(clock)]}, clock.now)
    assert gateway_post(client, body, headers).get_json()["error"]["code"] == "gateway.bad_key"
    response = client.post("/api/v1/gateway/sightings", json={"sightings": []})
    assert (response.status_code, response.get_json()["error"]["code"]) == (401, "gateway.unsigned")
    assert stream_len(rt) == 0


def test_gateways_ignore_other_uuids_they_hear(client, venue, clock, rt):
    stranger = sighting(clock, uuid="11111111-2222-3333-4444-555555555555")
    body, headers = signed(venue.gateway_key, {"sightings": [sighting(clock), stranger]}, clock.now)
    response = gateway_post(client, body, headers)
    assert (response.status_code, response.get_json()) == (202, {"accepted": 1, "ignored": 1})


@pytest.mark.parametrize(("over", "status", "code"), [
    ({"rssi": 3}, 400, "sightings.impossible_rssi"),
    ({"t_offset": -4000}, 422, "sightings.stale"),
    ({"t_offset": 600}, 422, "sightings.from_future"),
    ({"kind": "ibeacon", "uuid": None}, 400, "sightings.invalid_beacon"),
    ({"kind": "altbeacon"}, 400, "request.invalid"),
])
def test_bad_gateway_sightings_refuse_the_batch(client, venue, clock, rt, over, status, code):
    item = sighting(clock)
    item["t"] += over.pop("t_offset", 0)
    item.update(over)
    body, headers = signed(venue.gateway_key, {"sightings": [sighting(clock), item]}, clock.now)
    response = gateway_post(client, body, headers)
    assert (response.status_code, response.get_json()["error"]["code"]) == (status, code)
    assert stream_len(rt) == 0


def test_oversized_gateway_batches_are_refused(client, venue, clock, rt):
    n = rt.settings.beacons.ingest.gateway_batch_max + 1
    body, headers = signed(venue.gateway_key, {"sightings": [sighting(clock)] * n}, clock.now)
    assert len(body) > rt.settings.max_body_bytes  # a full batch is larger than other bodies may be
    response = gateway_post(client, body, headers)
    assert (response.status_code, response.get_json()["error"]["code"]) == (413, "sightings.batch_too_large")


def test_sightings_access_lines_are_debug_and_other_requests_info(client, member, rt, clock, venue, caplog):
    caplog.set_level(logging.DEBUG, logger="mallapp.access")
    beacon = {"uuid": UUID, "major": 1, "minor": 1, "rssi": -60}
    assert client.post("/api/v1/sightings", headers=member["headers"],
                       json={"beacons": [beacon]}).status_code == 202
    sighting = {"t": clock.now.timestamp(), "kind": "ibeacon", "rssi": -70, "uuid": UUID, "major": 1, "minor": 1,
                "measured_power": -59, "address": "C1:00:00:00:00:01"}
    body, headers = signed(venue.gateway_key, {"sightings": [sighting]}, clock.now)
    assert client.post("/api/v1/gateway/sightings", data=body, headers=headers).status_code == 202
    refused = client.post("/api/v1/gateway/sightings", json={"sightings": []})
    assert refused.status_code == 401
    assert client.get("/api/v1/ping").status_code == 200
    levels = [(r.levelno, r.method, r.path, r.status) for r in caplog.records if r.name == "mallapp.access"]
    assert levels == [
        (logging.DEBUG, "POST", "/api/v1/sightings", 202),
        (logging.DEBUG, "POST", "/api/v1/gateway/sightings", 202),
        (logging.INFO, "POST", "/api/v1/gateway/sightings", 401),  # a gateway refused is worth a line
        (logging.INFO, "GET", "/api/v1/ping", 200),
    ]
