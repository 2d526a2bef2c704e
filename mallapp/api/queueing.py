"""Restaurant queues: members take a number and watch the line; restaurant staff run it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from flask import Blueprint
from pydantic import Field, StringConstraints
from sqlalchemy.orm import Session

from mallapp.api.core import (
    REPLAY,
    Body,
    Out,
    Printable,
    Query,
    current_member_id,
    current_merchant_id,
    operation,
    runtime,
    transaction,
)
from mallapp.api.directory import StoreLocationOut, location_out
from mallapp.domain import directory, queueing
from mallapp.domain.queueing import host
from mallapp.domain.queueing.estimator import Model
from mallapp.domain.queueing.models import QueueTicket

member_bp = Blueprint("member_queue", __name__, url_prefix="/api/v1")
merchant_bp = Blueprint("merchant_queue", __name__, url_prefix="/api/v1/merchant")


BandCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]$")]
RequestId = Annotated[str, StringConstraints(pattern=r"^[\w\-./:#]{1,64}$")]
PartySize = Annotated[int, Field(ge=1, le=100, description="people in the party")]
Status = Literal["waiting", "called", "seated", "skipped", "cancelled", "lapsed"]


# --- shapes ----------------------------------------------------------------------------------------

class TicketOut(Out):
    id: int
    store_id: int
    store: StoreLocationOut | None = Field(default=None, description="where the restaurant is (the member's "
                                                                     "answers): names, floor, unit")
    ticket_no: str = Field(description="the number called out, e.g. A012 (numbers start again each day)")
    band: str
    party_size: int
    status: Status
    walk_in: bool = Field(description="given by staff to a party without the mini-program")
    taken_at: datetime
    called_at: datetime | None
    lapses_at: datetime | None = Field(description="a called ticket lapses then unless the party is seated")
    ended_at: datetime | None
    ahead: int | None = Field(description="parties waiting ahead in the band (tables ahead); null unless waiting")
    people_ahead: int | None = Field(description="people in those parties; null unless waiting")
    estimated_wait_s: int | None = Field(description="seconds until the table is likely ready, learned from "
                                                     "this restaurant's own waits; null unless waiting")
    estimated_at_take_s: int = Field(description="the estimate shown when the number was taken")
    replayed: bool = Field(default=False, description="true when this retry changed nothing")


class TicketsOut(Out):
    tickets: list[TicketOut] = Field(description="newest first")


class TicketsQuery(Query):
    limit: int = Field(default=20, ge=1, le=100)


class BandOut(Out):
    code: str
    label: str
    min_party: int
    max_party: int | None = Field(description="null: no upper limit")
    open: bool = Field(description="takes new numbers")
    waiting: int = Field(description="parties waiting")
    people_waiting: int
    estimated_wait_s: int = Field(description="the wait for a party taking a number now")


class QueueOut(Out):
    store_id: int
    store_name: str
    bands: list[BandOut]


class BoardOut(QueueOut):
    tickets: list[TicketOut] = Field(description="waiting and called tickets, by band and number")


class TakeIn(Body):
    party_size: PartySize


class BandIn(Body):
    code: BandCode
    label: Printable(40)
    min_party: int = Field(ge=1, le=100)
    max_party: int | None = Field(default=None, ge=1, le=100, description="null: no upper limit")


class BandsIn(Body):
    bands: list[BandIn] = Field(min_length=1, max_length=8)


class OpenIn(Body):
    bands: list[BandCode] | None = Field(default=None, max_length=8, description="the bands; null or absent: all")


class CallIn(Body):
    band: BandCode
    request_id: RequestId = Field(description="the till's id for this call: a retry with it returns the same "
                                              "ticket, never calls a second")


class WalkInIn(Body):
    party_size: PartySize
    request_id: RequestId = Field(description="the till's id for this ticket: a retry with it returns the first")


def _ticket_out(session: Session, ticket: QueueTicket, fitted: Model | None = None, replayed: bool = False,
                where: queueing.Place | None = None) -> TicketOut:
    rt = runtime()
    where = where or queueing.place(session, rt.settings, ticket, rt.now(), fitted)
    return TicketOut(id=ticket.id, store_id=ticket.store_id, ticket_no=ticket.ticket_no, band=ticket.band,
                     party_size=ticket.party_size, status=ticket.status, walk_in=ticket.member_id is None,
                     taken_at=ticket.taken_at, called_at=ticket.called_at, lapses_at=ticket.lapses_at,
                     ended_at=ticket.ended_at, ahead=where.ahead if where else None,
                     people_ahead=where.people_ahead if where else None,
                     estimated_wait_s=where.estimate_s if where else None,
                     estimated_at_take_s=ticket.estimate_s, replayed=replayed)


def _located(session: Session, outs: list[TicketOut]) -> list[TicketOut]:
    """The member's tickets with their restaurants' locations, read in one query."""
    where = directory.locations(session, {t.store_id for t in outs})
    for out in outs:
        out.store = location_out(where.get(out.store_id))
    return outs


def _queue(session: Session, store_id: int) -> tuple[list[BandOut], Model]:
    rt = runtime()
    fitted = queueing.model(session, rt.settings, store_id, rt.now())
    found = queueing.states(session, rt.settings, store_id, rt.now(), fitted)
    return [BandOut(code=s.band.code, label=s.band.label, min_party=s.band.min_party, max_party=s.band.max_party,
                    open=s.band.is_open, waiting=s.waiting, people_waiting=s.people_waiting,
                    estimated_wait_s=s.estimate_s) for s in found], fitted


def _board(session: Session, store_id: int) -> BoardOut:
    store = queueing.own_store(session, current_merchant_id(), store_id)
    bands, fitted = _queue(session, store.id)
    tickets = queueing.active_tickets(session, store.id)
    # Places from the board's own rows: a busy evening's fifty waiting parties are not fifty more queries.
    where = host.places(runtime().settings, tickets, fitted, runtime().now())
    return BoardOut(store_id=store.id, store_name=store.name, bands=bands,
                    tickets=[_ticket_out(session, t, fitted, where=where.get(t.id)) for t in tickets])


_STORE = ("store.not_found",)
_TICKET = ("store.not_found", "queue.ticket_not_found", "queue.ticket_closed")


# --- members ---------------------------------------------------------------------------------------

@operation(member_bp, "/stores/<int:store_id>/queue", "GET",
           summary="A restaurant's queues: open or not, parties waiting, the wait for a number taken now",
           auth="member", response=QueueOut, errors=_STORE)
def queue_state(store_id: int) -> QueueOut:
    with transaction() as session:
        store = queueing.open_store(session, store_id)
        bands, _ = _queue(session, store.id)
        return QueueOut(store_id=store.id, store_name=store.name, bands=bands)


@operation(member_bp, "/stores/<int:store_id>/queue/tickets", "POST",
           summary="Take a number for a party (one active ticket per restaurant)", auth="member", body=TakeIn,
           response=TicketOut, status=201,
           errors=("store.not_found", "queue.closed", "queue.no_band", "queue.party_too_large",
                   "queue.ticket_active"))
def take(store_id: int, body: TakeIn) -> TicketOut:
    rt = runtime()
    with transaction() as session:
        done = queueing.take(session, rt.settings, current_member_id(), store_id, body.party_size, rt.now())
        return _located(session, [_ticket_out(session, done.ticket, where=done.place)])[0]


@operation(member_bp, "/me/queue-tickets", "GET", summary="The member's queue tickets, newest first",
           auth="member", query=TicketsQuery, response=TicketsOut)
def my_tickets(query: TicketsQuery) -> TicketsOut:
    with transaction() as session:
        return TicketsOut(tickets=_located(session, [_ticket_out(session, t) for t in
                                                     queueing.member_tickets(session, current_member_id(),
                                                                             query.limit)]))


@operation(member_bp, "/me/queue-tickets/<int(big=True):ticket_id>", "GET",
           summary="One of the member's tickets: position, parties and people ahead, estimated wait",
           auth="member", response=TicketOut, errors=("queue.ticket_not_found",))
def my_ticket(ticket_id: int) -> TicketOut:
    with transaction() as session:
        return _located(session, [_ticket_out(session, queueing.member_ticket(session, current_member_id(),
                                                                              ticket_id))])[0]


@operation(member_bp, "/me/queue-tickets/<int(big=True):ticket_id>/cancel", "POST",
           summary="Give up a ticket (cancelling again changes nothing)", auth="member", response=TicketOut,
           errors=("queue.ticket_not_found", "queue.ticket_closed"))
def cancel(ticket_id: int) -> TicketOut:
    rt = runtime()
    with transaction() as session:
        done = queueing.cancel(session, rt.senders, rt.settings, current_member_id(), ticket_id, rt.now())
        out = _located(session, [_ticket_out(session, done.ticket, replayed=done.replayed)])[0]
    return out


# --- restaurant staff ------------------------------------------------------------------------------

@operation(merchant_bp, "/stores/<int:store_id>/queue", "GET",
           summary="The queue board: bands, and the waiting and called tickets", auth="merchant",
           response=BoardOut, errors=_STORE)
def board(store_id: int) -> BoardOut:
    with transaction() as session:
        return _board(session, store_id)


@operation(merchant_bp, "/stores/<int:store_id>/queue/bands", "PUT",
           summary="Set the restaurant's party-size bands (they start closed; not while tickets are active)",
           auth="merchant_manager", body=BandsIn, response=BoardOut,
           errors=("store.not_found", "queue.invalid_bands", "queue.busy"))
def set_bands(store_id: int, body: BandsIn) -> BoardOut:
    rt = runtime()
    with transaction() as session:
        queueing.set_bands(session, rt.settings, current_merchant_id(), store_id,
                           [queueing.BandSpec(b.code, b.label, b.min_party, b.max_party) for b in body.bands],
                           rt.now())
        return _board(session, store_id)


def _set_open(store_id: int, body: OpenIn, is_open: bool) -> BoardOut:
    rt = runtime()
    with transaction() as session:
        queueing.set_open(session, rt.settings, current_merchant_id(), store_id, is_open, body.bands, rt.now())
        return _board(session, store_id)


@operation(merchant_bp, "/stores/<int:store_id>/queue/open", "POST",
           summary="Open bands for new numbers (all when bands is absent; the defaults on first use)",
           auth="merchant", body=OpenIn, response=BoardOut, errors=("store.not_found", "queue.band_not_found"))
def open_queue(store_id: int, body: OpenIn) -> BoardOut:
    return _set_open(store_id, body, True)


@operation(merchant_bp, "/stores/<int:store_id>/queue/close", "POST",
           summary="Stop new numbers in bands (all when bands is absent); the line is still served",
           auth="merchant", body=OpenIn, response=BoardOut, errors=("store.not_found", "queue.band_not_found"))
def close_queue(store_id: int, body: OpenIn) -> BoardOut:
    return _set_open(store_id, body, False)


@operation(merchant_bp, "/stores/<int:store_id>/queue/call", "POST",
           summary="Call the next party of a band: its table is ready (a retry with the request_id calls no other)",
           auth="merchant", body=CallIn, response=TicketOut, status=201, also=REPLAY,
           errors=("store.not_found", "queue.band_not_found", "queue.nobody_waiting"))
def call_next(store_id: int, body: CallIn):
    rt = runtime()
    with transaction() as session:
        done = queueing.call_next(session, rt.senders, rt.settings, current_merchant_id(), store_id, body.band,
                                  body.request_id, rt.now())
        out = _ticket_out(session, done.ticket, replayed=done.replayed)
    return out, 200 if done.replayed else 201


@operation(merchant_bp, "/stores/<int:store_id>/queue/tickets/<int(big=True):ticket_id>/seat", "POST",
           summary="The party is seated (seating again changes nothing)", auth="merchant", response=TicketOut,
           errors=_TICKET)
def seat(store_id: int, ticket_id: int) -> TicketOut:
    rt = runtime()
    with transaction() as session:
        done = queueing.seat(session, rt.senders, rt.settings, current_merchant_id(), store_id, ticket_id, rt.now())
        out = _ticket_out(session, done.ticket, replayed=done.replayed)
    return out


@operation(merchant_bp, "/stores/<int:store_id>/queue/tickets/<int(big=True):ticket_id>/skip", "POST",
           summary="Pass a ticket over: the party is not there (skipping again changes nothing)", auth="merchant",
           response=TicketOut, errors=_TICKET)
def skip(store_id: int, ticket_id: int) -> TicketOut:
    rt = runtime()
    with transaction() as session:
        done = queueing.skip(session, rt.senders, rt.settings, current_merchant_id(), store_id, ticket_id, rt.now())
        out = _ticket_out(session, done.ticket, replayed=done.replayed)
    return out


@operation(merchant_bp, "/stores/<int:store_id>/queue/walk-ins", "POST",
           summary="Give a number to a party without the mini-program (a retry with the request_id returns it)",
           auth="merchant", body=WalkInIn, response=TicketOut, status=201, also=REPLAY,
           errors=("store.not_found", "queue.closed", "queue.no_band", "queue.party_too_large"))
def walk_in(store_id: int, body: WalkInIn):
    rt = runtime()
    with transaction() as session:
        done = queueing.walk_in(session, rt.settings, current_merchant_id(), store_id, body.party_size,
                                body.request_id, rt.now())
        out = _ticket_out(session, done.ticket, replayed=done.replayed, where=done.place)
    return out, 200 if done.replayed else 201
