"""The queue's rules: bands, taking a number, calling, seating, skipping, cancelling and lapsing.

Numbers: a take first numbers its ticket from its band's counter for the mall-local day, by one
upsert (``INSERT … ON CONFLICT DO UPDATE … RETURNING``). The upsert holds the counter's row until
commit, so on PostgreSQL concurrent takes in one band are numbered one after another, and each sees
the tickets numbered before it when it counts the parties ahead. Then it inserts the ticket whole.
A take refused there (the member's other ticket, a walk-in's retry) gives its number back, so
refusals burn no numbers.

One active ticket per member and restaurant: ``active_member_id`` holds the member's id while the
ticket is waiting or called and NULL after, under a unique key with the store; the insert does
nothing on a clash, so of concurrent takes exactly one wins. A call locks its band's row, so calls of
one band run one at a time and a till's retry with the same ``request_id`` finds the first call.

Messages (kind ``queue``, once per ticket by key): "n tables ahead" (``queue:<id>:near``), "your
table is ready" (``queue:<id>:ready``), "your number lapsed" (``queue:<id>:lapsed``), "your number was
passed" when staff skip it (``queue:<id>:skipped``). They are
recorded in the caller's transaction and leave after its commit.
"""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, Engine, Integer, and_, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker

from mallapp import i18n
from mallapp.db import _dialect_insert, get_or_404, id_in_range, insert_or_nothing
from mallapp.domain.notifications import Message, Senders, Text, record_many
from mallapp.domain.queueing.estimator import AT_ONCE_S, Aggregate, Model, Params, fit, naive
from mallapp.domain.queueing.models import ACTIVE, QueueBand, QueueCounter, QueueTicket
from mallapp.domain.venue import Store, store_names
from mallapp.errors import Conflict, InvalidInput, NotFound, RuleViolation
from mallapp.settings import Settings

_LAPSE_BATCH = 200


@dataclass(frozen=True)
class BandSpec:
    code: str
    label: str
    min_party: int
    max_party: int | None


@dataclass(frozen=True)
class Done:
    """A ticket after an operation; ``replayed``: nothing changed (a retry)."""

    ticket: QueueTicket
    replayed: bool = False
    place: Place | None = None  # where a ticket just taken stands (so the reply need not ask again)


@dataclass(frozen=True)
class Place:
    """Where a ticket stands: parties and people waiting ahead in its band, and the estimated wait."""

    ahead: int
    people_ahead: int
    estimate_s: int


@dataclass(frozen=True)
class BandState:
    band: QueueBand
    waiting: int
    people_waiting: int
    estimate_s: int  # for a party taking a number now


# --- time ------------------------------------------------------------------------------------------

def local_minute(settings: Settings, now: datetime) -> int:
    local = now.astimezone(settings.mall.tz)
    return local.hour * 60 + local.minute


# --- stores and bands ------------------------------------------------------------------------------

def own_store(session: Session, merchant_id: int, store_id: int) -> Store:
    """The merchant's store, or NotFound (another merchant's store is not found either)."""
    return get_or_404(session, Store, store_id, code="store.not_found", message=f"no store {store_id} of yours",
                      accept=lambda store: store.merchant_id == merchant_id)


def open_store(session: Session, store_id: int) -> Store:
    """An active store, as members see it, or NotFound."""
    return get_or_404(session, Store, store_id, code="store.not_found", message=f"no store {store_id}",
                      accept=lambda store: store.active)


def bands(session: Session, store_id: int) -> list[QueueBand]:
    return list(session.scalars(select(QueueBand).where(QueueBand.store_id == store_id).order_by(QueueBand.code)))


