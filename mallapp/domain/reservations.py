"""Table reservations (预约): restaurants publish slots, members book them, staff confirm arrival.

A slot is one start time at one restaurant (a store) for one party-size band (tables for 1-2,
3-4, 5-8 …) with a capacity in tables; its ``booked`` counter moves only by conditional UPDATEs
(``booked < capacity``) under a CHECK constraint, so concurrent bookings never exceed it. A
booking first locks its member's row: the no-overlap rule (one restaurant, overlapping times)
and the cap on upcoming bookings are checked under it, so a member's racing requests queue.
Lock order everywhere: member, reservation, slots in id order; so no two paths deadlock.

Statuses: ``booked`` → ``arrived`` (staff) | ``cancelled`` (member) | ``no_show`` (the clock,
after the grace period). Booked and arrived bookings hold a table. The clock calls
:func:`remind_due` and :func:`release_no_shows`; the merchant's side (publishing slots, the day's
bookings, arrival) is :mod:`mallapp.domain.reservation_admin`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from mallapp import i18n
from mallapp.db import Base, UTCDateTime, get_or_404, id_in_range
from mallapp.domain import notifications
from mallapp.domain.members import Member
from mallapp.domain.notifications import Message, Senders, Text
from mallapp.domain.points import BigId
from mallapp.domain.venue import Store, store_name, store_names
from mallapp.errors import Conflict, NotFound, RuleViolation
from mallapp.settings import Settings

STATUSES = ("booked", "arrived", "cancelled", "no_show")
HOLDING = ("booked", "arrived")  # statuses that hold a table


class Slot(Base):
    """A bookable start time at a restaurant for one party-size band, with its tables."""

    __tablename__ = "reservation_slots"
    __table_args__ = (UniqueConstraint("store_id", "starts_at", "party_min"),
                      CheckConstraint("booked >= 0 AND booked <= capacity", name="within_capacity"),
                      CheckConstraint("party_min >= 1 AND party_max >= party_min", name="party_band"),
                      CheckConstraint("duration_minutes > 0", name="duration_positive"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_minutes: Mapped[int] = mapped_column(SmallInteger)
    # The columns keep the names migration 0009 gave them.
    min_party: Mapped[int] = mapped_column("party_min", SmallInteger)
    max_party: Mapped[int] = mapped_column("party_max", SmallInteger)
    capacity: Mapped[int] = mapped_column(Integer)  # tables of this band
    booked: Mapped[int] = mapped_column(Integer, default=0)  # tables held by booked or arrived bookings
    open: Mapped[bool] = mapped_column(Boolean, default=True)  # closed: no new bookings; held ones stay
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.duration_minutes)

    @property
    def remaining(self) -> int:
        return self.capacity - self.booked


class Reservation(Base):
    """A member's booking of one table in a slot."""

    __tablename__ = "reservations"
    __table_args__ = (UniqueConstraint("member_id", "request_id"),
                      CheckConstraint(f"status IN {STATUSES}", name="status"),
                      CheckConstraint("party_size >= 1", name="party_size_positive"),
                      Index("ix_reservations_member_id_store_id_starts_at", "member_id", "store_id", "starts_at"),
                      Index("ix_reservations_store_id_starts_at", "store_id", "starts_at"),
                      Index("ix_reservations_status_starts_at", "status", "starts_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    slot_id: Mapped[int] = mapped_column(ForeignKey("reservation_slots.id"), index=True)
    party_size: Mapped[int] = mapped_column(SmallInteger)
    # The slot's window, copied so overlap and the clock's scans need no join.
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(10))
    # The client's id for the booking: a retry carrying it gets the first booking, never a second table.
    request_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    arrived_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("merchant_staff.id"))
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Who cancelled: "member" or "restaurant" (which says why, in cancel_reason, and tells the member).
    cancelled_by: Mapped[str | None] = mapped_column(String(10))
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class Booked:
    """A booking, with whether this call only replayed an earlier one."""

    reservation: Reservation
    replayed: bool


