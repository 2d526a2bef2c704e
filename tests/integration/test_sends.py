"""The sends stream under faults: consumers killed mid-batch, entries lost, and still nobody told twice or missed."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import cli_env, drain_sends, shop_with_rival
from sqlalchemy import func, select

from mallapp.domain import campaigns, members, notifications, ops, sends
from mallapp.domain.follows import Follow
from mallapp.domain.notifications import Delivery, Notification
from mallapp.processes.sends import Consumer

PG = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
MESSAGE = {"kind": "message", "title": "老朋友回来看看", "title_en": "We miss you"}


def add_members(rt, n: int, prefix: str) -> list[int]:
    with rt.sessions.begin() as s:
        return [members.sign_in(s, openid=f"{prefix}-{i}", unionid=None, now=rt.now())[0].id for i in range(n)]


def launch_campaign(rt, control_pct: int = 10) -> int:
    """A campaign to everyone, launched (its fan-out committed, not yet on the stream)."""
    with rt.sessions.begin() as s:
        marketer = ops.create_user(s, f"ops-m-{time.monotonic_ns()}", "marketing", "correct-horse-battery-staple",
                                   rt.now()).id
        made = campaigns.create(s, rt.settings, marketer, name="Win-back", audience={}, timing="now",
                                steps=[{"offer": MESSAGE}], control_pct=control_pct, now=rt.now())
        assert campaigns.launch(s, made.id, rt.now()).fanout
        return made.id


def told(rt, campaign_id: int) -> dict[int, tuple[int, int]]:
    """Member -> (inbox items, inbox deliveries) of the campaign."""
    with rt.sessions() as s:
        items = dict(s.execute(select(Notification.member_id, func.count())
                               .where(Notification.key.like(f"campaign:{campaign_id}:%"))
                               .group_by(Notification.member_id)).all())
        inboxed = dict(s.execute(select(Notification.member_id, func.count())
                                 .join(Delivery, Delivery.notification_id == Notification.id)
                                 .where(Notification.key.like(f"campaign:{campaign_id}:%"), Delivery.channel == "inbox")
                                 .group_by(Notification.member_id)).all())
    return {m: (items[m], inboxed.get(m, 0)) for m in items}


def treated(rt, campaign_id: int) -> set[int]:
    with rt.sessions() as s:
        return set(s.scalars(select(campaigns.Assignment.member_id).where(
            campaigns.Assignment.campaign_id == campaign_id, campaigns.Assignment.arm == "treated")))


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"campaigns": {"batch_size": 50}}


@PG
def test_a_consumer_dead_mid_batch_is_finished_by_another_and_nobody_is_told_twice(rt, clock):
    crowd = add_members(rt, 600, "o-crash")
    campaign_id = launch_campaign(rt)
    sends.enqueue_fanout(rt.redis, "campaign", campaign_id)
    doomed = Consumer(rt, "doomed", count=1, block_ms=0, claim_idle_ms=60_000)
    doomed.ensure_group()
    assert doomed.step(block_ms=0) == 1  # the fan-out: the audience drawn, its batches on the stream
    [(_stream, read)] = doomed.read([sends.STREAM])  # it reads a batch...
    doomed.handle(read[0][1])  # ...delivers and commits it, and dies before the acknowledgement
    doomed.count = 3
    [(_stream, more)] = doomed.read([sends.STREAM])  # and three more it never touched
    assert doomed.redis.xpending(sends.STREAM, sends.GROUP)["pending"] == 4

    time.sleep(0.3)
    rescuer = Consumer(rt, "rescuer", block_ms=0, claim_idle_ms=200)
    rescuer.drain()
    assert rt.redis.xpending(sends.STREAM, sends.GROUP)["pending"] == 0
    drawn = treated(rt, campaign_id)
    assert 480 <= len(drawn) < 600
    assert told(rt, campaign_id) == {m: (1, 1) for m in drawn}
    with rt.sessions() as s:
        arms = dict(s.execute(select(campaigns.Assignment.member_id, campaigns.Assignment.arm)
                              .where(campaigns.Assignment.campaign_id == campaign_id)).all())
    assert set(arms) == set(crowd)  # each member drawn once, into one arm


@PG
def test_a_batch_whose_transaction_fails_is_rolled_back_and_delivered_once_on_redelivery(rt, clock, monkeypatch):
    add_members(rt, 120, "o-fail")
    campaign_id = launch_campaign(rt, control_pct=0)
    sends.enqueue_fanout(rt.redis, "campaign", campaign_id)
    real = notifications.record_many
    failures = iter([True])

    def fail_once(*args: Any, **kwargs: Any) -> Any:
        recorded = real(*args, **kwargs)
        if next(failures, False):
            raise RuntimeError("the connection dropped mid-batch")
        return recorded

    monkeypatch.setattr(notifications, "record_many", fail_once)
    consumer = Consumer(rt, "flaky", block_ms=0, claim_idle_ms=200)
    consumer.drain()
    time.sleep(0.3)
    consumer.drain()  # claims the failed batch again
    assert told(rt, campaign_id) == {m: (1, 1) for m in treated(rt, campaign_id)}
    assert len(treated(rt, campaign_id)) == 120


def test_a_fan_out_whose_entry_was_lost_is_put_back_by_the_clock_job(rt, clock, client, merchant):
    crowd = add_members(rt, 30, "o-lost")
    campaign_id = launch_campaign(rt, control_pct=0)
    shop = shop_with_rival(rt, merchant)
    with rt.sessions.begin() as s:
        for member_id in crowd[:5]:
            s.add(Follow(member_id=member_id, store_id=shop["store"], created_at=rt.now()))
    deal = client.post("/api/v1/merchant/deals", headers=shop["headers"], json={
        "title": "Flat white, 5 yuan off", "store_id": shop["store"], "starts_at": clock.now.isoformat(),
        "ends_at": (clock.now + timedelta(days=3)).isoformat(), "quota": 50,
        "benefit": {"kind": "amount_off", "amount_fen": 500}}).get_json()["id"]
    client.post(f"/api/v1/merchant/deals/{deal}/submit", headers=shop["headers"])
    assert client.post(f"/api/v1/merchant/deals/{deal}/announce", headers=shop["headers"]).status_code == 201
    rt.redis.delete(sends.STREAM)  # Redis lost both entries (or was down right after the commits)
    campaigns.tick(rt.sessions, rt.redis, rt.settings, rt.now())
    drain_sends(rt)
    assert told(rt, campaign_id) == {}  # a fan-out is given time before it is thought lost
    clock.advance(minutes=6)
    campaigns.tick(rt.sessions, rt.redis, rt.settings, rt.now())
    drain_sends(rt)
    assert told(rt, campaign_id) == {m: (1, 1) for m in crowd}
    with rt.sessions() as s:
        assert notifications.announcement_figures(s, deal)[0] == 5
        assert sends.fanout_done(s, "campaign", campaign_id) and sends.fanout_done(s, "announcement", deal)
    clock.advance(minutes=6)
    entries = rt.redis.xlen(sends.STREAM)
    campaigns.tick(rt.sessions, rt.redis, rt.settings, rt.now())
    assert rt.redis.xlen(sends.STREAM) == entries  # nothing done is put back


def _sends_process(settings, tmp_path, name: str) -> subprocess.Popen:
    env = cli_env(tmp_path, MALL_DATABASE_URL=settings.database_url, MALL_REDIS_URL=settings.redis_url,
                  MALL_SECRET_KEY=settings.secret_key, MALL_WECHAT_APPID=settings.wechat.appid,
                  MALL_WECHAT_SECRET=settings.wechat.secret, MALL_WECHAT_API_BASE=settings.wechat.api_base,
                  MALL_CAMPAIGNS_BATCH_SIZE="20", MALL_CAMPAIGNS_QUIET_START="00:00",
                  MALL_CAMPAIGNS_QUIET_END="00:00")  # no quiet hours on the real clock
    return subprocess.Popen([sys.executable, "-m", "mallapp", "sends", "--consumer", name, "--count", "1",
                             "--claim-idle-ms", "1000", "--block-ms", "100"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"{name}.log", "w"), text=True)


@PG
def test_a_sends_process_killed_mid_stream_is_replaced_and_nobody_is_told_twice_or_missed(rt, settings, tmp_path):
    rt.clock = lambda: datetime.now(UTC)  # the processes run on the real clock
    add_members(rt, 1500, "o-kill")
    campaign_id = launch_campaign(rt)
    processes = [_sends_process(settings, tmp_path, "doomed"), _sends_process(settings, tmp_path, "steady")]
    try:
        sends.enqueue_fanout(rt.redis, "campaign", campaign_id)
        deadline = time.monotonic() + 60
        while len(told(rt, campaign_id)) < 200:  # well into the batches
            assert time.monotonic() < deadline, "the sends processes did not start delivering"
            time.sleep(0.05)
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait(timeout=10)
        processes.append(_sends_process(settings, tmp_path, "replacement"))
        deadline = time.monotonic() + 120
        while True:
            drawn = treated(rt, campaign_id)
            done = len(told(rt, campaign_id))
            pending = rt.redis.xpending(sends.STREAM, sends.GROUP)["pending"]
            if drawn and done == len(drawn) and not pending:
                break
            assert time.monotonic() < deadline, f"{done} of {len(drawn)} told, {pending} pending"
            time.sleep(0.2)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)
    assert told(rt, campaign_id) == {m: (1, 1) for m in treated(rt, campaign_id)}
    assert 1200 < len(treated(rt, campaign_id)) < 1500



@PG
def test_two_consumers_on_the_same_batches_at_once_tell_each_member_once(rt, clock):
    crowd = add_members(rt, 400, "o-race")
    campaign_id = launch_campaign(rt, control_pct=0)
    campaigns.fan_out(rt.sessions, rt.redis, rt.settings, campaign_id, rt.now())  # batches on the stream
    sends.enqueue_batches(rt.redis, "campaign", campaign_id, crowd, 50)  # and every member again
    consumers = [Consumer(rt, f"racer-{i}", count=1, block_ms=0) for i in range(2)]
    consumers[0].ensure_group()
    threads = [threading.Thread(target=c.drain) for c in consumers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert told(rt, campaign_id) == {m: (1, 1) for m in crowd}
    assert sum(c.reached for c in consumers) == len(crowd)
