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
from datetime import UTC, datetime, timedelta

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


# --- the clock killed mid-job ----------------------------------------------------------------------

DUE_COUPONS, HOLDERS = 3000, 60  # six batches of 500 (the job's batch)


def _due_coupons(rt, n: int, holders: int) -> list[int]:
    """``n`` unused coupons of a live deal ending in 20 hours, spread over ``holders`` members; their ids.

    Written in bulk with SQLAlchemy core: claiming them one by one through the domain would take longer
    than the run they feed."""
    from sqlalchemy import insert

    from mallapp.domain import deals, members, merchants, venue_admin
    from mallapp.domain.coupons import Coupon

    now = rt.now()
    with rt.sessions.begin() as s:
        merchant, _ = merchants.create(s, "Starlight Coffee", now)
        store = venue_admin.create_store(s, name="Starlight", floor=1, x=0, y=0, merchant_id=merchant.id, now=now)
        deal = deals.create(s, merchant.id, title="Flat white 5 yuan off", store_id=store.id,
                            starts_at=now - timedelta(days=1), ends_at=now + timedelta(hours=20), quota=n,
                            per_member_limit=n, benefit={"kind": "amount_off", "amount_fen": 500}, now=now)
        deal.status = "live"
        owners = [members.sign_in(s, openid=f"o-holder-{i}", unionid=None, now=now)[0] for i in range(holders)]
        s.flush()
        ids = s.scalars(insert(Coupon).returning(Coupon.id), [
            {"deal_id": deal.id, "member_id": owners[i % holders].id, "code": f"F{i:09d}", "claimed_at": now}
            for i in range(n)]).all()
        deal.claimed = n
    return list(ids)


def test_the_clock_killed_mid_job_is_finished_by_the_next_run_once_its_lock_lapses(rt, settings, tmp_path):
    from mallapp.domain.notifications import Notification
    from mallapp.processes import clock as scheduler

    rt.clock = lambda: datetime.now(UTC)  # the job's process runs on the real clock
    coupon_ids = _due_coupons(rt, DUE_COUPONS, HOLDERS)
    keys = {f"coupon:{cid}:expiring" for cid in coupon_ids}

    def reminders() -> dict[str, int]:
        with rt.sessions() as s:
            return dict(s.execute(select(Notification.key, func.count()).where(Notification.kind == "reminder")
                                  .group_by(Notification.key)).all())

    env = cli_env(tmp_path, MALL_DATABASE_URL=settings.database_url, MALL_REDIS_URL=settings.redis_url,
                  MALL_SECRET_KEY=settings.secret_key, MALL_WECHAT_APPID=settings.wechat.appid,
                  MALL_WECHAT_SECRET=settings.wechat.secret, MALL_WECHAT_API_BASE=settings.wechat.api_base)
    command = [sys.executable, "-m", "mallapp", "jobs", "run", "coupon-reminders"]
    doomed = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not 0 < len(reminders()) < DUE_COUPONS:  # a batch committed, and more to come
            assert doomed.poll() is None, f"the run ended before it could be killed: {doomed.stdout.read()}"
            assert time.monotonic() < deadline, "the run wrote no batch"
            time.sleep(0.01)
        doomed.send_signal(signal.SIGKILL)  # between or inside batches: its lock stays, unrenewed
    finally:
        if doomed.poll() is None:
            doomed.kill()
        doomed.wait(10)
    done_before = len(reminders())
    assert 0 < done_before < DUE_COUPONS, done_before
    lock = scheduler.lock_key("coupon-reminders")
    # The dead run's lock lapses within its short TTL (nobody deletes it); then the job is run again.
    deadline = time.monotonic() + scheduler.find("coupon-reminders").lock_ttl_s + 5
    while rt.redis.exists(lock):
        assert time.monotonic() < deadline, "the dead run's lock did not lapse"
        time.sleep(0.2)
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and again.stdout.startswith("coupon-reminders: done,"), (again.stdout, again.stderr)
    assert int(again.stdout.split("done, ")[1].split()[0]) == DUE_COUPONS - done_before  # the rest, only the rest
    assert reminders() == {key: 1 for key in keys}  # every due coupon reminded exactly once


# --- PostgreSQL restarted under till traffic -------------------------------------------------------

RECEIPTS, SHOPPERS = 240, 6


