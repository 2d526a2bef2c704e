"""The clock: its table of jobs, the lock that stops a second clock racing the first, and idempotent runs."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from mallapp.domain import coupons, deals, members, merchants, notifications, venue_admin
from mallapp.domain.notifications import Delivery, Notification
from mallapp.processes import clock as scheduler
from mallapp.processes.clock import JOBS, run_job
from mallapp.settings import DEMO_SETTINGS_FILE


@pytest.fixture
def coupon(rt) -> dict[str, Any]:
    """A member holding an unused coupon of a live deal that ends in 20 hours."""
    now = rt.now()
    with rt.sessions.begin() as s:
        merchant, _ = merchants.create(s, "Starlight Coffee", now)
        store = venue_admin.create_store(s, name="Starlight", floor=1, x=0, y=0, merchant_id=merchant.id, now=now)
        deal = deals.create(s, merchant.id, title="Flat white 5 yuan off", store_id=store.id,
                            starts_at=now - timedelta(days=1), ends_at=now + timedelta(hours=20), quota=10,
                            per_member_limit=1, benefit={"kind": "amount_off", "amount_fen": 500}, now=now)
        deal.status = "live"
        member, _ = members.sign_in(s, openid="o-ada", unionid=None, now=now)
        s.flush()
        held = coupons.claim(s, rt.settings, member.id, deal.id, now)
        return {"member": member.id, "deal": deal.id, "coupon": held.coupon.id}


def _reminders(rt, member_id: int) -> list[str]:
    with rt.sessions() as s:
        return list(s.scalars(select(Notification.key).where(Notification.member_id == member_id,
                                                              Notification.kind == "reminder")))


def test_every_job_has_an_explicit_misfire_grace_coalescing_and_one_instance_at_a_time(rt):
    assert len({job.name for job in JOBS}) == len(JOBS)
    clock = scheduler.build_scheduler(rt, background=True)
    planned = {job.id: job for job in clock.get_jobs()}
    assert set(planned) == {job.name for job in JOBS}
    for job in JOBS:
        assert job.misfire_grace_s > 1 and job.lock_ttl_s > 0
        got = planned[job.name]
        assert (got.misfire_grace_time, got.coalesce, got.max_instances) == (job.misfire_grace_s, True, 1)
        if job.trigger == "cron":
            assert str(got.trigger.timezone) == rt.settings.mall.timezone  # "03:10" is the mall's 03:10


def test_a_job_another_clock_is_running_is_skipped(rt):
    ran = []
    job = replace(scheduler.find("abandoned-deliveries"), run=lambda rt_, now: ran.append(now) or 1)
    rt.redis.set(scheduler.lock_key(job.name), "another clock's token", ex=60)
    assert run_job(rt, job).outcome == "skipped" and ran == []
    # The other clock finished: its lock is gone, and this run happens and is recorded.
    rt.redis.delete(scheduler.lock_key(job.name))
    assert (run_job(rt, job).outcome, len(ran)) == ("done", 1)
    assert scheduler.last_runs(rt.redis)[job.name]["outcome"] == "done"
    assert rt.redis.get(scheduler.lock_key(job.name)) is None  # released


def test_a_failing_job_is_recorded_and_releases_its_lock(rt):
    def boom(rt_, now):
        raise RuntimeError("the database went away")

    result = run_job(rt, replace(scheduler.find("abandoned-deliveries"), run=boom))
    assert (result.outcome, result.error) == ("failed", "RuntimeError: the database went away")
    assert rt.redis.get(scheduler.lock_key("abandoned-deliveries")) is None


def test_coupon_reminders_tell_each_member_once_however_often_the_job_runs(rt, coupon, clock):
    job = scheduler.find("coupon-reminders")
    clock.advance(hours=-10)  # 30 hours before the end: not yet due
    assert run_job(rt, job).count == 0
    clock.advance(hours=10)
    assert (run_job(rt, job).count, run_job(rt, job).count) == (1, 0)
    assert _reminders(rt, coupon["member"]) == [coupons.reminder_key(coupon["coupon"])]


def test_a_reminder_run_that_crashed_after_recording_does_not_remind_again(rt, coupon, monkeypatch):
    job = scheduler.find("coupon-reminders")

    def crash(*args, **kwargs):
        raise SystemExit("the clock was killed after the commit, before sending")

    with monkeypatch.context() as patched:
        patched.setattr(notifications, "take_outbox", crash)  # the process dies right after the commit
        with pytest.raises(SystemExit):
            run_job(rt, job)
    assert run_job(rt, job).count == 0  # the reminder was recorded: it is not recorded or sent twice
    assert len(_reminders(rt, coupon["member"])) == 1


def test_points_expiry_and_birthday_gifts_run_twice_change_nothing_the_second_time(rt, clock):
    from mallapp.domain import points

    now = rt.now()
    with rt.sessions.begin() as s:
        member, _ = members.sign_in(s, openid="o-bo", unionid=None, now=now)
        member.birthday = now.astimezone(rt.settings.mall.tz).date().replace(year=1990)
        points.credit(s, rt.settings, member.id, 50, "adjustment", source_ref="t", idempotency_key="t:1", now=now)
        member_id = member.id
    assert run_job(rt, scheduler.find("birthday-gifts")).count == 1
    assert run_job(rt, scheduler.find("birthday-gifts")).count == 0
    clock.advance(days=3 * 366)  # every lot has expired
    first = run_job(rt, scheduler.find("points-expiry")).count
    assert first >= 1 and run_job(rt, scheduler.find("points-expiry")).count == 0
    with rt.sessions() as s:
        assert points.balance(s, member_id) == 0


def test_abandoned_deliveries_are_settled_unknown_by_the_clock(rt, coupon, clock):
    member_id = coupon["member"]
    with rt.sessions.begin() as s:  # recorded for a live send, and the process died before sending
        notifications.record(s, rt.settings, member_id, notifications.Message(kind="deal", key="k", text=notifications.Text("T")),
                             rt.now(), online={member_id})
        notifications.take_outbox(s)  # as a crash between the commit and the send would lose it
    job = scheduler.find("abandoned-deliveries")
    assert run_job(rt, job).count == 0  # too recent: it may still be on its way
    clock.advance(minutes=11)
    assert (run_job(rt, job).count, run_job(rt, job).count) == (1, 0)
    with rt.sessions() as s:
        assert s.scalar(select(Delivery.outcome).where(Delivery.channel == "live")) == "unknown"


def test_two_clocks_running_the_same_jobs_double_nothing(rt, coupon):
    # Two schedulers (a second clock started by mistake) running the reminder job every second.
    fast = (replace(scheduler.find("coupon-reminders"), trigger="interval", schedule={"seconds": 1}),)
    clocks = [scheduler.build_scheduler(rt, fast, background=True) for _ in range(2)]
    for clock in clocks:
        clock.start()
    try:
        deadline = time.monotonic() + 20
        while scheduler.last_runs(rt.redis).get("coupon-reminders", {}).get("count") != 0:
            assert time.monotonic() < deadline, "the clocks did not run the job"
            time.sleep(0.1)
    finally:
        for clock in clocks:
            clock.shutdown(wait=True)
    assert len(_reminders(rt, coupon["member"])) == 1


def test_jobs_list_and_run_from_the_command_line(tmp_path, settings):
    env = {"MALL_DATABASE_URL": settings.database_url, "MALL_REDIS_URL": settings.redis_url,
           "MALL_VAR_DIR": str(tmp_path), "MALL_LOG_FORMAT": "text", "PATH": "/usr/bin:/bin",
           "MALL_CONFIG": str(DEMO_SETTINGS_FILE)}
    mallapp = [sys.executable, "-m", "mallapp.cli"]
    ran = subprocess.run([*mallapp, "jobs", "run", "abandoned-deliveries"], env=env, capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout.startswith("abandoned-deliveries: done, 0 in"), ran.stderr
    listed = subprocess.run([*mallapp, "jobs", "list"], env=env, capture_output=True, text=True, check=True)
    for job in JOBS:
        assert job.name in listed.stdout
    assert "last run: done" in listed.stdout and "last run: never" in listed.stdout
    unknown = subprocess.run([*mallapp, "jobs", "run", "no-such-job"], env=env, capture_output=True, text=True)
    assert unknown.returncode != 0 and "the jobs are: points-expiry" in unknown.stderr


def test_beacon_health_raises_each_problem_once_and_clears_it_when_fixed(rt, client, ops_viewer, clock, venue):
    from mallapp.domain.venue import BeaconStatus, Gateway

    # The venue: three beacons and a gateway, none heard yet.
    job = scheduler.find("beacon-health")
    assert run_job(rt, job).count == 4 and run_job(rt, job).count == 0  # raised once, however often it runs
    listed = client.get("/api/v1/ops/alerts", headers=ops_viewer["headers"]).get_json()["alerts"]
    assert sorted((a["subject"], a["problem"]) for a in listed) == [("beacon", "never_seen")] * 3 + [
        ("gateway", "never_seen")]

    # The entrance beacon is heard, with a weak battery; the gateway sends a batch.
    with rt.sessions.begin() as s:
        s.add(BeaconStatus(beacon_id=venue.beacons["entrance"], last_seen_at=clock.now, battery_mv=2000))
        s.get(Gateway, venue.gateway).last_seen_at = clock.now
    assert run_job(rt, job).count == 3  # two cleared (beacon and gateway never_seen), one raised (battery)
    open_now = client.get("/api/v1/ops/alerts", headers=ops_viewer["headers"]).get_json()["alerts"]
    assert sorted((a["subject_id"], a["problem"]) for a in open_now if a["subject"] == "beacon") == sorted(
        [(venue.beacons["entrance"], "battery_low"), (venue.beacons["store"], "never_seen"),
         (venue.beacons["item"], "never_seen")])
    everything = client.get("/api/v1/ops/alerts?include_cleared=true", headers=ops_viewer["headers"]).get_json()
    assert sum(a["cleared_at"] is not None for a in everything["alerts"]) == 2
    # The same problem coming back after being cleared is a new alert.
    clock.advance(hours=2)  # unheard again for longer than silent_after_s
    assert run_job(rt, job).count >= 2
    assert client.get("/api/v1/ops/alerts", headers={}).status_code == 401
    bad = client.get("/api/v1/ops/alerts?include_cleared=perhaps", headers=ops_viewer["headers"])
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "request.invalid_query"
