"""Each clock job, run in a fresh process (``python -m mallapp jobs run NAME``) with something due.

In production the reservation jobs failed every minute with ``NoReferencedTableError`` ('merchant_staff'):
the clock process never imported the staff model, and the tests passed because pytest imports every model.
So here the job runs where only what the clock itself imports is loaded, on real work: for each job a
builder prepares, through the domain services and the test runtime's clock set in the past, something due
by the real clock the subprocess runs on, and returns a check that it was done.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from factories import MIXC_TARIFF, PARK_APP_ID, PARK_CODE, PARK_SECRET, parked_car_for_pay
from sqlalchemy import select

from mallapp.adapters.carpark_open import OpenApiCarPark
from mallapp.adapters.parking_outside import ParkingOutside
from mallapp.devtools.carpark_emulator import CarParkEmulator
from mallapp.domain import (
    campaigns,
    coupons,
    deals,
    members,
    merchants,
    notifications,
    ops,
    points,
    queueing,
    reservation_admin,
    reservations,
    segments,
    sends,
    venue_admin,
)
from mallapp.domain.alerts import FleetAlert
from mallapp.domain.notifications import Delivery, Notification
from mallapp.domain.parking import carparks as parking_carparks
from mallapp.domain.parking import payments
from mallapp.domain.parking import sessions as parking_sessions
from mallapp.domain.parking.models import ParkingPayment, ParkingSession
from mallapp.domain.parking.tariff import parse_tariff
from mallapp.domain.queueing.models import QueueTicket
from mallapp.domain.reservation_admin import Band
from mallapp.domain.reservations import Reservation
from mallapp.domain.segments import MemberSnapshot, SegmentRun
from mallapp.processes.clock import JOBS
from mallapp.settings import DEMO_SETTINGS_FILE

Check = Callable[[], None]  # asserts, in the database, that the due thing was done
REPO = Path(__file__).resolve().parents[2]


# --- small builders over the domain services -------------------------------------------------------


def _member(rt, openid: str) -> int:
    with rt.sessions.begin() as s:
        return members.sign_in(s, openid=openid, unionid=None, now=rt.now())[0].id


def _store(rt, name: str) -> tuple[int, int]:
    """A merchant and its store: (merchant id, store id)."""
    with rt.sessions.begin() as s:
        merchant, _ = merchants.create(s, f"{name} Ltd", rt.now())
        store = venue_admin.create_store(s, name=name, floor=3, x=0, y=0, merchant_id=merchant.id, now=rt.now())
        return merchant.id, store.id


def _booking_at(rt, clock, starts_at: datetime) -> int:
    """A booking (made three hours before its start) of a slot starting at ``starts_at`` (whole minutes)."""
    clock.now = starts_at - timedelta(hours=3)  # slots are published and booked before they start
    merchant_id, store_id = _store(rt, "Noodle House")
    member_id = _member(rt, "o-diner")
    local = starts_at.astimezone(rt.settings.mall.tz)  # the slot's mall-local day and time, across midnight too
    with rt.sessions.begin() as s:
        published = reservation_admin.publish(s, rt.settings, merchant_id, store_id, first_day=local.date(),
                                              last_day=local.date(), times=[local.time()], duration_minutes=90,
                                              bands=[Band(min_party=1, max_party=4, tables=2)], now=rt.now())
        [slot] = published.slots
        assert slot.starts_at == starts_at
        booked = reservations.book(s, rt.settings, member_id, slot.id, 2, "r-1", rt.now())
        assert booked.reservation.reminded_at is None  # booked before the lead time: the reminder is still due
        return booked.reservation.id


def _whole_minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


# --- one scenario per job: prepare something due by ``now`` (the real clock), return its check ------


def points_expiry(rt, clock, now: datetime) -> Check:
    clock.now = now - timedelta(days=2 * 366)  # expires at the end of the year after: long past
    member_id = _member(rt, "o-saver")
    with rt.sessions.begin() as s:
        points.credit(s, rt.settings, member_id, 50, "adjustment", source_ref="t", idempotency_key="t:1",
                      now=rt.now())

    def check() -> None:
        with rt.sessions() as s:
            assert points.balance(s, member_id) == 0
    return check


def birthday_gifts(rt, clock, now: datetime) -> Check:
    member_id = _member(rt, "o-birthday")
    this_month = now.astimezone(rt.settings.mall.tz).month
    with rt.sessions.begin() as s:
        s.get(members.Member, member_id).birthday = date(1990, this_month, 1)

    def check() -> None:
        with rt.sessions() as s:
            assert points.balance(s, member_id) == rt.settings.birthday.gift_points
    return check


def coupon_reminders(rt, clock, now: datetime) -> Check:
    merchant_id, store_id = _store(rt, "Starlight Coffee")
    member_id = _member(rt, "o-coupon")
    ends_at = now + timedelta(hours=rt.settings.deals.coupon_reminder_hours / 2)
    with rt.sessions.begin() as s:
        deal = deals.create(s, merchant_id, title="Flat white 5 yuan off", store_id=store_id,
                            starts_at=now - timedelta(days=1), ends_at=ends_at, quota=10, per_member_limit=1,
                            benefit={"kind": "amount_off", "amount_fen": 500}, now=now)
        deal.status = "live"
        s.flush()
        coupon_id = coupons.claim(s, rt.settings, member_id, deal.id, now).coupon.id

    def check() -> None:
        with rt.sessions() as s:
            assert s.scalar(select(Notification.id).where(Notification.member_id == member_id,
                                                          Notification.key == coupons.reminder_key(coupon_id)))
    return check


def queue_lapses(rt, clock, now: datetime) -> Check:
    clock.now = now - timedelta(days=2)  # taken on an earlier mall-local day, and never called
    merchant_id, store_id = _store(rt, "Hotpot Corner")
    member_id = _member(rt, "o-queuer")
    with rt.sessions.begin() as s:
        queueing.set_open(s, rt.settings, merchant_id, store_id, True, None, rt.now())
        ticket_id = queueing.take(s, rt.settings, member_id, store_id, 2, rt.now()).ticket.id

    def check() -> None:
        with rt.sessions() as s:
            assert s.get(QueueTicket, ticket_id).status == "lapsed"
    return check


def reservation_reminders(rt, clock, now: datetime) -> Check:
    lead = timedelta(minutes=rt.settings.reservations.reminder_lead_minutes)
    reservation_id = _booking_at(rt, clock, _whole_minute(now + lead / 2))

    def check() -> None:
        with rt.sessions() as s:
            reservation = s.get(Reservation, reservation_id)
            assert reservation.reminded_at is not None
            assert s.scalar(select(Notification.id).where(
                Notification.key == reservations.reminder_key(reservation)))
    return check


def reservation_no_shows(rt, clock, now: datetime) -> Check:
    grace = timedelta(minutes=rt.settings.reservations.no_show_grace_minutes)
    reservation_id = _booking_at(rt, clock, _whole_minute(now - grace - timedelta(minutes=45)))

    def check() -> None:
        with rt.sessions() as s:
            assert s.get(Reservation, reservation_id).status == "no_show"
    return check


def beacon_health(rt, clock, now: datetime) -> Check:
    with rt.sessions.begin() as s:  # registered, and never heard
        gateway, _ = venue_admin.create_gateway(s, rt.secret, name="Entrance gateway", floor=1, x=1, y=1, now=now)
        beacon = venue_admin.create_beacon(s, rt.settings.beacons, uuid=rt.settings.beacons.uuids[0], major=1,
                                           minor=1, floor=1, x=0, y=0, measured_power=-59, label="entrance", now=now)
        subjects = {("gateway", gateway.id), ("beacon", beacon.id)}

    def check() -> None:
        with rt.sessions() as s:
            raised = set(s.execute(select(FleetAlert.subject, FleetAlert.subject_id)
                                   .where(FleetAlert.problem == "never_seen", FleetAlert.cleared_at.is_(None))))
            assert raised == subjects
    return check


def abandoned_deliveries(rt, clock, now: datetime) -> Check:
    clock.now = now - timedelta(minutes=20)
    member_id = _member(rt, "o-online")
    with rt.sessions.begin() as s:  # recorded for a live send, and the process died before sending
        notifications.record(s, rt.settings, member_id, notifications.Message(kind="deal", key="k", text=notifications.Text("T")),
                             rt.now(), online={member_id})
        notifications.take_outbox(s)  # as a crash between the commit and the send would lose it

    def check() -> None:
        with rt.sessions() as s:
            assert s.scalar(select(Delivery.outcome).where(Delivery.channel == "live")) == "unknown"
    return check


def campaigns_due(rt, clock, now: datetime) -> Check:
    clock.now = now - timedelta(minutes=10)
    _member(rt, "o-campaign")
    with rt.sessions.begin() as s:  # launched, scheduled to start a minute ago
        marketer = ops.create_user(s, "ops-marketing", "marketing", "correct-horse-battery-staple", rt.now()).id
        made = campaigns.create(s, rt.settings, marketer, name="Spring member day", audience={}, timing="at",
                                start_at=now - timedelta(minutes=1), now=rt.now(),
                                steps=[{"offer": {"kind": "message", "title": "春季会员日"}}])
        assert campaigns.launch(s, made.id, rt.now()).campaign.status == "scheduled"
        campaign_id = made.id

    def check() -> None:
        with rt.sessions() as s:
            assert s.get(campaigns.Campaign, campaign_id).status == "running"
        [(_id, fields)] = rt.redis.xrange(sends.STREAM)  # its fan-out, for the sends workers
        assert sends.Entry.from_fields(fields) == sends.Entry("fanout", "campaign", campaign_id)
    return check


def member_segments(rt, clock, now: datetime) -> Check:
    member_id = _member(rt, "o-segmented")

    def check() -> None:
        with rt.sessions() as s:
            run = s.scalar(select(SegmentRun).order_by(SegmentRun.id.desc()))
            assert (run.status, run.trigger, run.members) == ("done", "clock", 1)
            assert s.scalar(select(MemberSnapshot.lifecycle).where(MemberSnapshot.member_id == member_id)) == "new"
    return check


def member_segments_requested(rt, clock, now: datetime) -> Check:
    _member(rt, "o-segmented")
    with rt.sessions.begin() as s:
        run_id = segments.request(s, rt.settings, now, requested_by="ops-marketing")[0].id

    def check() -> None:
        with rt.sessions() as s:
            assert s.get(SegmentRun, run_id).status == "done"
    return check


def parking_stale_sessions(rt, clock, now: datetime) -> Check:
    clock.now = now - timedelta(hours=rt.settings.parking.stale_session_hours + 1)
    with rt.sessions.begin() as s:
        park = parking_carparks.create_car_park(s, code="P1", name="P1", vendor_park_code="P001", now=rt.now(),
                                                tariff_doc={"plans": {"small": {"bands": [
                                                    {"name": "all day", "start": "00:00", "end": "00:00",
                                                     "step_fen": 500}]}}})
        row, _ = parking_sessions.record_entry(s, park, plate="沪A12345", order_no="P001-1", entered_at=rt.now(),
                                               gate="IN-1", now=rt.now())
        session_id = row.id

    def check() -> None:
        with rt.sessions() as s:
            row = s.get(ParkingSession, session_id)
            assert (row.status, row.exit_kind) == ("closed_stale", "unknown")
    return check


def parking_reconcile(rt, clock, now: datetime) -> Check:
    """Yesterday's payment, on both sides; the car park is an emulator the subprocess reaches (check.env)."""
    from factories import parking_history

    from mallapp.devtools.carpark_emulator import CarParkEmulator
    from mallapp.domain.parking.models import ParkingReconciliation

    clock.now = now - timedelta(days=3)
    history = parking_history(rt)
    yesterday = rt.settings.mall.local_day(now) - timedelta(days=1)
    start, _ = rt.settings.mall.day_bounds(yesterday)
    stay = history.stay("沪A12345", start + timedelta(hours=9), start + timedelta(hours=11))
    history.payment(stay, cash_fen=500, at=start + timedelta(hours=10), order_id="CLOCK-1")
    park = CarParkEmulator("park-app-clock", "carpark-secret-clock", park_code=history.vendor_park_code).start()
    park.take_payment("CLOCK-1", 500, at=(start + timedelta(hours=10, seconds=20)).timestamp())

    def check() -> None:
        park.stop()
        with rt.sessions() as s:
            row = s.scalar(select(ParkingReconciliation).where(ParkingReconciliation.day == yesterday))
            assert (row.ours, row.theirs, row.mismatches) == (1, 1, [])
    check.env = {"MALL_CARPARK_API_BASE": park.base_url, "MALL_CARPARK_APP_ID": "park-app-clock",  # type: ignore[attr-defined]
                 "MALL_CARPARK_SECRET": "carpark-secret-clock"}
    return check


