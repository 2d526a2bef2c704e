"""The clock after a crash: short locks renewed while a run lives, resumed runs, and the catch-up on start.

A run killed mid-way used to leave its lock for up to an hour, so the restarted clock and
``mallapp jobs run`` both skipped the rest of that run. Now a lock lives a few seconds unless its
run renews it, the next run finishes what the killed one left, and a clock that was down at a
job's time runs it once on start, within its grace, and never twice.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from mallapp.domain import coupons, deals, members, merchants, venue_admin
from mallapp.domain.notifications import Notification
from mallapp.processes import clock as scheduler
from mallapp.processes.clock import JOBS, LOCK_TTL_S, run_job
from mallapp.settings import DEMO_SETTINGS_FILE

# Lock mechanics, the command line and the catch-up: one database is enough (the killed run resumes on both).
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _coupons(rt, n: int) -> list[int]:
    """``n`` members, each holding an unused coupon of a live deal that ends in 20 hours; their ids."""
    now = rt.now()
    with rt.sessions.begin() as s:
        merchant, _ = merchants.create(s, "Starlight Coffee", now)
        store = venue_admin.create_store(s, name="Starlight", floor=1, x=0, y=0, merchant_id=merchant.id, now=now)
        deal = deals.create(s, merchant.id, title="Flat white 5 yuan off", store_id=store.id,
                            starts_at=now - timedelta(days=1), ends_at=now + timedelta(hours=20), quota=n,
                            per_member_limit=1, benefit={"kind": "amount_off", "amount_fen": 500}, now=now)
        deal.status = "live"
        ids = []
        for i in range(n):
            member, _ = members.sign_in(s, openid=f"o-shopper-{i}", unionid=None, now=now)
            s.flush()
            coupons.claim(s, rt.settings, member.id, deal.id, now)
            ids.append(member.id)
        return ids


def _reminded(rt) -> dict[int, int]:
    """Reminders per member."""
    with rt.sessions() as s:
        return dict(s.execute(select(Notification.member_id, func.count()).where(Notification.kind == "reminder")
                              .group_by(Notification.member_id)).all())


def _wait(predicate, seconds: float = 15, what: str = "the condition") -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_every_job_lock_is_short():
    # A killed run's lock lapses within this; a live run renews it every third of it.
    assert LOCK_TTL_S <= 30 and all(0 < job.lock_ttl_s <= LOCK_TTL_S for job in JOBS)


def test_a_run_killed_mid_way_is_finished_by_the_next_one_after_its_short_lock_lapses(rt):
    shoppers = _coupons(rt, 7)
    job = replace(scheduler.find("coupon-reminders"), lock_ttl_s=1)
    # The killed run: it took the lock (short TTL, never renewed again: the process is dead) and
    # committed its first batch of reminders, then died.
    assert rt.redis.set(scheduler.lock_key(job.name), "the dead run's token", nx=True, px=1000)
    batches = iter([True, False])
    assert coupons.remind_expiring(rt.sessions, rt.settings, rt.senders, rt.now(), batch=3,
                                   keep_going=lambda: next(batches)) == 3
    assert run_job(rt, job).outcome == "skipped"  # the restarted clock, while the dead run's lock lives
    _wait(lambda: rt.redis.get(scheduler.lock_key(job.name)) is None, 5, "the dead run's lock to lapse")
    resumed = run_job(rt, job)
    assert (resumed.outcome, resumed.count) == ("done", 4)  # the rest, and only the rest
    assert _reminded(rt) == {member: 1 for member in shoppers}
    assert run_job(rt, job).count == 0


@sqlite_only
def test_a_long_run_keeps_its_lock_so_a_second_clock_skips_it(rt):
    inside, finish = threading.Event(), threading.Event()
    seen: list[bool] = []

    def long_run(rt_, now):
        inside.set()
        finish.wait(10)
        seen.append(scheduler.still_ours())
        return 1

    job = replace(scheduler.find("abandoned-deliveries"), run=long_run, lock_ttl_s=0.6)
    results = []
    first = threading.Thread(target=lambda: results.append(run_job(rt, job)))
    first.start()
    assert inside.wait(10)
    try:
        for _ in range(4):  # well past the TTL: the heartbeat keeps extending it
            time.sleep(0.5)
            assert 0 < rt.redis.pttl(scheduler.lock_key(job.name)) <= 600
            assert run_job(rt, job).outcome == "skipped"  # a second clock, or a shell
    finally:
        finish.set()
        first.join(10)
    assert [r.outcome for r in results] == ["done"] and seen == [True]
    assert rt.redis.get(scheduler.lock_key(job.name)) is None  # released when the run ended
    assert scheduler.last_runs(rt.redis)[job.name]["outcome"] == "done"


@sqlite_only
def test_a_run_that_loses_its_lock_stops_at_the_next_batch_and_leaves_the_other_runs_lock(rt):
    batches: list[int] = []

    def batch_loop(rt_, now):
        while scheduler.still_ours() and len(batches) < 100:
            batches.append(1)
            if len(batches) == 2:  # the lock lapsed (a stalled process) and another clock took it
                rt.redis.set(scheduler.lock_key("abandoned-deliveries"), "another clock's token", px=5000)
            time.sleep(0.1)
        return len(batches)

    job = replace(scheduler.find("abandoned-deliveries"), run=batch_loop, lock_ttl_s=0.6)
    result = run_job(rt, job)
    assert result.outcome == "lost" and len(batches) < 10  # stopped within a beat or two, not after 100
    assert rt.redis.get(scheduler.lock_key(job.name)) == b"another clock's token"  # not released by us
    assert scheduler.last_done(rt.redis, job.name) is None  # not a finished run: a catch-up would run it


@sqlite_only
def test_jobs_run_after_a_crash_is_refused_only_while_the_short_lock_lives(tmp_path, settings, rt):
    _coupons(rt, 2)
    env = {"MALL_DATABASE_URL": settings.database_url, "MALL_REDIS_URL": settings.redis_url,
           "MALL_VAR_DIR": str(tmp_path), "MALL_LOG_FORMAT": "text", "PATH": "/usr/bin:/bin",
           "MALL_CONFIG": str(DEMO_SETTINGS_FILE)}
    command = [sys.executable, "-m", "mallapp.cli", "jobs", "run", "coupon-reminders"]
    # A clock killed mid-run: its lock, as it took it, with the job's own (short) TTL.
    key = scheduler.lock_key("coupon-reminders")
    rt.redis.set(key, "the dead run's token", px=int(scheduler.find("coupon-reminders").lock_ttl_s * 1000))
    refused = subprocess.run(command, env=env, capture_output=True, text=True)
    assert refused.returncode == 0 and refused.stdout.startswith("coupon-reminders: skipped"), refused.stderr
    lapses_in = int(refused.stdout.split("lapses in ")[1].split("s")[0])
    assert 0 <= lapses_in <= 30
    rt.redis.pexpire(key, 100)  # those seconds pass; nobody renews a dead run's lock
    _wait(lambda: rt.redis.get(key) is None, 5, "the lock to lapse")
    ran = subprocess.run(command, env=env, capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout.startswith("coupon-reminders: done, 0 in"), ran.stderr


def _mall(rt, day: int, hh: int, mm: int) -> datetime:
    return datetime(2026, 3, day, hh, mm, tzinfo=rt.settings.mall.tz)


@sqlite_only
def test_catch_up_finds_a_cron_run_missed_within_its_grace_and_not_one_done_since(rt, clock):
    coupon_reminders, birthday_gifts = scheduler.find("coupon-reminders"), scheduler.find("birthday-gifts")

    def missed_at(at: datetime) -> set[str]:
        clock.now = at.astimezone(UTC)
        return {job.name for job in scheduler.missed(rt, JOBS)}

    # Never run: the clock was down at 10:00; at 11:30 the reminders (grace 3 h), the gifts of
    # 00:05 and the member segments of 02:30 (grace 12 h) are due once; points expiry's 03:10 is past
    # its 6 h grace; interval jobs run soon anyway.
    assert missed_at(_mall(rt, 10, 11, 30)) == {"coupon-reminders", "birthday-gifts", "member-segments"}
    rt.redis.set(scheduler.done_key("member-segments"), _mall(rt, 10, 2, 30).isoformat())
    assert scheduler.latest_due(rt, coupon_reminders, rt.now()) == _mall(rt, 10, 10, 0)
    # Last run yesterday at 18:00: 10:00 was still missed.
    rt.redis.set(scheduler.done_key(coupon_reminders.name), _mall(rt, 9, 18, 0).isoformat())
    rt.redis.set(scheduler.done_key(birthday_gifts.name), _mall(rt, 10, 0, 5).isoformat())
    assert missed_at(_mall(rt, 10, 11, 30)) == {"coupon-reminders"}
    assert missed_at(_mall(rt, 10, 13, 30)) == set()  # 10:00 is now past its 3 h grace
    # The 10:00 run happened (on another clock, or by hand): nothing to catch up.
    rt.redis.set(scheduler.done_key(coupon_reminders.name), _mall(rt, 10, 10, 0).isoformat())
    assert missed_at(_mall(rt, 10, 11, 30)) == set()
    assert missed_at(_mall(rt, 10, 18, 20)) == {"coupon-reminders"}  # and 18:00 is the next one


@sqlite_only
def test_a_clock_started_after_a_missed_run_runs_it_once_and_a_restart_does_not_run_it_again(rt, clock):
    shoppers = _coupons(rt, 3)
    rt.redis.set(scheduler.done_key("coupon-reminders"), _mall(rt, 9, 18, 0).isoformat())
    clock.now = _mall(rt, 10, 11, 0).astimezone(UTC)  # the clock was down at 10:00
    jobs = (scheduler.find("coupon-reminders"), scheduler.find("points-expiry"))
    started = scheduler.build_scheduler(rt, jobs, background=True, catch_up=True)
    assert {job.id for job in started.get_jobs()} == {"coupon-reminders", "points-expiry",
                                                      "coupon-reminders:catch-up"}
    started.start()
    try:
        _wait(lambda: "coupon-reminders" in scheduler.last_runs(rt.redis), 15, "the catch-up run")
    finally:
        started.shutdown(wait=True)
    assert scheduler.last_runs(rt.redis)["coupon-reminders"]["outcome"] == "done"
    assert "points-expiry" not in scheduler.last_runs(rt.redis)  # its 03:10 was past its grace
    assert _reminded(rt) == {member: 1 for member in shoppers}
    assert scheduler.last_done(rt.redis, "coupon-reminders") == _mall(rt, 10, 11, 0)

    # The clock restarts a minute later: the catch-up was recorded, so it is not run again.
    clock.advance(minutes=1)
    again = scheduler.build_scheduler(rt, jobs, background=True, catch_up=True)
    assert {job.id for job in again.get_jobs()} == {"coupon-reminders", "points-expiry"}
    assert scheduler.missed(rt, jobs) == []
