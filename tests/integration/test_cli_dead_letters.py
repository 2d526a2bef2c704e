"""``mallapp dead-letters list|replay``: the operators' handles on the dead letters, on a real Redis."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mallapp import cli
from mallapp.domain import dead_letters
from mallapp.domain.proximity.ingest import stream
from mallapp.processes.streams import GroupConsumer

SIGHTINGS = stream(0)


@pytest.fixture
def run(settings, monkeypatch):
    monkeypatch.setattr(cli, "_settings", lambda environ=None: settings)
    return lambda *args: CliRunner().invoke(cli.main, ["dead-letters", *args])


def test_list_then_replay_a_stream(run, rt):
    entry_id = rt.redis.xadd(SIGHTINGS, {"m": "7"})
    GroupConsumer(rt.redis, "proximity", "t", count=1, block_ms=0, claim_idle_ms=1000).dead_letter(
        SIGHTINGS, (entry_id, {"m": "7"}), ValueError("bad sighting"), 3)
    listed = run("list")
    assert listed.exit_code == 0, listed.output
    assert f"{SIGHTINGS}: 1 set aside" in listed.output and f"was {entry_id.decode()}" in listed.output
    assert "ValueError: bad sighting" in listed.output and "proximity:events: 0 set aside" in listed.output
    unknown = run("replay", "members")
    assert unknown.exit_code == 1 and "no consumer reads the stream 'members'" in unknown.output
    replayed = run("replay", SIGHTINGS)
    assert replayed.exit_code == 0 and f"{SIGHTINGS}: 1 put back" in replayed.output
    assert dead_letters.count(rt.redis, SIGHTINGS) == 0 and rt.redis.xlen(SIGHTINGS) == 2