# --- messages --------------------------------------------------------------------------------------

def local_text(settings: Settings, at: datetime) -> str:
    return at.astimezone(settings.mall.tz).strftime("%Y-%m-%d %H:%M")


def message(settings: Settings, reservation: Reservation, store_name: str, what: str, key: str) -> Message:
    """A reservation message: ``what`` is booked, reminder, no_show or cancelled (by the restaurant)."""
    tz, starts_at = settings.mall.tz, reservation.starts_at
    party_size, reason = reservation.party_size, reservation.cancel_reason or ""

    def render(locale: str) -> Text:
        when = i18n.fmt_datetime(starts_at, tz, locale)
        return Text(i18n.t(locale, f"member.reservation.{what}.title"),
                    i18n.t(locale, f"member.reservation.{what}.body", store=store_name, when=when,
                           party_size=party_size, reason=reason),
                    # starts_at in WeChat's time data format, whatever the locale
                    {"store": store_name, "starts_at": local_text(settings, starts_at), "party_size": str(party_size)})

    return Message(kind="reservation", key=key, text=render, store_id=reservation.store_id,
                   page=f"{settings.reservations.page}?id={reservation.id}")


def reminder_key(reservation: Reservation) -> str:
    # Per slot: a booking moved to another slot after its reminder is reminded of the new time.
    return f"reservation:{reservation.id}:reminder:{reservation.slot_id}"


# --- slots as members see them ---------------------------------------------------------------------

def _bookable_store(session: Session, store_id: int) -> Store:
    return get_or_404(session, Store, store_id, code="reservation.store_not_found", what="restaurant",
                      accept=lambda store: store.active and store.merchant_id is not None)


def open_slots(session: Session, settings: Settings, store_id: int, start: datetime, end: datetime,
               now: datetime, party_size: int | None = None) -> list[Slot]:
    """The restaurant's open slots starting in [start, end), not yet begun and within the horizon, with tables left."""
    _bookable_store(session, store_id)
    horizon = now + timedelta(days=settings.reservations.horizon_days)
    query = (select(Slot).where(Slot.store_id == store_id, Slot.open.is_(True), Slot.booked < Slot.capacity,
                                Slot.starts_at >= max(start, now), Slot.starts_at < min(end, horizon))
             .order_by(Slot.starts_at, Slot.min_party))
    if party_size is not None:
        query = query.where(Slot.min_party <= party_size, Slot.max_party >= party_size)
    return list(session.scalars(query))


def _slot_to_book(session: Session, settings: Settings, slot_id: int, party_size: int, now: datetime,
                  store_id: int | None = None) -> Slot:
    slot = get_or_404(session, Slot, slot_id, code="reservation.slot_not_found", what="reservation slot",
                      accept=lambda slot: store_id is None or slot.store_id == store_id)
    _bookable_store(session, slot.store_id)
    horizon = now + timedelta(days=settings.reservations.horizon_days)
    if not slot.open or now >= slot.starts_at or slot.starts_at >= horizon:
        raise RuleViolation("this slot cannot be booked now", code="reservation.slot_not_available",
                            details={"open": slot.open, "starts_at": slot.starts_at.isoformat()})
    if not slot.min_party <= party_size <= slot.max_party:
        raise RuleViolation(f"this slot is for parties of {slot.min_party} to {slot.max_party}",
                            code="reservation.party_size_mismatch",
                            details={"min_party": slot.min_party, "max_party": slot.max_party})
    return slot


# --- the rules a booking keeps ---------------------------------------------------------------------

def _lock_member(session: Session, member_id: int) -> None:
    # Serializes one member's bookings and changes: the overlap and cap checks then see every other.
    found = session.scalar(select(Member.id).where(Member.id == member_id).with_for_update())
    if found is None:
        raise NotFound("no such member", code="member.not_found")


