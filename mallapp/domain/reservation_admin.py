"""The restaurant's side of reservations: publishing slots, the day's bookings, arrivals and cancellations.

A merchant reaches only its own stores, slots and bookings; anything else is not found. Slots are
published as a pattern (days, weekdays, start times, bands of party sizes with their tables) and
materialised into one :class:`~mallapp.domain.reservations.Slot` per start time and band; publishing the
same pattern again updates those slots instead of adding more.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from mallapp.db import get_or_404, id_in_range
from mallapp.domain import notifications
from mallapp.domain.members import Member
from mallapp.domain.notifications import Senders
from mallapp.domain.reservations import Reservation, Slot, give_back_table, message
from mallapp.domain.venue import Store, store_name
from mallapp.errors import Conflict, InvalidInput, NotFound, RuleViolation
from mallapp.settings import Settings

MAX_DAYS = 92  # a season of weekly pattern in one publish
MAX_SLOTS = 3000  # slots one publish may create or update


@dataclass(frozen=True)
class Band:
    """Tables for parties of ``min_party`` to ``max_party`` people."""

    min_party: int
    max_party: int
    tables: int


@dataclass(frozen=True)
class Published:
    created: int
    updated: int
    skipped_past: int  # start times already past, not published
    slots: list[Slot]


def own_store(session: Session, merchant_id: int, store_id: int, *, lock: bool = False) -> Store:
    return get_or_404(session, Store, store_id, code="store.not_found", what="store", lock=lock,
                      accept=lambda store: store.merchant_id == merchant_id)


def _check_bands(settings: Settings, bands: Sequence[Band]) -> list[Band]:
    ordered = sorted(bands, key=lambda b: b.min_party)
    for band in ordered:
        if not 1 <= band.min_party <= band.max_party <= settings.reservations.max_party or band.tables < 0:
            raise InvalidInput(f"a band is 1 <= min_party <= max_party <= {settings.reservations.max_party} "
                               "with tables >= 0", code="reservation.invalid_bands")
    if any(a.max_party >= b.min_party for a, b in zip(ordered, ordered[1:], strict=False)):
        raise InvalidInput("the bands' party sizes must not overlap", code="reservation.invalid_bands")
    return ordered


def publish(session: Session, settings: Settings, merchant_id: int, store_id: int, *, first_day: date,
            last_day: date, times: Sequence[time], duration_minutes: int, bands: Sequence[Band], now: datetime,
            weekdays: Collection[int] = range(1, 8)) -> Published:
    """Create or update the store's slots: each start time on each chosen day (ISO weekdays), per band."""
    # The store's row serializes its publishes: two never insert the same slot.
    own_store(session, merchant_id, store_id, lock=True)
    if not first_day <= last_day < first_day + timedelta(days=MAX_DAYS):
        raise InvalidInput(f"last_day is on or after first_day, at most {MAX_DAYS} days on",
                           code="reservation.invalid_range")
    ordered = _check_bands(settings, bands)
    tz = settings.mall.tz
    days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
    starts = sorted({datetime.combine(d, t, tzinfo=tz).astimezone(UTC) for d in days if d.isoweekday() in weekdays
                     for t in times})
    future = [s for s in starts if s > now]
    if len(future) * len(ordered) > MAX_SLOTS:
        raise InvalidInput(f"one publish makes at most {MAX_SLOTS} slots", code="reservation.too_many_slots")
    existing: dict[tuple[datetime, int], Slot] = {}
    if future:
        # Locked in id order, like every path that changes slots.
        existing = {(s.starts_at, s.min_party): s for s in session.scalars(
            select(Slot).where(Slot.store_id == store_id, Slot.starts_at >= future[0], Slot.starts_at <= future[-1])
            .order_by(Slot.id).with_for_update().execution_options(populate_existing=True))}
    created = updated = 0
    slots = []
    for starts_at in future:
        for band in ordered:
            slot = existing.get((starts_at, band.min_party))
            if slot is None:
                slot = Slot(store_id=store_id, starts_at=starts_at, duration_minutes=duration_minutes,
                            min_party=band.min_party, max_party=band.max_party, capacity=band.tables, booked=0,
                            open=True, created_at=now)
                session.add(slot)
                created += 1
            else:
                _reshape(slot, band, duration_minutes)
                updated += 1
            slots.append(slot)
    session.flush()
    return Published(created, updated, len(starts) - len(future), slots)


def _reshape(slot: Slot, band: Band, duration_minutes: int) -> None:
    if slot.booked and (slot.duration_minutes, slot.max_party) != (duration_minutes, band.max_party):
        raise Conflict("a slot with bookings keeps its duration and party sizes; publish its tables only",
                       code="reservation.slot_in_use", details={"slot_id": slot.id})
    if band.tables < slot.booked:
        raise RuleViolation("a slot cannot have fewer tables than it has bookings",
                            code="reservation.capacity_below_booked", details={"slot_id": slot.id, "booked": slot.booked})
    slot.duration_minutes, slot.max_party, slot.capacity, slot.open = duration_minutes, band.max_party, band.tables, True


