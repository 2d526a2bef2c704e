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
- a run holds a lock in Redis (``clock:lock:<job>``, a token with a short time to live,
  :data:`LOCK_TTL_S`), so a second clock started by mistake, or ``mallapp jobs run`` from a shell,
  skips a job already running instead of racing it. A heartbeat thread renews the lock (a Lua
  compare-and-PEXPIRE) every third of its TTL while the run lasts, so a long run keeps it and a
  killed one lets it lapse within the TTL: the next run, scheduled or by hand, then finishes what
  the killed one left. If a renewal finds the lock gone (Redis lost it, or the process stalled
  longer than the TTL and another run took it), the run stops at its next batch boundary
  (:func:`still_ours`, checked between batches) and is recorded as ``lost``: what it left is found
  by the next run, and the services' idempotency keeps the overlap harmless meanwhile;
- ``max_instances=1`` and ``coalesce=True``: runs missed while the process was busy are folded
  into one, within the job's grace. APScheduler's job store is in memory, so it cannot know of a
  run missed while the clock was down: on start, :func:`missed` finds each cron job whose last
  finished run (``clock:done:<job>``) is older than its latest scheduled time within its grace,
  and the clock runs it once at once.

The table is the schedule, and nothing a run needs is kept between runs but what the database
holds. Each run's outcome is kept in Redis (``clock:last:<job>``) for ``mallapp jobs list``, and
the start of the last run that finished (``clock:done:<job>``) for the catch-up.
"""

from __future__ import annotations

import argparse
import contextvars
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

from mallapp.adapters.parking_outside import ParkingOutside
from mallapp.domain import (
    alerts,
    campaigns,
    coupons,
    member_reports,
    notifications,
    points,
    queueing,
    reservations,
    rewards,
    segments,
)
from mallapp.domain.parking import merchant_coupons as parking_coupons
from mallapp.domain.parking import payments as parking_payments
from mallapp.domain.parking import reconcile as parking_reconcile
from mallapp.domain.parking import sessions as parking_sessions
from mallapp.errors import ServiceUnavailable, UpstreamError
from mallapp.processes.runner import Process
from mallapp.runtime import Runtime
from mallapp.settings import Settings

__all__ = ["JOBS", "LOCK_TTL_S", "Job", "Lease", "RunResult", "build_scheduler", "find", "last_runs", "missed",
           "run_job", "still_ours"]

log = logging.getLogger("mallapp.clock")

# Release the lock only if it is still ours (it may have expired and been taken by another clock).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Extend the lock only if it is still ours; 0 when it is gone or another run holds it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# A run's lock lives this long unless renewed: a killed run's lock lapses within it.
LOCK_TTL_S: float = 30


@dataclass(frozen=True)
class Job:
    """One line of the table: what runs, when, and how a late or doubled run is handled."""

    name: str
    summary: str
    run: Callable[[Runtime, datetime], int]  # the service call; returns how many things it did
    trigger: str  # "cron" (in mall time) or "interval"
    schedule: Mapping[str, Any]  # the trigger's fields: {"hour": 3, "minute": 10} or {"seconds": 30}
    misfire_grace_s: int  # a run this late still happens; later, it is skipped (and coalesced)
    lock_ttl_s: float = LOCK_TTL_S  # renewed every third of it while the run lasts; a killed run's lapses after it
    coalesce: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)
    # A schedule read from the settings (e.g. [segments] run_at), overriding ``schedule`` when given.
    configured: Callable[[Settings], Mapping[str, Any]] | None = None

    def schedule_for(self, settings: Settings) -> Mapping[str, Any]:
        return self.configured(settings) if self.configured is not None else self.schedule

    def describe(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.schedule.items())
        return f"{self.trigger}({fields})"


# --- the jobs: thin adapters from the runtime to the domain services ------------------------------


def _points_expiry(rt: Runtime, now: datetime) -> int:
    total = 0
    while still_ours():  # a batch of members per transaction, so a crash loses at most one batch's work
        with rt.sessions.begin() as session:
            expired = points.expire_due(session, now, limit=500)
        total += expired
        if not expired:
            break
    return total


def _birthday_gifts(rt: Runtime, now: datetime) -> int:
    total = 0
    while still_ours():
        with rt.sessions.begin() as session:
            given = rewards.issue_birthday_gifts(session, rt.settings, now, limit=500)
        total += given
        if not given:
            break
    return total


def _coupon_reminders(rt: Runtime, now: datetime) -> int:
    return coupons.remind_expiring(rt.sessions, rt.settings, rt.senders, now, keep_going=still_ours)


def _abandoned_deliveries(rt: Runtime, now: datetime) -> int:
    with rt.sessions.begin() as session:
        return notifications.settle_abandoned(session, now - timedelta(minutes=10))


def _beacon_health(rt: Runtime, now: datetime) -> int:
    with rt.sessions.begin() as session:
        swept = alerts.sweep(session, rt.settings, now)
    return swept.raised + swept.cleared


def _queue_lapses(rt: Runtime, now: datetime) -> int:
    return queueing.lapse_due(rt.sessions, rt.settings, rt.senders, now, keep_going=still_ours)


def _reservation_reminders(rt: Runtime, now: datetime) -> int:
    return reservations.remind_due(rt.sessions, rt.settings, rt.senders, now, keep_going=still_ours)


def _reservation_no_shows(rt: Runtime, now: datetime) -> int:
    return reservations.release_no_shows(rt.sessions, rt.settings, rt.senders, now, keep_going=still_ours)


def _campaigns(rt: Runtime, now: datetime) -> int:
    return campaigns.tick(rt.sessions, rt.redis, rt.settings, now, keep_going=still_ours)


def _segments_run(rt: Runtime, now: datetime, run_id: int) -> int:
    """Run the segmentation into the run row ``run_id`` (one transaction); record a failure in the row."""
    try:
        with rt.sessions.begin() as session:
            row = segments.run(session, rt.settings, now, run_id=run_id)
            # The reports read the month's snapshots: precomputed in the same transaction (contract 4).
            member_reports.precompute(session, rt.settings, row.month, now)
            return row.members
    except Exception as exc:
        with rt.sessions.begin() as session:
            segments.fail(session, run_id, rt.now(), f"{type(exc).__name__}: {exc}")
        raise


def _member_segments(rt: Runtime, now: datetime) -> int:
    with rt.sessions.begin() as session:
        run_id = segments.start(session, rt.settings, now, trigger="clock").id
    return _segments_run(rt, now, run_id)


def _member_segments_requested(rt: Runtime, now: datetime) -> int:
    with rt.sessions.begin() as session:
        run_id = segments.claim_requested(session, now)
    return 0 if run_id is None else _segments_run(rt, now, run_id)


def _parking_stale_sessions(rt: Runtime, now: datetime) -> int:
    total = 0
    while still_ours():
        with rt.sessions.begin() as session:
            closed = parking_sessions.close_stale(session, hours=rt.settings.parking.stale_session_hours, now=now,
                                                  limit=500)
        total += closed
        if closed < 500:
            break
    return total


def _parking_coupons_expiry(rt: Runtime, now: datetime) -> int:
    return parking_coupons.return_expired(rt.sessions, now, keep_going=still_ours)


def _parking_payments(rt: Runtime, now: datetime) -> int:
    outside = ParkingOutside(rt.carpark, lambda: rt.wechatpay)
    return parking_payments.run_due(rt.sessions, rt.settings, outside, now)


def _segments_at(settings: Settings) -> Mapping[str, Any]:
    hour, minute = settings.segments.run_at.split(":")
    return {"hour": int(hour), "minute": int(minute)}


def _parking_reconcile(rt: Runtime, now: datetime) -> int:
    """Reconcile yesterday (and earlier days the car park was down for) for each active car park.

    A car park that cannot be reached is logged and left: the next run finds its days without a row.
    """
    mall = rt.settings.mall
    yesterday = mall.local_day(now) - timedelta(days=1)
    with rt.sessions.begin() as session:
        due = [(park.id, park.code, park.vendor_park_code,
                parking_reconcile.days_due(session, mall, park, yesterday))
               for park in parking_reconcile.active_car_parks(session)]
    done = 0
    for park_id, code, vendor_code, days in due:
        for day in days:
            if not still_ours():
                return done
            try:
                theirs = rt.carpark(vendor_code).payments(*parking_reconcile.window(mall, day))
            except (UpstreamError, ServiceUnavailable) as exc:
                log.warning("parking-reconcile: car park %s, day %s: %s (%s); retried next run", code, day,
                            exc.code, exc)
                break
            with rt.sessions.begin() as session:
                row = parking_reconcile.record(session, mall, park_id, day, theirs, rt.now())
                log.info("parking-reconcile: car park %s, day %s: %d ours, %d theirs, %d mismatches", code, day,
                         row.ours, row.theirs, len(row.mismatches))
            done += 1
    return done


def _parking_reconcile_at(settings: Settings) -> Mapping[str, Any]:
    hour, minute = settings.parking.reconcile_at.split(":")
    return {"hour": int(hour), "minute": int(minute)}


JOBS: tuple[Job, ...] = (
    Job("points-expiry", "expire points lots past their expiry date (oldest lots first)", _points_expiry,
        "cron", {"hour": 3, "minute": 10}, misfire_grace_s=6 * 3600),
    Job("birthday-gifts", "credit this month's birthday gift points to members who have not had them",
        _birthday_gifts, "cron", {"hour": 0, "minute": 5}, misfire_grace_s=12 * 3600),
    Job("coupon-reminders", "remind members of unused coupons that expire within [deals] coupon_reminder_hours",
        _coupon_reminders, "cron", {"hour": "10,18", "minute": 0}, misfire_grace_s=3 * 3600),
    Job("queue-lapses", "lapse called queue tickets not seated within [queue] grace_s, and yesterday's leftovers",
        _queue_lapses, "interval", {"seconds": 15}, misfire_grace_s=60),
    Job("reservation-reminders", "remind members of bookings starting within [reservations] reminder_lead_minutes",
        _reservation_reminders, "interval", {"minutes": 1}, misfire_grace_s=120),
    Job("reservation-no-shows", "release bookings unconfirmed [reservations] no_show_grace_minutes after "
        "their start, and free their tables", _reservation_no_shows, "interval", {"minutes": 1},
        misfire_grace_s=120),
    Job("beacon-health", "raise an ops alert for each beacon or gateway gone silent or low on battery; clear "
        "it when fixed", _beacon_health, "interval", {"minutes": 5}, misfire_grace_s=300),
    Job("abandoned-deliveries", "settle sends a crash cut off (pending over 10 minutes) as unknown",
        _abandoned_deliveries, "interval", {"minutes": 5}, misfire_grace_s=300),
    Job("campaigns", "start scheduled campaigns, draw members entering a triggered campaign's state or due to buy, "
        "queue due campaign steps and lost fan-outs on the sends stream, finish measured campaigns", _campaigns,
        "interval", {"minutes": 1}, misfire_grace_s=120),
    Job("member-segments", "compute every member's activity facts, segments, lifecycle and lifetime value for the "
        "month ([segments] run_at)", _member_segments, "cron", {"hour": 2, "minute": 30},
        misfire_grace_s=12 * 3600, configured=_segments_at),
    Job("member-segments-requested", "run the segmentation ops asked for (POST /api/v1/ops/segments/runs)",
        _member_segments_requested, "interval", {"seconds": 20}, misfire_grace_s=60),
    Job("parking-stale-sessions", "close parking sessions with no exit after [parking] stale_session_hours "
        "(closed_stale, exit_kind unknown)", _parking_stale_sessions, "interval", {"minutes": 15},
        misfire_grace_s=900),

    Job("parking-reconcile", "compare yesterday's parking payments with the car park's, per car park; retry days "
        "the car park was down for ([parking] reconcile_at)", _parking_reconcile, "cron", {"hour": 3, "minute": 10},
        # A run missed by more than this is not caught up: the next night's run reconciles the day it missed.
        misfire_grace_s=6 * 3600, configured=_parking_reconcile_at),

    Job("parking-coupons-expiry", "return to each merchant's parking quota what its parking coupons that expired "
        "unused had reserved (once per coupon)", _parking_coupons_expiry, "interval", {"minutes": 10},
        misfire_grace_s=600),

    Job("parking-payments", "settle or abandon parking payments left pending past [parking] pending_timeout_minutes "
        "(points and coupons given back), resend paying ones to the car park, retry refunds", _parking_payments,
        "interval", {"minutes": 1}, misfire_grace_s=120),
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


def done_key(name: str) -> str:
    return f"clock:done:{name}"


@dataclass(frozen=True)
class RunResult:
    job: str
    outcome: str  # done, skipped (another run holds the lock), lost (the lock was lost mid-run) or failed
    count: int
    started_at: datetime
    seconds: float
    error: str | None = None


class Lease:
    """A run's lock in Redis, renewed by a heartbeat thread every third of its TTL until released.

    :meth:`held` turns False for good once a renewal finds the lock gone or another run's, or
    when no renewal has succeeded for a whole TTL (Redis unreachable: the lock may have lapsed).
    """

    def __init__(self, redis: Redis, key: str, ttl_s: float) -> None:
        self.redis, self.key, self.ttl_ms = redis, key, max(1, int(ttl_s * 1000))
        self.token = secrets.token_hex(16)
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        if not self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms):
            return False
        self._thread = threading.Thread(target=self._beat, name=f"lease {self.key}", daemon=True)
        self._thread.start()
        return True

    def held(self) -> bool:
        return not self._lost.is_set()

    def renew(self) -> bool:
        """Extend the lock by its TTL if it is still ours; mark it lost otherwise."""
        if self.redis.eval(_RENEW, 1, self.key, self.token, self.ttl_ms) == 1:
            return True
        self._lost.set()
        return False

    def _beat(self) -> None:
        renewed = time.monotonic()
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                if self.renew():
                    renewed = time.monotonic()
                else:
                    log.warning("lock %s lost: this run stops at its next batch", self.key)
                    return
            except Exception:  # Redis unreachable for a moment: try again next beat, until the TTL is spent
                log.exception("lock %s not renewed", self.key)
                if time.monotonic() - renewed >= self.ttl_ms / 1000:
                    self._lost.set()
                    log.warning("lock %s not renewed for its whole TTL: this run stops at its next batch",
                                self.key)
                    return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.redis.eval(_RELEASE, 1, self.key, self.token)


_lease: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("clock_lease", default=None)


def still_ours() -> bool:
    """Whether the running job still holds its lock: the batch loops check it between batches."""
    lease = _lease.get()
    return lease is None or lease.held()


def run_job(rt: Runtime, job: Job) -> RunResult:
    """Run ``job`` once now, unless another run of it holds the lock; record and return the outcome."""
    started, clock = rt.now(), time.perf_counter()
    lease = Lease(rt.redis, lock_key(job.name), job.lock_ttl_s)
    if not lease.acquire():
        result = RunResult(job.name, "skipped", 0, started, 0.0)
        log.info("job %s skipped: another run holds its lock", job.name)
        return result
    reset = _lease.set(lease)
    try:
        count = job.run(rt, started)
    except Exception as exc:  # recorded and logged; the next run starts again from the database
        log.exception("job %s failed", job.name)
        result = RunResult(job.name, "failed", 0, started, time.perf_counter() - clock, f"{type(exc).__name__}: {exc}")
    else:
        if lease.held():
            result = RunResult(job.name, "done", count, started, time.perf_counter() - clock)
            log.info("job %s done: %d in %.2fs", job.name, count, result.seconds)
        else:  # stopped at a batch boundary: the next run finds what is left in the database
            result = RunResult(job.name, "lost", count, started, time.perf_counter() - clock,
                               "its lock was lost mid-run; stopped at a batch boundary")
            log.warning("job %s stopped after %d: its lock was lost", job.name, count)
    finally:
        _lease.reset(reset)
        lease.release()
    _record(rt.redis, result)
    return result


def _record(redis: Redis, result: RunResult) -> None:
    redis.set(last_key(result.job), json.dumps({
        "outcome": result.outcome, "count": result.count, "started_at": result.started_at.isoformat(),
        "seconds": round(result.seconds, 3), "error": result.error}))
    if result.outcome == "done":
        redis.set(done_key(result.job), result.started_at.isoformat())


def last_done(redis: Redis, name: str) -> datetime | None:
    """When the last run of ``name`` that finished started (None if none ever did)."""
    raw = redis.get(done_key(name))
    return None if raw is None else datetime.fromisoformat(raw.decode() if isinstance(raw, bytes) else raw)


def last_runs(redis: Redis) -> dict[str, dict[str, Any]]:
    """Each job's last recorded run (jobs never run are absent)."""
    out = {}
    for job in JOBS:
        raw = redis.get(last_key(job.name))
        if raw is not None:
            out[job.name] = json.loads(raw)
    return out