def parking_coupons_expiry(rt, clock, now: datetime) -> Check:
    from factories import parking_coupon_deal

    from mallapp.domain.parking import quota

    clock.now = now - timedelta(days=3)  # a deal that ended yesterday: its unused coupon has expired
    made = parking_coupon_deal(rt, value=2, quota_bought=5, days=2)
    member_id = _member(rt, "o-parking-coupon")
    with rt.sessions.begin() as s:
        coupons.claim(s, rt.settings, member_id, made.deal, rt.now())
        assert quota.balance(s, made.merchant).hours == 3

    def check() -> None:
        with rt.sessions() as s:
            assert quota.balance(s, made.merchant).hours == 5
            assert quota.check_invariants(s) == []
    return check


def parking_payments(rt, clock, now: datetime) -> Check:
    """A payment the car park did not answer (left paying): the job sends the same order id again."""
    clock.now = now - timedelta(minutes=2)
    emulator = CarParkEmulator(PARK_APP_ID, PARK_SECRET, park_code=PARK_CODE, tariff=parse_tariff(MIXC_TARIFF),
                               tz=rt.settings.mall.tz).start()
    rt._carparks[PARK_CODE] = OpenApiCarPark(emulator.base_url, PARK_APP_ID, PARK_SECRET, park_code=PARK_CODE,
                                             retries=0, clock=lambda: clock().timestamp())
    member_id = _member(rt, "o-parker")
    parked_car_for_pay(rt, emulator, "沪A12345", minutes=70, member_id=member_id, tier="vip")
    emulator.fail_next("bill/pay", status=503)
    made = payments.create(rt.sessions, rt.settings, ParkingOutside(rt.carpark, lambda: None),
                           payments.Request(plate="沪A12345", member_id=member_id, expected_cash_fen=0,
                                            idempotency_key="clock-parking-1"), now=rt.now())
    assert made["status"] == "paying"

    def check() -> None:
        try:
            with rt.sessions() as s:
                assert s.scalar(select(ParkingPayment.status)) == "paid"
            assert len(emulator.payments()) == 1
        finally:
            emulator.stop()
    check.env = {"MALL_CARPARK_API_BASE": emulator.base_url, "MALL_CARPARK_APP_ID": PARK_APP_ID,  # type: ignore[attr-defined]
                 "MALL_CARPARK_SECRET": PARK_SECRET}
    return check