def update_slot(session: Session, merchant_id: int, slot_id: int, *, capacity: int | None = None,
                open: bool | None = None) -> Slot:
    """Change a slot's tables (never below its bookings) or close it to new bookings (held ones stay)."""
    slot = session.scalar(select(Slot).join(Store, Store.id == Slot.store_id)
                          .where(Slot.id == slot_id, Store.merchant_id == merchant_id)
                          .with_for_update(of=Slot).execution_options(populate_existing=True)) \
        if id_in_range(slot_id) else None
    if slot is None:
        raise NotFound(f"no reservation slot with id {slot_id}", code="reservation.slot_not_found")
    if capacity is not None:
        if capacity < slot.booked:
            raise RuleViolation("a slot cannot have fewer tables than it has bookings",
                                code="reservation.capacity_below_booked", details={"booked": slot.booked})
        slot.capacity = capacity
    if open is not None:
        slot.open = open
    session.flush()
    return slot


def store_slots(session: Session, merchant_id: int, store_id: int, start: datetime, end: datetime) -> list[Slot]:
    """Every slot of the store starting in [start, end), open or closed, with its bookings."""
    own_store(session, merchant_id, store_id)
    return list(session.scalars(select(Slot).where(Slot.store_id == store_id, Slot.starts_at >= start,
                                                   Slot.starts_at < end).order_by(Slot.starts_at, Slot.min_party)))


def day_bookings(session: Session, merchant_id: int, store_id: int, start: datetime, end: datetime,
                 status: str | None = None) -> list[tuple[Reservation, Member]]:
    """The store's bookings starting in [start, end), soonest first, with their members."""
    own_store(session, merchant_id, store_id)
    query = (select(Reservation, Member).join(Member, Member.id == Reservation.member_id)
             .where(Reservation.store_id == store_id, Reservation.starts_at >= start, Reservation.starts_at < end)
             .order_by(Reservation.starts_at, Reservation.id))
    if status is not None:
        query = query.where(Reservation.status == status)
    return [(r, m) for r, m in session.execute(query)]


def _own_booking(session: Session, merchant_id: int, reservation_id: int) -> Reservation:
    """A booking at one of the merchant's stores, locked; another merchant's is not found."""
    reservation = session.scalar(
        select(Reservation).join(Store, Store.id == Reservation.store_id)
        .where(Reservation.id == reservation_id, Store.merchant_id == merchant_id)
        .with_for_update(of=Reservation).execution_options(populate_existing=True)) \
        if id_in_range(reservation_id) else None
    if reservation is None:
        raise NotFound(f"no reservation with id {reservation_id}", code="reservation.not_found")
    return reservation


def _not_active(reservation: Reservation) -> Conflict:
    return Conflict(f"this booking is {reservation.status}", code="reservation.not_active",
                    details={"status": reservation.status})


def arrive(session: Session, settings: Settings, merchant_id: int, reservation_id: int, staff_id: int | None,
           now: datetime) -> tuple[Reservation, bool]:
    """Confirm the party has arrived (on the slot's day); confirming again changes nothing (True: a replay)."""
    reservation = _own_booking(session, merchant_id, reservation_id)
    if reservation.status == "arrived":
        return reservation, True
    if reservation.status != "booked":
        raise _not_active(reservation)
    if settings.mall.local_day(now) != settings.mall.local_day(reservation.starts_at):
        raise RuleViolation("arrival is confirmed on the day of the booking", code="reservation.not_today",
                            details={"starts_at": reservation.starts_at.isoformat()})
    reservation.status, reservation.arrived_at, reservation.arrived_by_staff_id = "arrived", now, staff_id
    session.flush()
    return reservation, False


@dataclass(frozen=True)
class Cancelled:
    reservation: Reservation
    replayed: bool  # it was cancelled before (by either side): nothing changed


def cancel(session: Session, settings: Settings, senders: Senders, merchant_id: int, reservation_id: int, reason: str,
           now: datetime) -> Cancelled:
    """Cancel a booking for the restaurant (the guest called, the evening is closed), free its table and tell
    the member why; cancelling again changes nothing."""
    reservation = _own_booking(session, merchant_id, reservation_id)
    if reservation.status == "cancelled":
        return Cancelled(reservation, True)
    if reservation.status != "booked":
        raise _not_active(reservation)
    reservation.status, reservation.cancelled_at = "cancelled", now
    reservation.cancelled_by, reservation.cancel_reason = "restaurant", reason
    give_back_table(session, reservation.slot_id)
    note = message(settings, reservation, store_name(session, reservation.store_id), "cancelled",
                   f"reservation:{reservation.id}:cancelled")
    notifications.record(session, settings, reservation.member_id, note, now, senders.online([reservation.member_id]))
    session.flush()
    return Cancelled(reservation, False)
