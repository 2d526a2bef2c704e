"""Faults, as tests that keep running: real processes killed mid-stream, and what the database says afterwards.

The proximity workers here are real ``mallapp worker`` processes on the test PostgreSQL and Redis,
fed by members' phones through the API on the real clock (the workers keep their own time). One is
killed with SIGKILL while sightings flow, another takes its place without a hand, and every member
ends with exactly one check-in, one dwell event at the store and one mall visit.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from factories import cli_env, post_sightings
from sqlalchemy import func, select

from mallapp.domain.checkin import Checkin
from mallapp.domain.proximity.history import MallVisit, ProximityEvent
from mallapp.domain.proximity.leases import WORKERS

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

# The exit timeout outlasts a dead worker's leases (10 s): until another worker takes its partitions
# up, its members' sightings wait unread, and the sweep must not end their stays meanwhile.
DWELL_S, EXIT_S = 3.0, 15.0
MEMBERS = 12
PARTITIONS = 8  # [beacons.ingest] stream_partitions


@pytest.fixture
def settings_overrides():
    return {"beacons": {"zones": {"dwell_store_s": DWELL_S, "dwell_item_s": DWELL_S, "exit_timeout_s": EXIT_S}}}


def _worker(settings, tmp_path, name: str) -> subprocess.Popen:
    env = cli_env(tmp_path, MALL_DATABASE_URL=settings.database_url, MALL_REDIS_URL=settings.redis_url,
                  MALL_SECRET_KEY=settings.secret_key, MALL_WECHAT_APPID=settings.wechat.appid,
                  MALL_WECHAT_SECRET=settings.wechat.secret, MALL_WECHAT_API_BASE=settings.wechat.api_base,
                  MALL_BEACONS_ZONES_DWELL_STORE_S=str(DWELL_S), MALL_BEACONS_ZONES_DWELL_ITEM_S=str(DWELL_S),
                  MALL_BEACONS_ZONES_EXIT_TIMEOUT_S=str(EXIT_S))
    return subprocess.Popen([sys.executable, "-m", "mallapp", "worker", "--consumer", name, "--flush-every", "0.2",
                             "--claim-idle-ms", "1000", "--block-ms", "100"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"{name}.log", "w"), text=True)


def _wait_for_workers(rt, n: int) -> None:
    """Until ``n`` workers beat in Redis and every partition is held (traffic then meets them running)."""
    deadline = time.monotonic() + 60
    while rt.redis.zcard(WORKERS) < n or len(rt.redis.keys("proximity:partition-lease:*")) < PARTITIONS:
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.1)


def _counts(rt, model, member_ids: list[int], *where) -> dict[int, int]:
    with rt.sessions() as s:
        found = dict(s.execute(select(model.member_id, func.count()).where(model.member_id.in_(member_ids), *where)
                               .group_by(model.member_id)).all())
    return {m: found.get(m, 0) for m in member_ids}


def test_a_worker_killed_mid_stream_loses_and_doubles_nothing(client, rt, members_api, venue, settings, tmp_path):
    rt.clock = lambda: datetime.now(UTC)  # the workers run on the real clock; so do the phones here
    members = [members_api.sign_in(openid=f"o-fault-{i}") for i in range(MEMBERS)]
    ids = [m["member"]["id"] for m in members]
    workers = [_worker(settings, tmp_path, "doomed"), _worker(settings, tmp_path, "steady")]
    try:
        _wait_for_workers(rt, 2)
        started = time.monotonic()
        killed = False
        # Every member walks in by the entrance and stands by the store for DWELL_S * 4 seconds, its phone
        # posting a batch a second.
        batch = 0
        while time.monotonic() - started < DWELL_S * 4:
            batch += 1
            wobble = batch % 3  # a phone's RSSI moves: the same value thrice is a stale list entry
            for member in members:
                post_sightings(client, member, {venue.minors["entrance"]: -60 - wobble, venue.minors["store"]: -60 - wobble})
            if not killed and time.monotonic() - started > DWELL_S * 1.5:
                workers[0].send_signal(signal.SIGKILL)  # mid-stream: states in memory, entries unacknowledged
                workers[0].wait(10)
                workers.append(_worker(settings, tmp_path, "replacement"))
                killed = True
            time.sleep(1.0)
        # The members walk away: after the exit timeout their visits are written.
        deadline = time.monotonic() + 60
        while True:
            visits = _counts(rt, MallVisit, ids)
            if all(visits.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for proc in workers[1:]:
            assert proc.poll() is None
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(15)
    assert killed
    assert _counts(rt, Checkin, ids) == {m: 1 for m in ids}
    assert _counts(rt, ProximityEvent, ids, ProximityEvent.store_id == venue.store,
                   ProximityEvent.sale_item_id.is_(None)) == {m: 1 for m in ids}
    assert _counts(rt, MallVisit, ids) == {m: 1 for m in ids}