def _check_no_overlap(session: Session, member_id: int, slot: Slot, exclude: int | None = None) -> None:
    query = select(Reservation.id, Reservation.starts_at).where(
        Reservation.member_id == member_id, Reservation.store_id == slot.store_id,
        Reservation.status.in_(HOLDING), Reservation.starts_at < slot.ends_at, Reservation.ends_at > slot.starts_at)
    if exclude is not None:
        query = query.where(Reservation.id != exclude)
    clash = session.execute(query.limit(1)).first()
    if clash is not None:
        raise Conflict("you already hold a booking at this restaurant at an overlapping time",
                       code="reservation.overlap", details={"reservation_id": clash.id})


def _check_cap(session: Session, settings: Settings, member_id: int, now: datetime) -> None:
    held = session.scalar(select(func.count()).where(Reservation.member_id == member_id,
                                                     Reservation.status == "booked",
                                                     Reservation.starts_at > now)) or 0
    cap = settings.reservations.max_upcoming_per_member
    if held >= cap:
        raise RuleViolation(f"a member may hold {cap} upcoming bookings", code="reservation.too_many",
                            details={"max": cap})


def _take_table(session: Session, slot_id: int) -> None:
    # One conditional statement: on PostgreSQL a concurrent booker waits for the row and re-checks
    # the condition, so the counter never passes capacity (and the CHECK would refuse it if it did).
    taken = session.execute(update(Slot).where(Slot.id == slot_id, Slot.open.is_(True), Slot.booked < Slot.capacity)
                            .values(booked=Slot.booked + 1).execution_options(synchronize_session=False)).rowcount
    if not taken:
        raise Conflict("every table of this slot is booked", code="reservation.full")


def give_back_table(session: Session, slot_id: int) -> None:
    session.execute(update(Slot).where(Slot.id == slot_id).values(booked=Slot.booked - 1)
                    .execution_options(synchronize_session=False))


def _lock_slots(session: Session, slot_ids: Collection[int]) -> None:
    # In id order: two changes moving between the same slots in opposite directions never deadlock.
    session.execute(select(Slot.id).where(Slot.id.in_(sorted(set(slot_ids)))).order_by(Slot.id).with_for_update())


def _already_reminded(settings: Settings, starts_at: datetime, now: datetime) -> datetime | None:
    # Booked inside the reminder's lead time: the confirmation is the reminder.
    lead = timedelta(minutes=settings.reservations.reminder_lead_minutes)
    return now if starts_at - lead <= now else None


# --- members ---------------------------------------------------------------------------------------

def book(session: Session, settings: Settings, member_id: int, slot_id: int, party_size: int, request_id: str,
         now: datetime, online: Collection[int] = ()) -> Booked:
    """Book a table in the slot for the party; the same request_id again returns the first booking."""
    _lock_member(session, member_id)
    earlier = session.scalar(select(Reservation).where(Reservation.member_id == member_id,
                                                       Reservation.request_id == request_id))
    if earlier is not None:
        if (earlier.slot_id, earlier.party_size) != (slot_id, party_size) and earlier.changed_at is None:
            raise Conflict("this request_id was used for another booking", code="reservation.request_id_reused",
                           details={"reservation_id": earlier.id})
        return Booked(earlier, True)
    slot = _slot_to_book(session, settings, slot_id, party_size, now)
    _check_no_overlap(session, member_id, slot)
    _check_cap(session, settings, member_id, now)
    _take_table(session, slot.id)
    reservation = Reservation(member_id=member_id, store_id=slot.store_id, slot_id=slot.id, party_size=party_size,
                              starts_at=slot.starts_at, ends_at=slot.ends_at, status="booked", request_id=request_id,
                              created_at=now, reminded_at=_already_reminded(settings, slot.starts_at, now))
    session.add(reservation)
    session.flush()
    note = message(settings, reservation, store_name(session, slot.store_id), "booked",
                   f"reservation:{reservation.id}:booked")
    notifications.record(session, settings, member_id, note, now, online)
    return Booked(reservation, False)