SCENARIOS: dict[str, Callable[..., Check]] = {
    "points-expiry": points_expiry,
    "birthday-gifts": birthday_gifts,
    "coupon-reminders": coupon_reminders,
    "queue-lapses": queue_lapses,
    "reservation-reminders": reservation_reminders,
    "reservation-no-shows": reservation_no_shows,
    "beacon-health": beacon_health,
    "abandoned-deliveries": abandoned_deliveries,
    "campaigns": campaigns_due,
    "member-segments": member_segments,
    "member-segments-requested": member_segments_requested,
    "parking-stale-sessions": parking_stale_sessions,

    "parking-reconcile": parking_reconcile,

    "parking-coupons-expiry": parking_coupons_expiry,

    "parking-payments": parking_payments,
}


def test_every_clock_job_has_a_scenario():
    assert sorted(SCENARIOS) == sorted(job.name for job in JOBS), "a new clock job needs a scenario here"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_job_does_what_is_due_in_a_fresh_process(name, rt, clock, settings, emulator, tmp_path):
    now = datetime.now(UTC)
    check = SCENARIOS[name](rt, clock, now)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MALL_CONFIG": str(DEMO_SETTINGS_FILE),
        "MALL_DATABASE_URL": settings.database_url,
        "MALL_REDIS_URL": settings.redis_url,
        "MALL_VAR_DIR": str(tmp_path / "clock-var"),
        "MALL_SECRET_KEY": settings.secret_key,
        "MALL_WECHAT_APPID": settings.wechat.appid,
        "MALL_WECHAT_SECRET": settings.wechat.secret,
        "MALL_WECHAT_API_BASE": emulator.base_url,
        "MALL_LOG_FORMAT": "text",
        **getattr(check, "env", {}),  # a scenario's own services (the car-park emulator)

        **getattr(check, "env", {}),  # a scenario's own servers (the car-park emulator)
    }
    ran = subprocess.run([sys.executable, "-m", "mallapp", "jobs", "run", name], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    done = re.match(rf"{re.escape(name)}: done, (\d+) in ", ran.stdout)
    assert done and int(done[1]) >= 1, ran.stdout + ran.stderr
    check()
