"""What the mall's operations see of parking: sessions by plate and time, and a report per mall-local day.

Sessions are listed newest entry first, a page at a time (keyset on ``(entered_at, id)``: the cursor is
the last id of the previous page). The day report adds up, per mall-local day of one car park: entries
and exits, exits a member of staff opened with money still due, the cash taken, the benefits given and
how full the car park was (docs/parking.md, "Operations"). Everything is aggregated in SQL over the
indexed columns (sessions' entered_at and exited_at, payments' and benefits' local_day): occupancy too,
from the range's entries and exits in time order (a running count by window function); Python only
carries each day's count of cars into the next.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, case, cast, func, literal, or_, select, union_all
from sqlalchemy.orm import Session

from mallapp.domain.parking import plates
from mallapp.domain.parking.models import (
    BENEFIT_KINDS,
    CarPark,
    ParkingBenefit,
    ParkingLevel,
    ParkingPayment,
    ParkingSession,
)
from mallapp.errors import InvalidInput, NotFound
from mallapp.settings import MallSettings

MAX_DAYS = 92
MIN_PREFIX = 3
_SEPARATORS = re.compile(r"[\s·•．.\-_]")  # as plates.normalize drops them


# --- car parks -----------------------------------------------------------------------------------

def car_park(session: Session, code: str) -> CarPark:
    row = session.scalar(select(CarPark).where(CarPark.code == code))
    if row is None:
        raise NotFound(f"No car park {code!r}.", code="parking.car_park_not_found")
    return row


def day_range(mall: MallSettings, since: date | None, until: date | None, now: datetime) -> list[date]:
    """The mall-local days from ``since`` to ``until`` included (default: the last 7 days to today)."""
    until = until or mall.local_day(now)
    since = since or until - timedelta(days=6)
    if since > until:
        raise InvalidInput("from is after to.", code="parking.invalid_range")
    if (until - since).days + 1 > MAX_DAYS:
        raise InvalidInput(f"At most {MAX_DAYS} days at a time.", code="parking.invalid_range")
    return [since + timedelta(days=n) for n in range((until - since).days + 1)]


# --- sessions ------------------------------------------------------------------------------------

def plate_filter(text: str) -> tuple[str, bool]:
    """``(plate, exact)``: a whole plate normalised, else a prefix of at least 3 characters, upper case."""
    try:
        return plates.normalize(text), True
    except InvalidInput:
        prefix = _SEPARATORS.sub("", unicodedata.normalize("NFKC", str(text))).upper()
        if len(prefix) < MIN_PREFIX:
            raise InvalidInput(f"A plate, or its first {MIN_PREFIX} characters or more (沪A1).",
                               code="parking.plate_invalid") from None
        return prefix, False


def search(session: Session, *, plate: str | None = None, car_park_id: int | None = None,
           since: datetime | None = None, until: datetime | None = None, status: str | None = None,
           exit_kind: str | None = None, limit: int = 50, before_id: int | None = None) -> list[ParkingSession]:
    """Sessions matching every filter given, newest entry first; ``since``/``until`` bound ``entered_at``
    (``[since, until)``); ``before_id`` continues after that session of the previous page."""
    query = select(ParkingSession)
    if plate is not None:
        value, exact = plate_filter(plate)
        like = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(ParkingSession.plate == value if exact else ParkingSession.plate.like(like, escape="\\"))
    if car_park_id is not None:
        query = query.where(ParkingSession.car_park_id == car_park_id)
    if since is not None:
        query = query.where(ParkingSession.entered_at >= since)
    if until is not None:
        query = query.where(ParkingSession.entered_at < until)
    if status is not None:
        query = query.where(ParkingSession.status == status)
    if exit_kind is not None:
        query = query.where(ParkingSession.exit_kind == exit_kind)
    if before_id is not None:
        cursor = session.get(ParkingSession, before_id)
        if cursor is None:
            raise InvalidInput("before_id names no session.", code="parking.invalid_cursor")
        query = query.where(or_(ParkingSession.entered_at < cursor.entered_at,
                                and_(ParkingSession.entered_at == cursor.entered_at, ParkingSession.id < cursor.id)))
    query = query.order_by(ParkingSession.entered_at.desc(), ParkingSession.id.desc()).limit(limit)
    return list(session.scalars(query))


@dataclass(frozen=True)
class SessionDetail:
    row: ParkingSession
    car_park_code: str
    payments: list[ParkingPayment]
    benefits: list[ParkingBenefit]


def detail(session: Session, session_id: int) -> SessionDetail:
    row = session.get(ParkingSession, session_id)
    if row is None:
        raise NotFound("No such parking session.", code="parking.session_not_found")
    payments = session.scalars(select(ParkingPayment).where(ParkingPayment.session_id == row.id)
                               .order_by(ParkingPayment.id))
    benefits = session.scalars(select(ParkingBenefit).where(ParkingBenefit.session_id == row.id)
                               .order_by(ParkingBenefit.id))
    code = session.scalar(select(CarPark.code).where(CarPark.id == row.car_park_id)) or ""
    return SessionDetail(row, code, list(payments), list(benefits))


def car_park_codes(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {park_id: code for park_id, code in session.execute(select(CarPark.id, CarPark.code)
                                                               .where(CarPark.id.in_(ids)))}


# --- the day report ------------------------------------------------------------------------------

@dataclass
class BenefitFigures:
    count: int = 0
    seconds: int = 0
    fen: int = 0
    points: int = 0


@dataclass
class DayFigures:
    day: date
    entries: int = 0
    exits: int = 0
    staff_exits: int = 0
    staff_unpaid_fen: int = 0
    payments: int = 0
    cash_fen: int = 0
    refunded_fen: int = 0
    benefits: dict[str, BenefitFigures] = field(default_factory=lambda: {k: BenefitFigures() for k in BENEFIT_KINDS})
    average_cars: float | None = None  # None: the day has not begun
    peak_cars: int | None = None

    @property
    def revenue_fen(self) -> int:
        return self.cash_fen - self.refunded_fen


@dataclass(frozen=True)
class DayReport:
    car_park: CarPark
    spaces: int
    days: list[DayFigures]


def _day_of(session: Session, column: Any, epoch: Any, bounds: Sequence[tuple[datetime, datetime]]) -> Any:
    """The index of the day an instant falls in. On PostgreSQL, when every day of the range has 24 hours
    (no daylight-saving change: always so in China), arithmetic on its exact epoch seconds (numeric);
    else a CASE over the days' UTC bounds, so a daylight-saving day is as long as the wall clock says
    (and SQLite's floating-point epoch never puts an event at midnight on the wrong side)."""
    if _postgresql(session) and all(end - start == timedelta(days=1) for start, end in bounds):
        return cast(func.floor((epoch - int(bounds[0][0].timestamp())) / 86400), Integer)  # midnight: whole seconds
    return case(*[(column < end, n) for n, (_, end) in enumerate(bounds)], else_=None)


def day_report(session: Session, mall: MallSettings, car_park_id: int, days: Sequence[date],
               now: datetime) -> DayReport:
    park = session.get(CarPark, car_park_id)
    if park is None:
        raise NotFound("No such car park.", code="parking.car_park_not_found")
    bounds = [mall.day_bounds(day) for day in days]
    figures = [DayFigures(day) for day in days]
    S = ParkingSession

    _stays(session, car_park_id, bounds, figures, now)

    by_day = {day: row for day, row in zip(days, figures, strict=True)}
    P = ParkingPayment
    # Payments and benefits name their session, not the car park: with one car park in the mall (the usual
    # case) every row is its own, and the join to a year of sessions is skipped.
    only = session.scalar(select(func.count()).select_from(CarPark)) == 1
    paid_query = select(P.local_day, func.count(), func.sum(P.cash_fen), func.sum(P.refunded_fen)).where(
        P.local_day >= days[0], P.local_day <= days[-1], P.status == "paid")
    if not only:
        paid_query = paid_query.join(S, S.id == P.session_id).where(S.car_park_id == car_park_id)
    paid = session.execute(paid_query.group_by(P.local_day))
    for day, count, cash, refunded in paid:
        row = by_day[day]
        row.payments, row.cash_fen, row.refunded_fen = count, int(cash or 0), int(refunded or 0)

    B = ParkingBenefit
    given_query = (select(B.local_day, B.kind, func.count(), func.sum(B.seconds), func.sum(B.fen), func.sum(B.points))
                   .join(P, P.id == B.payment_id)
                   .where(B.local_day >= days[0], B.local_day <= days[-1], B.voided_at.is_(None), P.status == "paid"))
    if not only:
        given_query = given_query.join(S, S.id == B.session_id).where(S.car_park_id == car_park_id)
    given = session.execute(given_query.group_by(B.local_day, B.kind))
    for day, kind, count, seconds, fen, points in given:
        by_day[day].benefits[kind] = BenefitFigures(count, int(seconds or 0), int(fen or 0), int(points or 0))

    spaces = session.scalar(select(func.coalesce(func.sum(ParkingLevel.spaces), 0))
                            .where(ParkingLevel.car_park_id == car_park_id)) or 0
    return DayReport(park, int(spaces), figures)


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _epoch(session: Session, column: Any) -> Any:
    """Seconds since 1970 of a UTC timestamp column, as a number SQL can add up."""
    if _postgresql(session):
        return func.extract("epoch", column)
    return (func.julianday(column) - 2440587.5) * 86400.0


def _stays(session: Session, car_park_id: int, bounds: Sequence[tuple[datetime, datetime]],
           figures: list[DayFigures], now: datetime) -> None:
    """Entries, exits (staff-opened, unpaid) and occupancy per day, from one aggregate over the range's
    entries (+1) and exits (-1) in time order.

    With N(t) the cars in at t, a day [ds, de) holds N(ds)·(de − ds) + Σ delta·(de − t) car-seconds over its
    events; N at the range's start is counted once, and each day's start follows from the days before.
    The peak is the highest running count after an event (exits before entries at one instant: a car
    leaving is not counted with the one coming). Today stops at ``now``; a day not begun has none.
    """
    S = ParkingSession
    start, end = bounds[0][0], bounds[-1][1]
    mine, staff = S.car_park_id == car_park_id, S.exit_kind == "staff"
    one, none = literal(1, Integer), literal(0, Integer)
    came = select(S.entered_at.label("t"), one.label("delta"), none.label("staff"), none.label("unpaid")).where(
        mine, S.entered_at >= start, S.entered_at < end)
    left = select(S.exited_at, literal(-1, Integer), case((staff, 1), else_=0),
                  case((staff, func.coalesce(S.unpaid_fen, 0)), else_=0)).where(
        mine, S.exited_at >= start, S.exited_at < end, or_(S.exited_at > start, S.entered_at >= start))
    events = union_all(came, left).subquery()
    at = _epoch(session, events.c.t)
    ordered = select(_day_of(session, events.c.t, at, bounds).label("d"), events.c.delta, events.c.staff,
                     events.c.unpaid, at.label("at"),
                     func.sum(events.c.delta).over(order_by=(events.c.t, events.c.delta), rows=(None, 0))
                     .label("running")).subquery()
    o = ordered.c
    per_day = {row.d: row for row in session.execute(
        select(o.d, func.sum(case((o.delta == 1, 1), else_=0)).label("entries"),
               func.sum(case((o.delta == -1, 1), else_=0)).label("exits"), func.sum(o.staff).label("staff"),
               func.sum(o.unpaid).label("unpaid"), func.sum(o.delta).label("net"),
               func.sum(o.delta * o.at).label("weighted"), func.max(o.running).label("peak"))
        .group_by(o.d))}
    before = (session.scalar(select(func.count()).select_from(S).where(mine, S.entered_at < start, S.exited_at > start))
              or 0) + (session.scalar(select(func.count()).select_from(S).where(
                  mine, S.entered_at < start, S.exited_at.is_(None))) or 0)
    # A day whose start is itself an entry or exit: N(ds) is among the running counts (and a car leaving at
    # midnight is not in the next day at all); otherwise N(ds) is the count carried over.
    starts = [b for b, _ in bounds]
    on_start = set(session.scalars(select(S.entered_at).where(mine, S.entered_at.in_(starts))))
    on_start |= set(session.scalars(select(S.exited_at).where(mine, S.exited_at.in_(starts),
                                                              or_(S.exited_at > start, S.entered_at >= start))))
    cars = before
    for index, (row, (day_start, day_end)) in enumerate(zip(figures, bounds, strict=True)):
        agg = per_day.get(index)
        if agg is not None:
            row.entries, row.exits = int(agg.entries or 0), int(agg.exits or 0)
            row.staff_exits, row.staff_unpaid_fen = int(agg.staff or 0), int(agg.unpaid or 0)
        ds, de = day_start.timestamp(), min(day_end, now).timestamp()
        if de <= ds:
            continue
        area, peak = cars * (de - ds), cars
        if agg is not None:
            area += int(agg.net) * de - float(agg.weighted)
            peak = before + int(agg.peak) if day_start in on_start else max(peak, before + int(agg.peak))
            cars += int(agg.net)
        row.average_cars, row.peak_cars = area / (de - ds), peak
