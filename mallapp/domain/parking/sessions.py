"""Parking sessions, from the car park's entry and exit notifications (and the clock closing stale ones).

Only this module creates sessions. Every function is safe to call again with the same event: the car
park retries a notification until we answer, and may send one twice.

- :func:`record_entry` opens a session keyed by (car park, order number); the same order again
  returns it. An entry while the plate still has an open session closes that one (exit_kind
  ``unknown``): the car left without us hearing of it.
- :func:`record_exit` closes it: ``camera`` when the barrier opened on a settled bill, ``staff`` when
  staff let the car through (``unpaid_fen`` is what was still due, for ops). An exit of an order we
  never saw is recorded as a closed session; an exit after the clock closed the session as stale
  puts the real exit on it.
- :func:`close_stale` is the clock's: sessions with no exit after ``[parking] stale_session_hours``
  are ``closed_stale`` (exit_kind ``unknown``, ``exited_at`` the time the clock closed them).

The notification's nonce is remembered in Redis (:func:`claim_nonce`, key :func:`nonce_key`) so that
a replayed notification is refused, whatever its order number.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from redis import Redis
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mallapp.domain.parking import bindings, plates
from mallapp.domain.parking.models import CarPark, ParkingSession
from mallapp.errors import Conflict, InvalidInput


def nonce_key(app_id: str, nonce: str) -> str:
    """The Redis key remembering a car-park notification's nonce."""
    return f"parking:notify:nonce:{app_id}:{nonce}"


def claim_nonce(redis: Redis, app_id: str, nonce: str, ttl_s: int) -> bool:
    """Remember the nonce for ``ttl_s``; False when it was seen already (a replay)."""
    return bool(redis.set(nonce_key(app_id, nonce), "1", nx=True, ex=ttl_s))


def release_nonce(redis: Redis, app_id: str, nonce: str) -> None:
    """Forget a nonce whose notification we could not record, so the car park's retry is not a replay."""
    redis.delete(nonce_key(app_id, nonce))


def by_order(session: Session, car_park_id: int, order_no: str) -> ParkingSession | None:
    return session.scalar(select(ParkingSession).where(ParkingSession.car_park_id == car_park_id,
                                                       ParkingSession.order_no == order_no))


def open_for_plate(session: Session, car_park_id: int, plate: str) -> ParkingSession | None:
    return session.scalar(select(ParkingSession).where(ParkingSession.car_park_id == car_park_id,
                                                       ParkingSession.plate == plate,
                                                       ParkingSession.exited_at.is_(None)))


def open_for_plates(session: Session, plate_list: list[str]) -> list[ParkingSession]:
    """Open sessions of these plates in any car park, the latest entry first."""
    if not plate_list:
        return []
    return list(session.scalars(select(ParkingSession).where(ParkingSession.plate.in_(plate_list),
                                                             ParkingSession.exited_at.is_(None))
                                .order_by(ParkingSession.entered_at.desc())))


def _close_unknown(row: ParkingSession, at: datetime) -> None:
    row.exited_at = max(row.entered_at, at)
    row.status = "left"
    row.exit_kind = "unknown"


def _who(session: Session, plate: str) -> tuple[int | None, str]:
    binding = bindings.active_for_plate(session, plate)
    if binding is None:
        return None, plates.vehicle_type(plate)
    return binding.member_id, binding.vehicle_type


def _insert(session: Session, row: ParkingSession) -> ParkingSession | None:
    """Insert in a savepoint; None when a concurrent delivery of the same order got there first."""
    session.flush()  # what is pending goes before the savepoint, which then holds only this row
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        if row in session:
            session.expunge(row)
        return None
    return row


def record_entry(session: Session, car_park: CarPark, *, plate: str, order_no: str, entered_at: datetime,
                 gate: str | None, now: datetime) -> tuple[ParkingSession, bool]:
    """Open the session of an entry; returns (session, created)."""
    plate = plates.normalize(plate)
    found = by_order(session, car_park.id, order_no)
    if found is not None:
        return found, False
    stale = open_for_plate(session, car_park.id, plate)
    if stale is not None:
        _close_unknown(stale, entered_at)
        session.flush()
    member_id, vehicle_type = _who(session, plate)
    row = ParkingSession(car_park_id=car_park.id, plate=plate, vehicle_type=vehicle_type, order_no=order_no,
                         member_id=member_id, entered_at=entered_at, entry_gate=gate, status="parked",
                         created_at=now)
    inserted = _insert(session, row)
    if inserted is None:
        again = by_order(session, car_park.id, order_no)
        if again is None:  # the plate's open stay was taken by another order meanwhile: the car park retries
            raise Conflict("This plate's entry is being recorded by another notification.",
                               code="parking.notify_conflict")
        return again, False
    return inserted, True


def record_exit(session: Session, car_park: CarPark, *, plate: str, order_no: str, entered_at: datetime | None,
                exited_at: datetime, gate: str | None, gross_fen: int | None, payable_fen: int,
                opened_by: str, now: datetime) -> tuple[ParkingSession, bool]:
    """Close the session of an exit; returns (session, changed). The same exit again changes nothing."""
    plate = plates.normalize(plate)
    row = by_order(session, car_park.id, order_no)
    if row is not None and row.status == "left":
        return row, False
    if row is None:
        # An exit of a stay we never saw enter: record it whole, closing any other open stay of the plate.
        other = open_for_plate(session, car_park.id, plate)
        if other is not None:
            _close_unknown(other, exited_at)
            session.flush()
        member_id, vehicle_type = _who(session, plate)
        row = ParkingSession(car_park_id=car_park.id, plate=plate, vehicle_type=vehicle_type, order_no=order_no,
                             member_id=member_id, entered_at=entered_at or exited_at, entry_gate=None,
                             status="parked", created_at=now)
        if _insert(session, row) is None:
            row = by_order(session, car_park.id, order_no)
            if row is None:
                raise Conflict("This plate's exit is being recorded by another notification.",
                                   code="parking.notify_conflict")
            if row.status == "left":
                return row, False
    if exited_at < row.entered_at:
        raise InvalidInput("The exit is before the entry.", code="parking.times_out_of_order")
    staff = opened_by != "camera"
    row.exited_at = exited_at
    row.exit_gate = gate
    row.status = "left"
    row.exit_kind = "staff" if staff else "camera"
    row.gross_fen = gross_fen
    row.unpaid_fen = max(0, payable_fen) if staff else None
    session.flush()
    return row, True


def close_stale(session: Session, *, hours: int, now: datetime, limit: int = 500) -> int:
    """Close up to ``limit`` open sessions that entered more than ``hours`` ago; returns how many."""
    rows = session.scalars(select(ParkingSession).where(ParkingSession.exited_at.is_(None),
                                                        ParkingSession.entered_at < now - timedelta(hours=hours))
                           .order_by(ParkingSession.entered_at).limit(limit).with_for_update(skip_locked=True))
    count = 0
    for row in rows:
        row.exited_at = max(row.entered_at, now)
        row.status = "closed_stale"
        row.exit_kind = "unknown"
        count += 1
    return count
