"""Ops list the stream entries the consumers set aside (dead letters) and put them back on their stream."""

from __future__ import annotations

from datetime import datetime

import pytest
from factories import api_error

from mallapp.domain import dead_letters
from mallapp.domain.proximity.effects import EVENTS_STREAM
from mallapp.domain.proximity.ingest import stream
from mallapp.processes.streams import GroupConsumer

API = "/api/v1/ops/dead-letters"
SIGHTINGS = stream(0)

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")


def set_aside(rt, name: str, fields: dict, group: str = "proximity", error: str = "cannot handle it") -> str:
    """Put an entry on ``name`` and set it aside as its consumer does after its last delivery; its id."""
    entry_id = rt.redis.xadd(name, fields)
    consumer = GroupConsumer(rt.redis, group, "test", count=10, block_ms=0, claim_idle_ms=1000)
    consumer.dead_letter(name, (entry_id, fields), ValueError(error), 3)
    return entry_id.decode()


def test_ops_list_each_consumer_streams_dead_letters_newest_first(client, rt, ops_viewer):
    first = set_aside(rt, SIGHTINGS, {"m": "1"})
    second = set_aside(rt, SIGHTINGS, {"m": "2", "raw": b"\xff\xfeok"})
    set_aside(rt, EVENTS_STREAM, {"kind": "enter"}, group="offers")
    listed = client.get(API, headers=ops_viewer["headers"])
    assert listed.status_code == 200, listed.get_json()
    streams = {s["stream"]: s for s in listed.get_json()["streams"]}
    assert list(streams) == dead_letters.consumer_streams(rt.settings)  # every partition, then the events
    sightings = streams[SIGHTINGS]
    assert sightings["total"] == 2
    newest, oldest = sightings["entries"]
    assert (newest["original_id"], oldest["original_id"]) == (second, first)
    assert newest["group"] == "proximity" and newest["deliveries"] == 3
    assert newest["error"] == "ValueError: cannot handle it"
    assert newest["fields"] == {"m": "2", "raw": "\ufffd\ufffdok"}  # undecodable bytes replaced
    assert datetime.fromisoformat(newest["at"]).tzinfo is not None
    assert streams[EVENTS_STREAM]["entries"][0]["group"] == "offers"
    assert all(s["total"] == 0 for name, s in streams.items() if name not in (SIGHTINGS, EVENTS_STREAM))
    limited = client.get(API, headers=ops_viewer["headers"], query_string={"limit": 1}).get_json()
    assert [e["original_id"] for e in limited["streams"][0]["entries"]] == [second]
    assert limited["streams"][0]["total"] == 2
    for bad in (0, 501):
        assert client.get(API, headers=ops_viewer["headers"], query_string={"limit": bad}).status_code == 400


def test_an_admin_replays_them_back_onto_their_stream(client, rt, ops_admin):
    kept = set_aside(rt, SIGHTINGS, {"m": "1"})
    set_aside(rt, SIGHTINGS, {"m": "2"})
    dead = {e["original_id"]: e["id"] for e in
            client.get(API, headers=ops_admin["headers"]).get_json()["streams"][0]["entries"]}
    before = rt.redis.xlen(SIGHTINGS)
    # One by its id (an id no longer there is skipped) ...
    one = client.post(f"{API}/replay", headers=ops_admin["headers"],
                      json={"stream": SIGHTINGS, "ids": [dead[kept], "1-1"]})
    assert one.status_code == 200, one.get_json()
    assert one.get_json() == {"stream": SIGHTINGS, "replayed": 1}
    (_, fields), = rt.redis.xrevrange(SIGHTINGS, count=1)
    assert fields == {b"m": b"1"}  # back as a new entry, without the dead letter's own fields
    assert rt.redis.xlen(SIGHTINGS) == before + 1
    assert [i for i, _ in rt.redis.xrange(dead_letters.dead_key(SIGHTINGS))] != [dead[kept].encode()]
    # ... then the rest.
    rest = client.post(f"{API}/replay", headers=ops_admin["headers"], json={"stream": SIGHTINGS})
    assert rest.get_json()["replayed"] == 1
    assert rt.redis.xlen(dead_letters.dead_key(SIGHTINGS)) == 0
    assert client.get(API, headers=ops_admin["headers"]).get_json()["streams"][0] == {
        "stream": SIGHTINGS, "total": 0, "entries": []}


def test_a_replayed_entry_is_read_again_by_its_group(client, rt, ops_admin):
    consumer = GroupConsumer(rt.redis, "offers", "test", count=10, block_ms=0, claim_idle_ms=1000)
    rt.redis.xgroup_create(EVENTS_STREAM, "offers", id="$", mkstream=True)
    set_aside(rt, EVENTS_STREAM, {"kind": "enter"}, group="offers")
    assert consumer.read([EVENTS_STREAM]) != []  # the original (already acknowledged when set aside)
    assert consumer.read([EVENTS_STREAM]) == []
    client.post(f"{API}/replay", headers=ops_admin["headers"], json={"stream": EVENTS_STREAM})
    (_name, entries), = consumer.read([EVENTS_STREAM])
    assert [fields for _id, fields in entries] == [{b"kind": b"enter"}]


def test_a_viewer_cannot_replay(client, rt, ops_viewer):
    set_aside(rt, SIGHTINGS, {"m": "1"})
    api_error(client.post(f"{API}/replay", headers=ops_viewer["headers"], json={"stream": SIGHTINGS}),
              "ops.admin_required")
    assert rt.redis.xlen(dead_letters.dead_key(SIGHTINGS)) == 1


def test_an_unknown_stream_or_a_malformed_id_is_refused(client, rt, ops_admin):
    error = api_error(client.post(f"{API}/replay", headers=ops_admin["headers"], json={"stream": "members"}),
                      "dead_letters.unknown_stream")
    assert error["details"]["streams"] == dead_letters.consumer_streams(rt.settings)
    api_error(client.post(f"{API}/replay", headers=ops_admin["headers"],
                          json={"stream": SIGHTINGS, "ids": ["not-an-id"]}), "request.invalid")


def test_signed_out_callers_see_nothing(client):
    assert client.get(API).status_code == 401
