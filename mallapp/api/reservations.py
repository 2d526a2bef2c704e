"""Table reservations: members find slots and book, change and cancel; restaurants publish slots and seat guests."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Literal

from flask import Blueprint
from pydantic import Field, StringConstraints, model_validator
from sqlalchemy.orm import Session

from mallapp.api.core import (
    REPLAY,
    Body,
    Id,
    Out,
    Printable,
    Query,
    current_member_id,
    current_merchant_id,
    current_staff_id,
    current_staff_role,
    operation,
    runtime,
    transaction,
)
from mallapp.api.directory import StoreLocationOut, location_out
from mallapp.domain import directory, reservation_admin, reservations, venue
from mallapp.domain.members import Member, masked_phone

member_bp = Blueprint("member_reservations", __name__, url_prefix="/api/v1")
merchant_bp = Blueprint("merchant_reservations", __name__, url_prefix="/api/v1/merchant")


_BOOKABLE = ("reservation.slot_not_found", "reservation.store_not_found", "reservation.slot_not_available",
             "reservation.party_size_mismatch", "reservation.full", "reservation.overlap")


# --- shapes ----------------------------------------------------------------------------------------

Status = Literal["booked", "arrived", "cancelled", "no_show"]  # reservations.STATUSES
PartySize = Annotated[int, Field(ge=1, le=100)]
RequestId = Annotated[str, StringConstraints(pattern=r"^[\w\-./:#]{1,64}$")]
Day = date  # a field named date would shadow the type in the class body
# A day a caller names: within 2000..2100, so date arithmetic (a day's bounds, a week's) cannot overflow.
InDay = Annotated[date, Field(ge=date(2000, 1, 1), le=date(2100, 12, 31))]
LocalTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class DayQuery(Query):
    date: InDay | None = Field(default=None, description="a day in mall time (YYYY-MM-DD); default today")


class MemberSlotsQuery(DayQuery):
    party_size: PartySize | None = Field(default=None, description="only slots that seat this party")


class MemberSlotOut(Out):
    id: int
    starts_at: datetime
    ends_at: datetime
    min_party: int
    max_party: int
    remaining: int = Field(description="tables left to book")


class MemberSlotsOut(Out):
    store_id: int
    date: Day
    slots: list[MemberSlotOut] = Field(description="open slots with tables left, soonest first")


class BookIn(Body):
    slot_id: Id
    party_size: PartySize
    request_id: RequestId = Field(description="the client's id for this booking: a retry with it returns the "
                                              "first booking and never takes a second table")


class ChangeIn(Body):
    slot_id: Id | None = Field(default=None, description="another slot of the same restaurant")
    party_size: PartySize | None = None

    @model_validator(mode="after")
    def _something(self) -> ChangeIn:
        if self.slot_id is None and self.party_size is None:
            raise ValueError("send slot_id, party_size or both")
        return self


class ReservationOut(Out):
    id: int
    store_id: int
    store_name: str
    store: StoreLocationOut | None = Field(default=None, description="where the store is: names, floor, unit")
    slot_id: int
    party_size: int
    starts_at: datetime
    ends_at: datetime
    status: Status = Field(description="booked, arrived (staff confirmed), cancelled, or no_show (released "
                                       "after the grace period)")
    request_id: str
    created_at: datetime
    changed_at: datetime | None
    arrived_at: datetime | None
    cancelled_at: datetime | None
    cancelled_by: Literal["member", "restaurant"] | None
    cancel_reason: str | None = Field(description="the restaurant's reason, when it cancelled")
    released_at: datetime | None


class BookedOut(ReservationOut):
    replayed: bool = Field(description="true when this request_id had booked before; nothing changed")


class ReservationsOut(Out):
    reservations: list[ReservationOut]


class MineQuery(Query):
    when: Literal["upcoming", "past"] | None = Field(default=None, description="upcoming: booked or arrived and not "
                                                                             "yet over, soonest first; else newest")
    limit: int = Field(default=50, ge=1, le=100)


class BandIn(Body):
    min_party: PartySize
    max_party: PartySize
    tables: int = Field(ge=0, le=1000, description="tables for a party of this band in each slot")


class PublishIn(Body):
    first_day: InDay = Field(description="mall time")
    last_day: InDay | None = Field(default=None, description="inclusive; default first_day (one day's slots)")
    weekdays: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        default_factory=lambda: list(range(1, 8)), min_length=1, max_length=7,
        description="ISO weekdays (1 = Monday) between first_day and last_day: a weekly pattern")
    times: list[LocalTime] = Field(min_length=1, max_length=48, description="start times, mall time (HH:MM)")
    duration_minutes: int = Field(ge=15, le=480, description="how long a table is held")
    bands: list[BandIn] = Field(min_length=1, max_length=10, description="party-size bands, not overlapping")


class MerchantSlotOut(Out):
    id: int
    store_id: int
    starts_at: datetime
    ends_at: datetime
    duration_minutes: int
    min_party: int
    max_party: int
    capacity: int = Field(description="tables")
    booked: int = Field(description="tables held by booked or arrived bookings")
    remaining: int
    open: bool


class PublishedOut(Out):
    created: int
    updated: int
    skipped_past: int = Field(description="start times already past, not published")
    slots: list[MerchantSlotOut]


class MerchantSlotsOut(Out):
    store_id: int
    date: Day
    slots: list[MerchantSlotOut]


class SlotPatch(Body):
    capacity: int | None = Field(default=None, ge=0, le=1000, description="tables; never below the bookings held")
    open: bool | None = Field(default=None, description="false: no new bookings; held ones stay")


class BookingsQuery(DayQuery):
    status: Status | None = None


class GuestOut(Out):
    id: int
    nickname: str | None
    phone: str | None = Field(description="in full for a manager and the merchant's API key; a cashier, who only "
                                          "needs to recognise the guest, sees the last four digits (*******1234)")


class StaffReservationOut(ReservationOut):
    member: GuestOut
    arrived_by_staff_id: int | None


class BookingsOut(Out):
    store_id: int
    date: Day
    reservations: list[StaffReservationOut] = Field(description="soonest first")


class ArrivedOut(StaffReservationOut):
    replayed: bool = Field(description="true when arrival had been confirmed before; nothing changed")


class CancelIn(Body):
    reason: Printable(200) = Field(
        description="told to the member, e.g. \"the guest called to cancel\" or \"closed for a private event\"")


class CancelledOut(StaffReservationOut):
    replayed: bool = Field(description="true when the booking had been cancelled before; nothing changed")


def _reservation_fields(r: reservations.Reservation, store_name: str) -> dict:
    return dict(id=r.id, store_id=r.store_id, store_name=store_name, slot_id=r.slot_id, party_size=r.party_size,
                starts_at=r.starts_at, ends_at=r.ends_at, status=r.status, request_id=r.request_id,
                created_at=r.created_at, changed_at=r.changed_at, arrived_at=r.arrived_at,
                cancelled_at=r.cancelled_at, cancelled_by=r.cancelled_by, cancel_reason=r.cancel_reason,
                released_at=r.released_at)


def _outs(session: Session, found: list[reservations.Reservation]) -> list[ReservationOut]:
    """The member's view of bookings: each with its store's location (one query for them all)."""
    where = directory.locations(session, {r.store_id for r in found})
    return [ReservationOut(**_reservation_fields(r, where[r.store_id].name if r.store_id in where else ""),
                           store=location_out(where.get(r.store_id))) for r in found]


def _slot_out(s: reservations.Slot) -> MerchantSlotOut:
    return MerchantSlotOut(id=s.id, store_id=s.store_id, starts_at=s.starts_at, ends_at=s.ends_at,
                           duration_minutes=s.duration_minutes, min_party=s.min_party, max_party=s.max_party,
                           capacity=s.capacity, booked=s.booked, remaining=s.remaining, open=s.open)


def _day(query: DayQuery) -> tuple[date, datetime, datetime]:
    rt = runtime()
    day = query.date or rt.settings.mall.local_day(rt.now())
    return (day, *rt.settings.mall.day_bounds(day))


# --- members ---------------------------------------------------------------------------------------

@operation(member_bp, "/stores/<int:store_id>/reservation-slots", "GET",
           summary="A restaurant's open slots on a day, with the tables left", auth="member",
           query=MemberSlotsQuery, response=MemberSlotsOut, errors=("reservation.store_not_found",))
def open_slots(store_id: int, query: MemberSlotsQuery) -> MemberSlotsOut:
    rt = runtime()
    day, start, end = _day(query)
    with transaction() as session:
        found = reservations.open_slots(session, rt.settings, store_id, start, end, rt.now(), query.party_size)
        return MemberSlotsOut(store_id=store_id, date=day, slots=[MemberSlotOut(
            id=s.id, starts_at=s.starts_at, ends_at=s.ends_at, min_party=s.min_party, max_party=s.max_party,
            remaining=s.remaining) for s in found])


@operation(member_bp, "/me/reservations", "POST",
           summary="Book a table in a slot (a retry with the same request_id returns the first booking)",
           auth="member", body=BookIn, response=BookedOut, status=201, also=REPLAY,
           errors=(*_BOOKABLE, "reservation.too_many", "reservation.request_id_reused"))
def book(body: BookIn):
    rt = runtime()
    member_id = current_member_id()
    online = rt.senders.online([member_id])
    with transaction() as session:
        done = reservations.book(session, rt.settings, member_id, body.slot_id, body.party_size, body.request_id,
                                 rt.now(), online)
        out = BookedOut(**_outs(session, [done.reservation])[0].model_dump(), replayed=done.replayed)
    return out, 200 if done.replayed else 201


@operation(member_bp, "/me/reservations", "GET", summary="The member's bookings", auth="member",
           query=MineQuery, response=ReservationsOut)
def my_reservations(query: MineQuery) -> ReservationsOut:
    rt = runtime()
    upcoming = None if query.when is None else query.when == "upcoming"
    with transaction() as session:
        found = reservations.list_own(session, current_member_id(), upcoming=upcoming, now=rt.now(),
                                      limit=query.limit)
        return ReservationsOut(reservations=_outs(session, found))


@operation(member_bp, "/me/reservations/<int(big=True):reservation_id>", "GET", summary="One of the member's bookings",
           auth="member", response=ReservationOut, errors=("reservation.not_found",))
def my_reservation(reservation_id: int) -> ReservationOut:
    with transaction() as session:
        return _outs(session, [reservations.get_own(session, current_member_id(), reservation_id)])[0]


@operation(member_bp, "/me/reservations/<int(big=True):reservation_id>", "PATCH",
           summary="Move a booking to another slot of the restaurant or party size: the new table is taken, "
                   "or nothing changes", auth="member", body=ChangeIn, response=ReservationOut,
           errors=("reservation.not_found", "reservation.not_changeable", *_BOOKABLE))
def change(reservation_id: int, body: ChangeIn) -> ReservationOut:
    rt = runtime()
    with transaction() as session:
        changed = reservations.change(session, rt.settings, current_member_id(), reservation_id,
                                      slot_id=body.slot_id, party_size=body.party_size, now=rt.now())
        return _outs(session, [changed])[0]


@operation(member_bp, "/me/reservations/<int(big=True):reservation_id>/cancel", "POST",
           summary="Cancel a booking and free its table (cancelling again changes nothing)", auth="member",
           response=ReservationOut, errors=("reservation.not_found", "reservation.not_changeable"))
def cancel(reservation_id: int) -> ReservationOut:
    rt = runtime()
    with transaction() as session:
        return _outs(session, [reservations.cancel(session, current_member_id(), reservation_id, rt.now())])[0]


# --- restaurants -----------------------------------------------------------------------------------

@operation(merchant_bp, "/stores/<int:store_id>/reservation-slots", "POST",
           summary="Publish slots: start times on a day or a weekly pattern, tables per party-size band "
                   "(publishing again updates the same slots)", auth="merchant_manager", body=PublishIn,
           response=PublishedOut,
           errors=("store.not_found", "reservation.invalid_range", "reservation.invalid_bands",
                   "reservation.too_many_slots", "reservation.slot_in_use", "reservation.capacity_below_booked"))
def publish(store_id: int, body: PublishIn) -> PublishedOut:
    rt = runtime()
    with transaction() as session:
        done = reservation_admin.publish(
            session, rt.settings, current_merchant_id(), store_id, first_day=body.first_day,
            last_day=body.last_day or body.first_day, weekdays=set(body.weekdays),
            times=[time.fromisoformat(t) for t in body.times], duration_minutes=body.duration_minutes,
            bands=[reservation_admin.Band(b.min_party, b.max_party, b.tables) for b in body.bands], now=rt.now())
        return PublishedOut(created=done.created, updated=done.updated, skipped_past=done.skipped_past,
                            slots=[_slot_out(s) for s in done.slots])


@operation(merchant_bp, "/stores/<int:store_id>/reservation-slots", "GET",
           summary="The store's slots on a day, open and closed, with their bookings", auth="merchant",
           query=DayQuery, response=MerchantSlotsOut, errors=("store.not_found",))
def store_slots(store_id: int, query: DayQuery) -> MerchantSlotsOut:
    day, start, end = _day(query)
    with transaction() as session:
        found = reservation_admin.store_slots(session, current_merchant_id(), store_id, start, end)
        return MerchantSlotsOut(store_id=store_id, date=day, slots=[_slot_out(s) for s in found])


@operation(merchant_bp, "/reservation-slots/<int:slot_id>", "PATCH",
           summary="Change a slot's tables or close it to new bookings", auth="merchant_manager", body=SlotPatch,
           response=MerchantSlotOut, errors=("reservation.slot_not_found", "reservation.capacity_below_booked"))
def update_slot(slot_id: int, body: SlotPatch) -> MerchantSlotOut:
    with transaction() as session:
        return _slot_out(reservation_admin.update_slot(session, current_merchant_id(), slot_id,
                                                       capacity=body.capacity, open=body.open))


def _staff_out(r: reservations.Reservation, store_name: str, member: Member) -> dict:
    # Least privilege: the till recognises a guest by the last digits; a manager (or the key) may call them.
    phone = member.phone if current_staff_role() in (None, "manager") else masked_phone(member.phone)
    return dict(**_reservation_fields(r, store_name), arrived_by_staff_id=r.arrived_by_staff_id,
                member=GuestOut(id=member.id, nickname=member.nickname, phone=phone))


@operation(merchant_bp, "/stores/<int:store_id>/reservations", "GET",
           summary="The store's bookings on a day (default today), soonest first", auth="merchant",
           query=BookingsQuery, response=BookingsOut, errors=("store.not_found",))
def day_bookings(store_id: int, query: BookingsQuery) -> BookingsOut:
    day, start, end = _day(query)
    with transaction() as session:
        found = reservation_admin.day_bookings(session, current_merchant_id(), store_id, start, end, query.status)
        name = venue.store_name(session, store_id)  # one store: one lookup, not one per booking
        return BookingsOut(store_id=store_id, date=day,
                           reservations=[StaffReservationOut(**_staff_out(r, name, m)) for r, m in found])


@operation(merchant_bp, "/reservations/<int(big=True):reservation_id>/arrive", "POST",
           summary="Confirm a party has arrived (confirming again changes nothing)", auth="merchant",
           response=ArrivedOut, errors=("reservation.not_found", "reservation.not_active", "reservation.not_today"))
def arrive(reservation_id: int) -> ArrivedOut:
    rt = runtime()
    with transaction() as session:
        r, replayed = reservation_admin.arrive(session, rt.settings, current_merchant_id(), reservation_id,
                                               current_staff_id(), rt.now())
        member = session.get_one(Member, r.member_id)
        return ArrivedOut(**_staff_out(r, venue.store_name(session, r.store_id), member), replayed=replayed)


@operation(merchant_bp, "/reservations/<int(big=True):reservation_id>/cancel", "POST",
           summary="Cancel a booking for the restaurant, free its table and tell the member why (cancelling "
                   "again changes nothing)", auth="merchant", body=CancelIn, response=CancelledOut,
           errors=("reservation.not_found", "reservation.not_active"))
def cancel_booking(reservation_id: int, body: CancelIn) -> CancelledOut:
    rt = runtime()
    with transaction() as session:
        done = reservation_admin.cancel(session, rt.settings, rt.senders, current_merchant_id(), reservation_id,
                                        body.reason, rt.now())
        r = done.reservation
        out = CancelledOut(**_staff_out(r, venue.store_name(session, r.store_id), session.get_one(Member, r.member_id)),
                           replayed=done.replayed)
    return out
