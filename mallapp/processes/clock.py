"""The clock: the one APScheduler 3.x process that runs the mall's schedules.

``mallapp clock`` (Procfile ``clock``) runs :data:`JOBS`, a declarative table: each
job has a name, a trigger (cron in mall time, or an interval), the domain service it calls, and an
explicit misfire grace and coalescing (APScheduler's default grace of one second would silently
skip a run the process was too busy to start on time). ``mallapp jobs list`` and
``mallapp jobs run NAME`` are the operators' handles on the same table.

Safety, in three layers:

- every job's service is idempotent: it finds what is due from the database and marks it done
  in the transaction that does it (a message key, a ledger idempotency key, a status), so a run
  repeated, or resumed after a crash mid-run, does nothing twice;
- a run holds a lock in Redis (``clock:lock:<job>``, a token with a time to live), so a second
  clock started by mistake, or ``mallapp jobs run`` from a shell, skips a job already running
  instead of racing it;
- ``max_instances=1`` and ``coalesce=True``: runs missed while the process was down are folded
  into one, within the job's grace.

APScheduler's job store stays in memory: the table is the schedule, and nothing a run needs is
kept between runs but what the database holds. Each run's outcome is kept in Redis
(``clock:last:<job>``) for ``mallapp jobs list``.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from redis import Redis

from mallapp.domain import alerts, coupons, notifications, points, queueing, reservations, rewards
from mallapp.processes.runner import Process
from mallapp.runtime import Runtime

__all__ = ["JOBS", "Job", "RunResult", "build_scheduler", "find", "last_runs", "run_job"]

log = logging.getLogger("mallapp.clock")

# Release the lock only if it is still ours (it may have expired and been taken by another clock).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Job:
    """One line of the table: what runs, when, and how a late or doubled run is handled."""

    name: str
    summary: str
    run: Callable[[Runtime, datetime], int]  # the service call; returns how many things it did
    trigger: str  # "cron" (in mall time) or "interval"
    schedule: Mapping[str, Any]  # the trigger's fields: {"hour": 3, "minute": 10} or {"seconds": 30}
    misfire_grace_s: int  # a run this late still happens; later, it is skipped (and coalesced)
    lock_ttl_s: int  # longer than any run takes; a crashed clock's lock lapses after it
    coalesce: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.schedule.items())
        return f"{self.trigger}({fields})"


# --- the jobs: thin adapters from the runtime to the domain services ------------------------------

def _points_expiry(rt: Runtime, now: datetime) -> int:
    total = 0
    while True:  # a batch of members per transaction, so a crash loses at most one batch's work
        with rt.sessions.begin() as session:
            expired = points.expire_due(session, now, limit=500)
        total += expired
        if not expired:
            return total


def _birthday_gifts(rt: Runtime, now: datetime) -> int:
    total = 0
    while True:
        with rt.sessions.begin() as session:
            given = rewards.issue_birthday_gifts(session, rt.settings, now, limit=500)
        total += given
        if not given:
            return total


def _coupon_reminders(rt: Runtime, now: datetime) -> int:
    return coupons.remind_expiring(rt.sessions, rt.settings, rt.senders, now)


def _abandoned_deliveries(rt: Runtime, now: datetime) -> int:
    with rt.sessions.begin() as session:
        return notifications.settle_abandoned(session, now - timedelta(minutes=10))


def _beacon_health(rt: Runtime, now: datetime) -> int:
    with rt.sessions.begin() as session:
        swept = alerts.sweep(session, rt.settings, now)
    return swept.raised + swept.cleared


def _queue_lapses(rt: Runtime, now: datetime) -> int:
    return queueing.lapse_due(rt.sessions, rt.settings, rt.senders, now)


def _reservation_reminders(rt: Runtime, now: datetime) -> int:
    return reservations.remind_due(rt.sessions, rt.settings, rt.senders, now)


def _reservation_no_shows(rt: Runtime, now: datetime) -> int:
    return reservations.release_no_shows(rt.sessions, rt.settings, rt.senders, now)


JOBS: tuple[Job, ...] = (
    Job("points-expiry", "expire points lots past their expiry date (oldest lots first)", _points_expiry,
        "cron", {"hour": 3, "minute": 10}, misfire_grace_s=6 * 3600, lock_ttl_s=3600),
    Job("birthday-gifts", "credit this month's birthday gift points to members who have not had them",
        _birthday_gifts, "cron", {"hour": 0, "minute": 5}, misfire_grace_s=12 * 3600, lock_ttl_s=3600),
    Job("coupon-reminders", "remind members of unused coupons that expire within [deals] coupon_reminder_hours",
        _coupon_reminders, "cron", {"hour": "10,18", "minute": 0}, misfire_grace_s=3 * 3600, lock_ttl_s=1800),
    Job("queue-lapses", "lapse called queue tickets not seated within [queue] grace_s, and yesterday's leftovers",
        _queue_lapses, "interval", {"seconds": 15}, misfire_grace_s=60, lock_ttl_s=120),
    Job("reservation-reminders", "remind members of bookings starting within [reservations] reminder_lead_minutes",
        _reservation_reminders, "interval", {"minutes": 1}, misfire_grace_s=120, lock_ttl_s=300),
    Job("reservation-no-shows", "release bookings unconfirmed [reservations] no_show_grace_minutes after "
        "their start, and free their tables", _reservation_no_shows, "interval", {"minutes": 1},
        misfire_grace_s=120, lock_ttl_s=300),
    Job("beacon-health", "raise an ops alert for each beacon or gateway gone silent or low on battery; clear "
        "it when fixed", _beacon_health, "interval", {"minutes": 5}, misfire_grace_s=300, lock_ttl_s=300),
    Job("abandoned-deliveries", "settle sends a crash cut off (pending over 10 minutes) as unknown",
        _abandoned_deliveries, "interval", {"minutes": 5}, misfire_grace_s=300, lock_ttl_s=300),
)


def find(name: str) -> Job:
    for job in JOBS:
        if job.name == name:
            return job
    raise KeyError(name)


# --- running a job once ----------------------------------------------------------------------------

def lock_key(name: str) -> str:
    return f"clock:lock:{name}"


def last_key(name: str) -> str:
    return f"clock:last:{name}"


@dataclass(frozen=True)
class RunResult:
    job: str
    outcome: str  # done, skipped (another run holds the lock) or failed
    count: int
    started_at: datetime
    seconds: float
    error: str | None = None


def run_job(rt: Runtime, job: Job) -> RunResult:
    """Run ``job`` once now, unless another run of it holds the lock; record and return the outcome."""
    started, clock = rt.now(), time.perf_counter()
    token = secrets.token_hex(16)
    if not rt.redis.set(lock_key(job.name), token, nx=True, ex=job.lock_ttl_s):
        result = RunResult(job.name, "skipped", 0, started, 0.0)
        log.info("job %s skipped: another run holds its lock", job.name)
        return result
    try:
        count = job.run(rt, started)
    except Exception as exc:  # recorded and logged; the next run starts again from the database
        log.exception("job %s failed", job.name)
        result = RunResult(job.name, "failed", 0, started, time.perf_counter() - clock, f"{type(exc).__name__}: {exc}")
    else:
        result = RunResult(job.name, "done", count, started, time.perf_counter() - clock)
        log.info("job %s done: %d in %.2fs", job.name, count, result.seconds)
    finally:
        rt.redis.eval(_RELEASE, 1, lock_key(job.name), token)
    _record(rt.redis, result)
    return result


def _record(redis: Redis, result: RunResult) -> None:
    redis.set(last_key(result.job), json.dumps({
        "outcome": result.outcome, "count": result.count, "started_at": result.started_at.isoformat(),
        "seconds": round(result.seconds, 3), "error": result.error}))


def last_runs(redis: Redis) -> dict[str, dict[str, Any]]:
    """Each job's last recorded run (jobs never run are absent)."""
    out = {}
    for job in JOBS:
        raw = redis.get(last_key(job.name))
        if raw is not None:
            out[job.name] = json.loads(raw)
    return out


# --- the process -----------------------------------------------------------------------------------

def build_scheduler(rt: Runtime, jobs: tuple[Job, ...] = JOBS, *, background: bool = False) -> Any:
    """An APScheduler 3.x scheduler holding ``jobs``, cron triggers in the mall's time zone."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    kind = BackgroundScheduler if background else BlockingScheduler
    scheduler = kind(timezone=rt.settings.mall.tz, executors={"default": ThreadPoolExecutor(4)})
    for job in jobs:
        scheduler.add_job(run_job, job.trigger, args=(rt, job), id=job.name, name=job.summary,
                          misfire_grace_time=job.misfire_grace_s, coalesce=job.coalesce, max_instances=1,
                          **job.schedule, **job.options)
    return scheduler


def _run(rt: Runtime, _args: argparse.Namespace, stop: threading.Event) -> None:
    scheduler = build_scheduler(rt, background=True)
    log.info("clock running %d jobs", len(JOBS))
    scheduler.start()
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=False)


PROCESS = Process("clock", "Run the mall's schedules (one is enough; a second one skips whatever the first is "
                  "running).", _run)