# --- the process -----------------------------------------------------------------------------------


def latest_due(rt: Runtime, job: Job, now: datetime) -> datetime | None:
    """The latest time ``job`` (a cron job) was scheduled at, at or before ``now`` and within its grace."""
    from apscheduler.triggers.cron import CronTrigger

    if job.trigger != "cron":
        return None
    trigger = CronTrigger(timezone=rt.settings.mall.tz, **job.schedule_for(rt.settings))
    now = now.astimezone(rt.settings.mall.tz)
    latest, at = None, trigger.get_next_fire_time(None, now - timedelta(seconds=job.misfire_grace_s))
    while at is not None and at <= now:
        latest, at = at, trigger.get_next_fire_time(at, at + timedelta(microseconds=1))
    return latest


def missed(rt: Runtime, jobs: tuple[Job, ...] = JOBS, now: datetime | None = None) -> list[Job]:
    """The cron jobs whose latest scheduled run, within its grace, came after their last finished run.

    A clock that was down at a job's time lost that run (the job store is in memory); these are
    the ones to run once on start. A job whose last run finished after its latest scheduled time
    (on this clock, another one, or by hand) is not missed, so the catch-up never doubles a run.
    """
    now = now or rt.now()
    out = []
    for job in jobs:
        due = latest_due(rt, job, now)
        if due is None:
            continue
        done = last_done(rt.redis, job.name)
        if done is None or done < due:
            out.append(job)
    return out