def _check_specs(specs: Sequence[BandSpec], max_party: int) -> None:
    codes = [s.code for s in specs]
    if not specs or len(set(codes)) != len(codes):
        raise InvalidInput("give one or more bands with distinct codes", code="queue.invalid_bands")
    ranges = sorted((s.min_party, s.max_party if s.max_party is not None else max_party) for s in specs)
    for s in specs:
        if s.max_party is not None and s.max_party < s.min_party:
            raise InvalidInput(f"band {s.code}: max_party is below min_party", code="queue.invalid_bands")
    for (_, hi), (lo, _) in zip(ranges, ranges[1:], strict=False):
        if lo <= hi:
            raise InvalidInput("bands overlap: each party size belongs to one band", code="queue.invalid_bands")


def _ensure_bands(session: Session, settings: Settings, store_id: int, now: datetime) -> list[QueueBand]:
    found = bands(session, store_id)
    if found:
        return found
    for b in settings.queue.bands:
        insert_or_nothing(session, QueueBand, {"store_id": store_id, "code": b.code, "label": b.label,
                                               "min_party": b.min_party, "max_party": b.max_party,
                                               "is_open": False, "updated_at": now}, ["store_id", "code"])
    return bands(session, store_id)


def set_bands(session: Session, settings: Settings, merchant_id: int, store_id: int, specs: Sequence[BandSpec],
              now: datetime) -> list[QueueBand]:
    """Replace the restaurant's bands, all closed; refused while any ticket is active."""
    own_store(session, merchant_id, store_id)
    _check_specs(specs, settings.queue.max_party)
    if _active_count(session, store_id):
        raise Conflict("tickets are still waiting or called; serve them before changing the bands",
                       code="queue.busy")
    wanted = {s.code: s for s in specs}
    for band in bands(session, store_id):
        if band.code not in wanted:
            session.delete(band)
    session.flush()
    existing = {b.code: b for b in bands(session, store_id)}
    for code, s in wanted.items():
        band = existing.get(code) or QueueBand(store_id=store_id, code=code, is_open=False)
        band.label, band.min_party, band.max_party, band.updated_at = s.label, s.min_party, s.max_party, now
        band.is_open = False  # a new set of bands opens when staff open it
        session.add(band)
    session.flush()
    return bands(session, store_id)


def set_open(session: Session, settings: Settings, merchant_id: int, store_id: int, is_open: bool,
             codes: Sequence[str] | None, now: datetime) -> list[QueueBand]:
    """Open or close some bands (all when ``codes`` is None); closing stops new numbers, not the line."""
    own_store(session, merchant_id, store_id)
    found = _ensure_bands(session, settings, store_id, now)
    unknown = set(codes or ()) - {b.code for b in found}
    if unknown:
        raise NotFound(f"no band {', '.join(sorted(unknown))}", code="queue.band_not_found")
    for band in found:
        if codes is None or band.code in codes:
            band.is_open, band.updated_at = is_open, now
    session.flush()
    return found


def _active_count(session: Session, store_id: int) -> int:
    return session.scalar(select(func.count()).where(QueueTicket.store_id == store_id,
                                                     QueueTicket.status.in_(ACTIVE))) or 0


# --- the estimate ----------------------------------------------------------------------------------

def params(settings: Settings) -> Params:
    q = settings.queue
    return Params(q.naive_seconds_per_party, q.half_life_days, q.slot_minutes, q.shrinkage)


def model(session: Session, settings: Settings, store_id: int, now: datetime) -> Model:
    """The estimator fitted on the restaurant's waits of the ``history_days`` days before today.

    Those days are over, so the fit holds all day: each process keeps it for ``_MODEL_TTL_S``
    (a ticket left from yesterday and called today changes it a little; it shows within minutes).
    """
    today = settings.mall.local_day(now)
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    fitted = _models.setdefault(engine, {})
    key = (store_id, today, settings.queue)
    found = fitted.get(key)
    clock = time.monotonic()
    if found is not None and found[0] > clock:
        return found[1]
    if len(fitted) >= _MODELS_KEPT:
        fitted.clear()
    fitted[key] = (clock + _MODEL_TTL_S, _fit(session, settings, store_id, today))
    return fitted[key][1]