def test_postgres_restarted_under_till_traffic_records_every_receipt_once(settings, clock, emulator):
    import threading

    from mallapp.api.app import create_app
    from mallapp.devtools.servers import PostgresServer
    from mallapp.domain import merchants, points
    from mallapp.domain.points import PointsAccount
    from mallapp.domain.purchases import Purchase
    from mallapp.runtime import build_runtime
    from mallapp.schema import upgrade

    # Durable (fsync and synchronous commit on): an immediate shutdown must not lose what was acknowledged.
    with PostgresServer(fast=False) as server:
        url = server.create_database("tills")
        upgrade(url)
        rt = build_runtime(settings.model_copy(update={"database_url": url}))
        rt.clock = clock
        try:
            client = create_app(runtime=rt).test_client()
            with rt.sessions.begin() as s:
                key = merchants.create(s, "Starlight Coffee", rt.now())[1]
            till = {"Authorization": f"Bearer {key}"}
            shoppers = []
            for i in range(SHOPPERS):
                signed = client.post("/api/v1/auth/wechat", json={"code": emulator.login(openid=f"o-till-{i}")})
                assert signed.status_code == 200, signed.get_json()
                headers = {"Authorization": f"Bearer {signed.get_json()['token']}"}
                card = client.get("/api/v1/me/card", headers=headers).get_json()["code"]
                shoppers.append((signed.get_json()["member"]["id"], card))

            answered: dict[str, int] = {}  # receipt -> status of the answer the till kept
            retries = {"n": 0}
            failures: list[BaseException] = []

            def tills() -> None:
                try:
                    for n in range(RECEIPTS):
                        _, card = shoppers[n % SHOPPERS]
                        body = {"member_code": card, "amount_fen": 1_000 + 137 * n, "receipt_no": f"R-{n:05d}",
                                "occurred_at": clock.now.isoformat()}
                        deadline = time.monotonic() + 40
                        while True:  # a till retries the same receipt until it has an answer
                            try:
                                response = client.post("/api/v1/merchant/purchases", headers=till, json=body)
                                if response.status_code in (200, 201):
                                    answered[body["receipt_no"]] = response.status_code
                                    break
                                assert response.status_code >= 500, response.get_json()
                            except AssertionError:
                                raise
                            except Exception:  # the connection itself failed: the same as no answer
                                pass
                            retries["n"] += 1
                            assert time.monotonic() < deadline, f"{body['receipt_no']} never answered"
                            time.sleep(0.05)
                except BaseException as exc:  # noqa: BLE001 -- reported by the main thread
                    failures.append(exc)

            started = time.monotonic()
            thread = threading.Thread(target=tills, daemon=True)
            thread.start()
            for mode, after in (("fast", RECEIPTS // 4), ("immediate", RECEIPTS // 2)):
                deadline = time.monotonic() + 30
                while len(answered) < after:
                    assert thread.is_alive() and time.monotonic() < deadline, failures
                    time.sleep(0.01)
                server.halt(mode)  # mid-traffic: requests in flight lose their connection
                time.sleep(1.0)    # the tills meet a database that is not there
                server.resume()
            thread.join(60)
            assert not thread.is_alive() and not failures, failures
            wall = time.monotonic() - started

            assert len(answered) == RECEIPTS and retries["n"] > 0, (len(answered), retries, wall)
            with rt.sessions() as s:
                per_receipt = dict(s.execute(select(Purchase.receipt_no, func.count()).group_by(Purchase.receipt_no)).all())
                earned = dict(s.execute(select(Purchase.member_id,
                                               func.sum(Purchase.points_earned + Purchase.birthday_bonus))
                                        .group_by(Purchase.member_id)).all())
                balances = dict(s.execute(select(PointsAccount.member_id, PointsAccount.balance)).all())
                problems = points.check_invariants(s)
            assert per_receipt == {f"R-{n:05d}": 1 for n in range(RECEIPTS)}  # none lost, none doubled
            assert {m: balances.get(m) for m, _ in shoppers} == {m: earned[m] for m, _ in shoppers}
            assert problems == []
        finally:
            rt.close()


# --- Redis restarted with and without its data, under a running worker ----------------------------

# Found by this test, not fixed here: the worker forgets its presence states with Redis's data
# (ProximityWorker.lost_redis) and rebuilds them from the next sightings, so a member who stood by the
# store through the loss has a second dwell event there. Check-ins do not double.
@pytest.mark.parametrize("stays_through_the_loss", [False, True])
def test_redis_restarted_with_and_without_its_data_the_worker_resumes_and_doubles_nothing(
        settings, emulator, venue, tmp_path, stays_through_the_loss):
    from mallapp.api.app import create_app
    from mallapp.devtools.servers import RedisServer, free_port
    from mallapp.runtime import build_runtime

    redis_server = RedisServer(port=free_port()).start()
    own = settings.model_copy(update={"redis_url": redis_server.url})
    rt = build_runtime(own)
    rt.clock = lambda: datetime.now(UTC)  # the worker runs on the real clock; so do the phones here
    worker = _worker(own, tmp_path, "survivor")
    try:
        client = create_app(runtime=rt).test_client()

        def sign_in(openid: str) -> dict:
            signed = client.post("/api/v1/auth/wechat", json={"code": emulator.login(openid=openid)})
            assert signed.status_code == 200, signed.get_json()
            return {**signed.get_json(), "openid": openid,
                    "headers": {"Authorization": f"Bearer {signed.get_json()['token']}"}}

        phones = {f"o-redis-{i}": sign_in(f"o-redis-{i}") for i in range(6)}
        ids = [p["member"]["id"] for p in phones.values()]
        _wait_for_workers(rt, 1)
        beat = {"n": 0}
        signed_again: set[str] = set()

        def walk(openids, seconds: float) -> None:
            """Each phone posts a batch a second by the entrance and the store; on a 401 (its token went
            with Redis's data) it signs in again, as the mini-program does, and posts the batch again."""
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                beat["n"] += 1
                wobble = beat["n"] % 3
                beacons = [{"uuid": "fda50693-a4e2-4fb1-afcf-c6eb07647825", "major": 1, "minor": minor,
                            "rssi": -60 - wobble, "accuracy": 1.0, "proximity": 1}
                           for minor in (venue.minors["entrance"], venue.minors["store"])]
                for openid in openids:
                    response = client.post("/api/v1/sightings", headers=phones[openid]["headers"],
                                           json={"beacons": beacons})
                    if response.status_code == 401:
                        phones[openid] = sign_in(openid)
                        signed_again.add(openid)
                        response = client.post("/api/v1/sightings", headers=phones[openid]["headers"],
                                               json={"beacons": beacons})
                    assert response.status_code == 202, response.get_json()
                time.sleep(1.0)

        def wait_for(model, member_ids, *where) -> dict[int, int]:
            deadline = time.monotonic() + 30
            while True:
                found = _counts(rt, model, member_ids, *where)
                if all(found.values()) or time.monotonic() > deadline:
                    return found
                time.sleep(0.3)

        dwelled = (ProximityEvent.store_id == venue.store, ProximityEvent.sale_item_id.is_(None))
        first, second = list(phones)[:3], list(phones)[3:]
        # (a) Redis restarted keeping its data (SHUTDOWN SAVE) while the first phones stand by the store.
        walk(first, DWELL_S / 2)
        redis_server.halt(save=True)
        redis_server.resume()
        # Long enough for the check-in: three readings of the store's beacon in its window, then three confirming
        # batches over 5 s (interior confirmation, docs/presence.md), about 8 s at a batch a second.
        walk(first, DWELL_S * 2.5)
        assert signed_again == set()  # the tokens came back with the data
        assert wait_for(Checkin, ids[:3]) == {m: 1 for m in ids[:3]}
        assert wait_for(ProximityEvent, ids[:3], *dwelled) == {m: 1 for m in ids[:3]}
        # (b) Redis restarted without its data: tokens, streams, the consumer group and leases all gone.
        redis_server.halt(save=False)
        redis_server.resume()
        walk(second, DWELL_S * 3)  # new arrivals after the loss: the worker must be reading again
        assert signed_again == set(second)
        assert wait_for(Checkin, ids[3:]) == {m: 1 for m in ids[3:]}
        assert wait_for(ProximityEvent, ids[3:], *dwelled) == {m: 1 for m in ids[3:]}
        if stays_through_the_loss:
            walk(first, DWELL_S * 2)  # the first phones, still by the store, sign in again and post on
            time.sleep(1.5)  # what the worker makes of it is written within a flush or two
        assert worker.poll() is None  # it resumed by itself: nobody restarted it
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(15)
        rt.close()
        redis_server.stop()
    assert signed_again == set(phones if stays_through_the_loss else second)
    assert _counts(rt, Checkin, ids) == {m: 1 for m in ids}  # one check-in each, whatever Redis forgot
    assert _counts(rt, ProximityEvent, ids, *dwelled) == {m: 1 for m in ids}