def build_scheduler(rt: Runtime, jobs: tuple[Job, ...] = JOBS, *, background: bool = False,
                    catch_up: bool = False) -> Any:
    """An APScheduler 3.x scheduler holding ``jobs``, cron triggers in the mall's time zone.

    With ``catch_up``, each job :func:`missed` while no clock ran is also run once as soon as the
    scheduler starts.
    """
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.blocking import BlockingScheduler

    kind = BackgroundScheduler if background else BlockingScheduler
    scheduler = kind(timezone=rt.settings.mall.tz, executors={"default": ThreadPoolExecutor(4)})
    for job in jobs:
        scheduler.add_job(run_job, job.trigger, args=(rt, job), id=job.name, name=job.summary,
                          misfire_grace_time=job.misfire_grace_s, coalesce=job.coalesce, max_instances=1,
                          **job.schedule_for(rt.settings), **job.options)
    if catch_up:
        for job in missed(rt, jobs):
            log.info("job %s missed its scheduled run while no clock ran: running it now", job.name)
            scheduler.add_job(run_job, "date", args=(rt, job), id=f"{job.name}:catch-up",
                              name=f"catch up: {job.summary}", misfire_grace_time=job.misfire_grace_s)
    return scheduler


def _run(rt: Runtime, _args: argparse.Namespace, stop: threading.Event) -> None:
    scheduler = build_scheduler(rt, background=True, catch_up=True)
    log.info("clock running %d jobs", len(JOBS))
    scheduler.start()
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=False)


PROCESS = Process("clock", "Run the mall's schedules (one is enough; a second one skips whatever the first is "
                  "running).", _run)