# Fitted models per database (a test's engine, the process's one), store, day and queue settings.
_models: weakref.WeakKeyDictionary[Engine, dict[tuple[int, date, Any], tuple[float, Model]]] = (
    weakref.WeakKeyDictionary())
_MODEL_TTL_S = 300.0
_MODELS_KEPT = 4096


def _fit(session: Session, settings: Settings, store_id: int, today: date) -> Model:
    p = params(settings)
    rows = session.execute(_history(p.slot_minutes),
                           {"store_id": store_id, "since": today - timedelta(days=settings.queue.history_days),
                            "today": today})
    return fit([Aggregate(band, (today - day).days, int(slot), int(n), float(sx), float(sy), float(sxx), float(sxy),
                          int(fn), int(fa), float(fy))
                for band, day, slot, n, sx, sy, sxx, sxy, fn, fa, fy in rows], p)


@functools.cache
def _history(slot_minutes: int) -> Any:
    """The sums the estimator needs per band, day and time-of-day slot (one GROUP BY), built once."""
    t = QueueTicket
    has_ahead = t.ahead_at_take > 0
    return (select(t.band, t.day, (t.taken_minute // slot_minutes).label("slot"),
                   func.sum(case((has_ahead, 1), else_=0)), func.sum(case((has_ahead, t.ahead_at_take), else_=0)),
                   func.sum(case((has_ahead, t.wait_s), else_=0)),
                   func.sum(case((has_ahead, t.ahead_at_take * t.ahead_at_take), else_=0)),
                   func.sum(case((has_ahead, t.ahead_at_take * t.wait_s), else_=0)),
                   func.sum(case((has_ahead, 0), else_=1)),
                   func.sum(case((and_(~has_ahead, t.wait_s <= AT_ONCE_S), 1), else_=0)),
                   func.sum(case((has_ahead, 0), else_=t.wait_s)))
            .where(t.store_id == bindparam("store_id"), t.day >= bindparam("since"), t.day < bindparam("today"),
                   t.wait_s.is_not(None))
            .group_by(t.band, t.day, "slot"))


def _ahead(session: Session, store_id: int, band: str, day: date, number: int) -> tuple[int, int]:
    """Parties, and people in them, waiting in the band before number ``number`` of ``day``."""
    ahead, people = session.execute(_ahead_count(), {"store_id": store_id, "band": band, "day": day,
                                                     "number": number}).one()
    return ahead, int(people)


@functools.cache
def _ahead_count() -> Any:
    t = QueueTicket
    day, number = bindparam("day", type_=Date), bindparam("number", type_=Integer)
    return (select(func.count(), func.coalesce(func.sum(t.party_size), 0))
            .where(t.store_id == bindparam("store_id"), t.band == bindparam("band"), t.status == "waiting",
                   or_(t.day < day, and_(t.day == day, t.number < number))))


def place(session: Session, settings: Settings, ticket: QueueTicket, now: datetime,
          fitted: Model | None = None) -> Place | None:
    """Where a waiting ticket stands now (None once it is not waiting)."""
    if ticket.status != "waiting":
        return None
    ahead, people = _ahead(session, ticket.store_id, ticket.band, ticket.day, ticket.number or 0)
    fitted = fitted or model(session, settings, ticket.store_id, now)
    return Place(ahead, people, fitted.estimate(ticket.band, local_minute(settings, now), ahead))


def states(session: Session, settings: Settings, store_id: int, now: datetime,
           fitted: Model | None = None) -> list[BandState]:
    """Each band of the restaurant: open or not, who waits, and the wait for a party taking a number now."""
    found = bands(session, store_id)
    counts = {band: (n, int(people)) for band, n, people in session.execute(
        select(QueueTicket.band, func.count(), func.coalesce(func.sum(QueueTicket.party_size), 0))
        .where(QueueTicket.store_id == store_id, QueueTicket.status == "waiting").group_by(QueueTicket.band))}
    fitted = fitted or (model(session, settings, store_id, now) if found else None)
    minute = local_minute(settings, now)
    out = []
    for band in found:
        n, people = counts.get(band.code, (0, 0))
        out.append(BandState(band, n, people, fitted.estimate(band.code, minute, n) if fitted else 0))
    return out


# --- taking a number -------------------------------------------------------------------------------

def _next_number(session: Session, store_id: int, band: str, day: date) -> int:
    """The band's next number that day; the counter's row stays locked until the transaction ends."""
    stmt = _counter_upsert(session.get_bind().dialect.name)
    return session.execute(stmt, {"store_id": store_id, "band": band, "day": day}).scalar_one()


@functools.cache
def _counter_upsert(dialect: str) -> Any:
    insert = _dialect_insert(dialect)
    return (insert(QueueCounter.__table__).values(last_number=1)
            .on_conflict_do_update(index_elements=["store_id", "band", "day"],
                                   set_={"last_number": QueueCounter.__table__.c.last_number + 1})
            .returning(QueueCounter.__table__.c.last_number))


def _give_back_number(session: Session, store_id: int, band: str, day: date) -> None:
    session.execute(update(QueueCounter).where(QueueCounter.store_id == store_id, QueueCounter.band == band,
                                               QueueCounter.day == day)
                    .values(last_number=QueueCounter.last_number - 1))


def _insert_ticket(session: Session, by_member: bool, values: dict[str, Any]) -> QueueTicket | None:
    """Insert a waiting ticket, or nothing when the member already holds one here (or the walk-in's
    request id was used): on PostgreSQL a concurrent insert of the same key waits, then does nothing."""
    ticket_id = insert_or_nothing(session, QueueTicket, values,
                                  ["store_id", "active_member_id"] if by_member else ["store_id", "request_id"])
    if ticket_id is None:
        return None
    # The row is exactly these values: the session takes it as loaded, with no SELECT to read it back.
    ticket = QueueTicket(id=ticket_id, **values)
    make_transient_to_detached(ticket)
    session.add(ticket)
    return ticket


def _walk_in(session: Session, store_id: int, request_id: str) -> QueueTicket | None:
    return session.scalar(select(QueueTicket).where(QueueTicket.store_id == store_id,
                                                    QueueTicket.request_id == request_id))


def _active_ticket(session: Session, store_id: int, member_id: int) -> QueueTicket | None:
    return session.scalar(select(QueueTicket).where(QueueTicket.store_id == store_id,
                                                    QueueTicket.active_member_id == member_id))


def _refuse_second(existing: QueueTicket | None) -> Conflict:
    details = {"ticket_id": existing.id, "ticket_no": existing.ticket_no} if existing is not None else {}
    return Conflict("you already hold a number at this restaurant; cancel it to take another",
                    code="queue.ticket_active", details=details)


def _take(session: Session, settings: Settings, store_id: int, found: list[QueueBand], party_size: int,
          now: datetime, member_id: int | None, request_id: str | None) -> Done:
    if not 1 <= party_size <= settings.queue.max_party:
        raise RuleViolation(f"parties of 1 to {settings.queue.max_party} people take a number here",
                            code="queue.party_too_large")
    if request_id is not None and (earlier := _walk_in(session, store_id, request_id)) is not None:
        return Done(earlier, replayed=True)
    band = next((b for b in found if b.min_party <= party_size and (b.max_party is None or party_size <= b.max_party)),
                None)
    if band is None:
        if not found:
            raise Conflict("this restaurant's queue is not open", code="queue.closed")
        raise RuleViolation(f"no queue here takes parties of {party_size}", code="queue.no_band")
    if not band.is_open:
        raise Conflict(f"the queue for {band.label} is not open now", code="queue.closed",
                       details={"band": band.code})
    day, minute = settings.mall.local_day(now), local_minute(settings, now)
    fitted = model(session, settings, store_id, now)  # before the counter is locked: it is held until commit
    number = _next_number(session, store_id, band.code, day)
    # Every ticket numbered before this one has committed (its take held the counter), so the count is true.
    ahead, people = _ahead(session, store_id, band.code, day, number)
    estimate = fitted.estimate(band.code, minute, ahead)
    ticket = _insert_ticket(session, member_id is not None, {
        "store_id": store_id, "band": band.code, "day": day, "number": number,
        "ticket_no": f"{band.code}{number:03d}", "party_size": party_size, "member_id": member_id,
        "active_member_id": member_id, "status": "waiting", "request_id": request_id, "call_request_id": None,
        "taken_at": now, "taken_minute": minute, "ahead_at_take": ahead, "estimate_s": estimate,
        "naive_estimate_s": naive(ahead, settings.queue.naive_seconds_per_party), "called_at": None,
        "wait_s": None, "lapses_at": None, "ended_at": None,
        "near_notified": ahead <= settings.queue.near_tables_ahead})  # no "n ahead" news at take time
    if ticket is None:
        # A concurrent take won: the member's other ticket, or this walk-in's first try. The number
        # goes back (nobody can have taken a later one: this take still holds the counter).
        _give_back_number(session, store_id, band.code, day)
        if member_id is not None:
            raise _refuse_second(_active_ticket(session, store_id, member_id))
        earlier = _walk_in(session, store_id, request_id or "")
        assert earlier is not None
        return Done(earlier, replayed=True)
    return Done(ticket, place=Place(ahead, people, estimate))


def take(session: Session, settings: Settings, member_id: int, store_id: int, party_size: int,
         now: datetime) -> Done:
    """A member takes a number for a party; one active ticket per restaurant."""
    rows = session.execute(_open_store_bands(), {"store_id": store_id}).all() if id_in_range(store_id) else []
    if not rows:
        raise NotFound(f"no store {store_id}", code="store.not_found")
    return _take(session, settings, store_id, [band for band, in rows if band is not None], party_size, now,
                 member_id, None)


@functools.cache
def _open_store_bands() -> Any:
    """An active store's bands: a store without bands gives one row of None, a missing or inactive one none."""
    return (select(QueueBand).select_from(Store)
            .outerjoin(QueueBand, QueueBand.store_id == Store.id)
            .where(Store.id == bindparam("store_id"), Store.active).order_by(QueueBand.code))


def walk_in(session: Session, settings: Settings, merchant_id: int, store_id: int, party_size: int,
            request_id: str, now: datetime) -> Done:
    """Staff give a number to a party without the mini-program; a retry with the request id returns it."""
    own_store(session, merchant_id, store_id)
    return _take(session, settings, store_id, bands(session, store_id), party_size, now, None, request_id)


# --- messages --------------------------------------------------------------------------------------

def _message(settings: Settings, ticket: QueueTicket, store_name: str, what: str, ahead: int = 0) -> Message:
    minutes = max(1, settings.queue.grace_s // 60)
    ticket_no = ticket.ticket_no

    def render(locale: str) -> Text:
        where = i18n.t(locale, "member.queue.where", store=store_name, ticket_no=ticket_no)
        if what == "near":
            title_key = ("member.queue.next.title" if ahead == 0 else "member.queue.near_one.title" if ahead == 1
                         else "member.queue.near.title")
            title, body = i18n.t(locale, title_key, ahead=ahead), i18n.t(locale, "member.queue.near.body", where=where)
        else:
            title = i18n.t(locale, f"member.queue.{what}.title")
            body = i18n.t(locale, f"member.queue.{what}.body", where=where, minutes=minutes)
        return Text(title, body, {"store": store_name, "ticket_no": ticket_no, "ahead": str(ahead)})

    return Message(kind="queue", key=f"queue:{ticket.id}:{what}", text=render, store_id=ticket.store_id,
                   page=f"{settings.queue.page}?id={ticket.id}")


def _send(session: Session, senders: Senders, settings: Settings, items: list[tuple[int, Message]],
          now: datetime) -> None:
    """Record the members' messages; they leave after the caller's commit."""
    if items:
        record_many(session, settings, items, now, senders.online([m for m, _ in items]))


def _near_items(session: Session, settings: Settings, store_id: int, band: str, store_name: str) -> list[tuple[int, Message]]:
    """"n tables ahead" for the members who now stand within n of the front and were not told yet."""
    n = settings.queue.near_tables_ahead
    if n <= 0:
        return []
    front = list(session.scalars(select(QueueTicket).where(
        QueueTicket.store_id == store_id, QueueTicket.band == band, QueueTicket.status == "waiting")
        .order_by(QueueTicket.day, QueueTicket.number).limit(n + 1)))
    items = []
    for ahead, ticket in enumerate(front):
        if ticket.member_id is not None and not ticket.near_notified:
            ticket.near_notified = True
            items.append((ticket.member_id, _message(settings, ticket, store_name, "near", ahead)))
    return items


def _moved(session: Session, senders: Senders, settings: Settings, ticket: QueueTicket, line_moved: bool,
           what: str | None, now: datetime) -> None:
    name = store_names(session, [ticket.store_id]).get(ticket.store_id, "")
    items = [(ticket.member_id, _message(settings, ticket, name, what))] if what and ticket.member_id else []
    if line_moved:
        items += _near_items(session, settings, ticket.store_id, ticket.band, name)
    session.flush()
    _send(session, senders, settings, items, now)


# --- staff -----------------------------------------------------------------------------------------

def call_next(session: Session, senders: Senders, settings: Settings, merchant_id: int, store_id: int, band_code: str,
              request_id: str, now: datetime) -> Done:
    """Call the first party waiting in a band; the same request id again returns that call, never a second."""
    own_store(session, merchant_id, store_id)
    # The band's row is the lock: calls of one band run one at a time, so a retry sees the first.
    band = session.scalar(select(QueueBand).where(QueueBand.store_id == store_id, QueueBand.code == band_code)
                          .with_for_update())
    if band is None:
        raise NotFound(f"no band {band_code}", code="queue.band_not_found")
    earlier = session.scalar(select(QueueTicket).where(QueueTicket.store_id == store_id,
                                                       QueueTicket.call_request_id == request_id))
    if earlier is not None:
        return Done(earlier, replayed=True)
    ticket = None
    for _ in range(3):  # a member's cancel may take the first row from under the lock; look again
        ticket = session.scalar(select(QueueTicket).where(QueueTicket.store_id == store_id,
                                                          QueueTicket.band == band_code,
                                                          QueueTicket.status == "waiting")
                                .order_by(QueueTicket.day, QueueTicket.number).limit(1).with_for_update()
                                .execution_options(populate_existing=True))
        if ticket is not None:
            break
    if ticket is None:
        raise Conflict(f"nobody is waiting in band {band_code}", code="queue.nobody_waiting")
    ticket.status, ticket.called_at, ticket.call_request_id = "called", now, request_id
    ticket.wait_s = max(0, int((now - ticket.taken_at).total_seconds()))
    ticket.lapses_at = now + timedelta(seconds=settings.queue.grace_s)
    _moved(session, senders, settings, ticket, True, "ready", now)
    return Done(ticket)


def _own_ticket(session: Session, store_id: int, ticket_id: int, member_id: int | None = None) -> QueueTicket:
    return get_or_404(session, QueueTicket, ticket_id, code="queue.ticket_not_found", message=f"no ticket {ticket_id}",
                      lock=True, accept=lambda ticket: (not store_id or ticket.store_id == store_id)
                      and (member_id is None or ticket.member_id == member_id))


def _end(session: Session, senders: Senders, settings: Settings, ticket: QueueTicket, status: str,
         now: datetime, what: str | None = None) -> Done:
    if ticket.status == status:
        return Done(ticket, replayed=True)
    if ticket.status not in ACTIVE:
        raise Conflict(f"this ticket is already {ticket.status}", code="queue.ticket_closed",
                       details={"status": ticket.status})
    was_waiting = ticket.status == "waiting"
    if status == "seated" and ticket.called_at is None:  # seated straight from the line
        ticket.called_at, ticket.wait_s = now, max(0, int((now - ticket.taken_at).total_seconds()))
    ticket.status, ticket.ended_at, ticket.active_member_id = status, now, None
    _moved(session, senders, settings, ticket, was_waiting, what, now)
    return Done(ticket)


def seat(session: Session, senders: Senders, settings: Settings, merchant_id: int, store_id: int, ticket_id: int,
         now: datetime) -> Done:
    """The party is at its table (from called, or straight from the line); seating again changes nothing."""
    own_store(session, merchant_id, store_id)
    return _end(session, senders, settings, _own_ticket(session, store_id, ticket_id), "seated", now)


def skip(session: Session, senders: Senders, settings: Settings, merchant_id: int, store_id: int, ticket_id: int,
         now: datetime) -> Done:
    """Pass a ticket over (the party is not there) and tell its member; skipping again changes nothing."""
    own_store(session, merchant_id, store_id)
    return _end(session, senders, settings, _own_ticket(session, store_id, ticket_id), "skipped", now, "skipped")


def active_tickets(session: Session, store_id: int) -> list[QueueTicket]:
    return list(session.scalars(select(QueueTicket).where(QueueTicket.store_id == store_id,
                                                          QueueTicket.status.in_(ACTIVE))
                                .order_by(QueueTicket.band, QueueTicket.day, QueueTicket.number)))


# --- members ---------------------------------------------------------------------------------------

def cancel(session: Session, senders: Senders, settings: Settings, member_id: int, ticket_id: int, now: datetime) -> Done:
    """The member gives up their ticket; cancelling again changes nothing; another's ticket is not found."""
    return _end(session, senders, settings, _own_ticket(session, 0, ticket_id, member_id), "cancelled", now)


def member_ticket(session: Session, member_id: int, ticket_id: int) -> QueueTicket:
    return get_or_404(session, QueueTicket, ticket_id, code="queue.ticket_not_found", message=f"no ticket {ticket_id}",
                      accept=lambda ticket: ticket.member_id == member_id)


def member_tickets(session: Session, member_id: int, limit: int) -> list[QueueTicket]:
    """The member's tickets, newest first."""
    return list(session.scalars(select(QueueTicket).where(QueueTicket.member_id == member_id)
                                .order_by(QueueTicket.id.desc()).limit(limit)))


# --- the clock -------------------------------------------------------------------------------------

def lapse_due(sessions: sessionmaker[Session], settings: Settings, senders: Senders, now: datetime,
              keep_going: Callable[[], bool] | None = None) -> int:
    """Lapse called tickets past their grace, and tickets left from earlier days; tell their members.

    Idempotent: a lapsed ticket is not due again, and its message goes once by key. Each batch
    commits before its messages go out; a crash in between leaves them in the inbox (and their
    pending deliveries to ``notifications.settle_abandoned``). Rows another run holds are skipped.
    ``keep_going`` (the clock's lock check) is asked before each batch; no stops the run.
    """
    today, total = settings.mall.local_day(now), 0
    while keep_going is None or keep_going():
        with sessions.begin() as session:
            due = list(session.scalars(
                select(QueueTicket).where(or_(and_(QueueTicket.status == "called", QueueTicket.lapses_at <= now),
                                              and_(QueueTicket.status.in_(ACTIVE), QueueTicket.day < today)))
                .order_by(QueueTicket.id).limit(_LAPSE_BATCH).with_for_update(skip_locked=True)))
            names = store_names(session, {t.store_id for t in due})
            items = []
            for ticket in due:
                ticket.status, ticket.ended_at, ticket.active_member_id = "lapsed", now, None
                if ticket.member_id is not None:
                    items.append((ticket.member_id, _message(settings, ticket, names.get(ticket.store_id, ""),
                                                             "lapsed")))
            session.flush()
            _send(session, senders, settings, items, now)
        total += len(due)
        if len(due) < _LAPSE_BATCH:
            break
    return total