def get_own(session: Session, member_id: int, reservation_id: int, *, lock: bool = False) -> Reservation:
    """The member's booking, or NotFound (another member's booking is not found either)."""
    query = select(Reservation).where(Reservation.id == reservation_id, Reservation.member_id == member_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    found = session.scalar(query) if id_in_range(reservation_id) else None
    if found is None:
        raise NotFound(f"no reservation with id {reservation_id}", code="reservation.not_found")
    return found


def _changeable(reservation: Reservation, now: datetime) -> None:
    if reservation.status != "booked" or now >= reservation.starts_at:
        raise Conflict("only a booking whose slot has not started can be changed or cancelled",
                       code="reservation.not_changeable", details={"status": reservation.status})


def change(session: Session, settings: Settings, member_id: int, reservation_id: int, *, slot_id: int | None = None,
           party_size: int | None = None, now: datetime) -> Reservation:
    """Move the booking to another slot of the restaurant or party size: the new table is taken, or nothing changes."""
    _lock_member(session, member_id)
    reservation = get_own(session, member_id, reservation_id, lock=True)
    _changeable(reservation, now)
    new_slot_id = reservation.slot_id if slot_id is None else slot_id
    new_party = reservation.party_size if party_size is None else party_size
    if (new_slot_id, new_party) == (reservation.slot_id, reservation.party_size):
        return reservation
    slot = _slot_to_book(session, settings, new_slot_id, new_party, now, store_id=reservation.store_id)
    if slot.id != reservation.slot_id:
        _check_no_overlap(session, member_id, slot, exclude=reservation.id)
        _lock_slots(session, (slot.id, reservation.slot_id))
        _take_table(session, slot.id)  # raises when full: the caller's transaction rolls back, nothing moved
        give_back_table(session, reservation.slot_id)
        reservation.slot_id, reservation.starts_at, reservation.ends_at = slot.id, slot.starts_at, slot.ends_at
        reservation.reminded_at = _already_reminded(settings, slot.starts_at, now)
    reservation.party_size = new_party
    reservation.changed_at = now
    session.flush()
    return reservation


def cancel(session: Session, member_id: int, reservation_id: int, now: datetime) -> Reservation:
    """Cancel the booking and free its table; cancelling again changes nothing."""
    reservation = get_own(session, member_id, reservation_id, lock=True)
    if reservation.status == "cancelled":
        return reservation
    _changeable(reservation, now)
    reservation.status, reservation.cancelled_at, reservation.cancelled_by = "cancelled", now, "member"
    give_back_table(session, reservation.slot_id)
    session.flush()
    return reservation


def list_own(session: Session, member_id: int, *, upcoming: bool | None = None, now: datetime,
             limit: int = 50) -> list[Reservation]:
    """The member's bookings: upcoming ones soonest first, else newest slot first."""
    query = select(Reservation).where(Reservation.member_id == member_id)
    if upcoming is True:
        return list(session.scalars(query.where(Reservation.status.in_(HOLDING), Reservation.ends_at > now)
                                    .order_by(Reservation.starts_at, Reservation.id).limit(limit)))
    if upcoming is False:
        query = query.where((Reservation.status.not_in(HOLDING)) | (Reservation.ends_at <= now))
    return list(session.scalars(query.order_by(Reservation.starts_at.desc(), Reservation.id.desc()).limit(limit)))


def slots_by_id(session: Session, slot_ids: Collection[int]) -> dict[int, Slot]:
    if not slot_ids:
        return {}
    return {s.id: s for s in session.scalars(select(Slot).where(Slot.id.in_(set(slot_ids))))}


# --- the clock -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Batch:
    """What one transaction of a job did: how many bookings (their messages leave after its commit)."""

    count: int


def _due(session: Session, conditions: tuple[ColumnElement[bool], ...], limit: int) -> list[Reservation]:
    # SKIP LOCKED: a second clock started by mistake takes other rows rather than the same ones.
    return list(session.scalars(select(Reservation).where(*conditions).order_by(Reservation.id).limit(limit)
                                .with_for_update(skip_locked=True).execution_options(populate_existing=True)))


def _tell(session: Session, settings: Settings, senders: Senders, due: list[Reservation], what: str,
          key: Callable[[Reservation], str], now: datetime) -> None:
    names = store_names(session, {r.store_id for r in due})
    items = [(r.member_id, message(settings, r, names.get(r.store_id, ""), what, key(r))) for r in due]
    notifications.record_many(session, settings, items, now, senders.online([r.member_id for r in due]))


def remind_batch(session: Session, settings: Settings, senders: Senders, now: datetime, limit: int = 500) -> Batch:
    """Mark up to ``limit`` bookings starting within the lead time as reminded and record their reminders."""
    lead = timedelta(minutes=settings.reservations.reminder_lead_minutes)
    due = _due(session, (Reservation.status == "booked", Reservation.reminded_at.is_(None),
                         Reservation.starts_at > now, Reservation.starts_at <= now + lead), limit)
    for reservation in due:
        reservation.reminded_at = now  # in the transaction that records the message: both or neither
    if due:
        _tell(session, settings, senders, due, "reminder", reminder_key, now)
    session.flush()
    return Batch(len(due))


def release_batch(session: Session, settings: Settings, senders: Senders, now: datetime, limit: int = 500) -> Batch:
    """Release up to ``limit`` bookings unconfirmed past the grace period: no_show, their tables freed."""
    grace = timedelta(minutes=settings.reservations.no_show_grace_minutes)
    due = _due(session, (Reservation.status == "booked", Reservation.starts_at <= now - grace), limit)
    if not due:
        return Batch(0)
    for reservation in due:
        reservation.status, reservation.released_at = "no_show", now
    session.flush()
    freed = Counter(r.slot_id for r in due)
    slots = Slot.__table__
    # In slot id order, after the bookings' locks: the same order as every other path.
    session.execute(update(slots).where(slots.c.id == bindparam("slot")).values(booked=slots.c.booked - bindparam("n")),
                    [{"slot": slot_id, "n": n} for slot_id, n in sorted(freed.items())])
    _tell(session, settings, senders, due, "no_show", lambda r: f"reservation:{r.id}:no_show", now)
    return Batch(len(due))


def _run(sessions: sessionmaker[Session], limit: int, one: Callable[[Session], Batch],
         keep_going: Callable[[], bool] | None = None) -> int:
    total = 0
    while keep_going is None or keep_going():  # the clock's lock check, before each batch
        # Its messages leave after each commit: a crash before or during the sends leaves the bookings
        # marked and the messages in the inbox, so a second run finds nothing to do (pending sends are
        # settled as unknown).
        with sessions.begin() as session:
            done = one(session)
        total += done.count
        if done.count < limit:
            break
    return total


def remind_due(sessions: sessionmaker[Session], settings: Settings, senders: Senders, now: datetime,
               limit: int = 500, keep_going: Callable[[], bool] | None = None) -> int:
    """Remind members of bookings starting within the lead time, once per booking and slot; how many."""
    return _run(sessions, limit, lambda s: remind_batch(s, settings, senders, now, limit), keep_going)


def release_no_shows(sessions: sessionmaker[Session], settings: Settings, senders: Senders, now: datetime,
                     limit: int = 500, keep_going: Callable[[], bool] | None = None) -> int:
    """Release bookings nobody confirmed within the grace period after their start; how many."""
    return _run(sessions, limit, lambda s: release_batch(s, settings, senders, now, limit), keep_going)
