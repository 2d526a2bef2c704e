"""Parking for the mall's operations (docs/parking.md, "Operations"): sessions by plate and time, the
report per mall-local day, and the reconciliation of each day's payments with the car park.

Reading is any ops user ("ops"); running a reconciliation now is an admin's ("ops_admin"). Sessions name
their member by id only, never a phone number.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from flask import Blueprint
from pydantic import BeforeValidator, ConfigDict, Field

from mallapp.api.core import Body, Out, Query, operation, runtime, transaction
from mallapp.domain.parking import reconcile, reports
from mallapp.domain.parking.reports import DayFigures
from mallapp.errors import InvalidInput

bp = Blueprint("parking_reports", __name__, url_prefix="/api/v1/ops/parking")
log = logging.getLogger(__name__)

CarParkCode = Annotated[str, Field(min_length=1, max_length=32, description="the car park's code (ours), e.g. P1")]
Status = Literal["parked", "left", "closed_stale"]       # models.SESSION_STATUSES
ExitKind = Literal["camera", "staff", "unknown"]          # models.EXIT_KINDS
Instant = Annotated[str, Field(max_length=40, description="a mall-local day YYYY-MM-DD, or an instant with its "
                                                          "offset (2026-03-10T08:00:00+08:00)")]


def _day_text(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("a day is YYYY-MM-DD")
    return value


Day = Annotated[date, BeforeValidator(_day_text), Field(ge=date(2000, 1, 1), le=date(2999, 12, 31))]
BodyDay = Annotated[date, Field(ge=date(2000, 1, 1), le=date(2999, 12, 31), description="a mall-local day")]


def _instant(text: str, field: str, *, end: bool) -> datetime:
    """A day is its mall-local start (``from``) or the start of the next day (``to``: the day included)."""
    mall = runtime().settings.mall
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            bounds = mall.day_bounds(date.fromisoformat(text))
        except ValueError:
            bounds = None
        if bounds is not None:
            return bounds[1] if end else bounds[0]
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise InvalidInput(f"{field}: a day (YYYY-MM-DD) or an instant with its offset.", code="request.invalid_query",
                           details={"problems": [{"field": field, "problem": "not a day or an aware instant",
                                                   "kind": "day_or_instant"}]})
    return at.astimezone(UTC)


class _Row(Out):
    model_config = ConfigDict(from_attributes=True)


# --- sessions --------------------------------------------------------------------------------------

class SessionsQuery(Query):
    plate: str | None = Field(default=None, max_length=20,
                              description="a whole plate (exact, after normalising), or its first 3+ characters")
    car_park: CarParkCode | None = None
    from_: Instant | None = Field(default=None, alias="from", description="entered at or after (a day: its start)")
    to: Instant | None = Field(default=None, description="entered before (a day: that day included)")
    status: Status | None = None
    exit_kind: ExitKind | None = Field(default=None, description="staff: exits staff opened with money due")
    limit: int = Field(default=50, ge=1, le=200)
    before_id: int | None = Field(default=None, ge=1, description="the last id of the previous page")


class SessionOut(_Row):
    id: int
    car_park: str
    plate: str
    vehicle_type: str
    order_no: str
    member_id: int | None
    entered_at: datetime
    entry_gate: str | None
    exited_at: datetime | None
    exit_gate: str | None
    status: Status
    exit_kind: ExitKind | None
    unpaid_fen: int | None = Field(description="what was still due when staff opened the exit")
    gross_fen: int | None
    paid_at: datetime | None
    bay_code: str | None
    bay_source: str | None


class SessionsOut(Out):
    sessions: list[SessionOut]
    next_before_id: int | None = Field(description="pass as before_id for the next page; null: the last page")
    unpaid_fen: int = Field(description="the sum of unpaid_fen on this page")


def _session_out(row: Any, codes: dict[int, str]) -> SessionOut:
    return SessionOut.model_validate({**{k: getattr(row, k) for k in SessionOut.model_fields if k != "car_park"},
                                      "car_park": codes.get(row.car_park_id, "")})


@operation(bp, "/sessions", "GET", summary="Parking sessions by plate, car park, entry time, status and exit kind, "
           "newest first", auth="ops", query=SessionsQuery, response=SessionsOut,
           errors=("parking.plate_invalid", "parking.car_park_not_found", "parking.invalid_cursor"))
def list_sessions(query: SessionsQuery) -> SessionsOut:
    since = _instant(query.from_, "from", end=False) if query.from_ else None
    until = _instant(query.to, "to", end=True) if query.to else None
    with transaction() as session:
        park_id = reports.car_park(session, query.car_park).id if query.car_park else None
        rows = reports.search(session, plate=query.plate, car_park_id=park_id, since=since, until=until,
                              status=query.status, exit_kind=query.exit_kind, limit=query.limit + 1,
                              before_id=query.before_id)
        more = len(rows) > query.limit   # one more than asked for: whether a next page exists
        codes = reports.car_park_codes(session, {r.car_park_id for r in rows})
        out = [_session_out(r, codes) for r in rows[:query.limit]]
    return SessionsOut(sessions=out, next_before_id=out[-1].id if more else None,
                       unpaid_fen=sum(s.unpaid_fen or 0 for s in out))


class PaymentOut(_Row):
    id: int
    seq: int
    order_id: str
    member_id: int | None
    payer: str
    status: str
    gross_fen: int
    discount_fen: int
    cash_fen: int
    points: int
    items: list[dict[str, Any]]
    carpark_trade_no: str | None
    wechat_transaction_id: str | None
    refunded_fen: int
    failure_code: str | None
    local_day: date
    created_at: datetime
    paid_at: datetime | None
    settled_at: datetime | None


class BenefitOut(_Row):
    id: int
    payment_id: int
    member_id: int
    kind: str
    seconds: int
    fen: int
    points: int
    coupon_id: int | None
    local_day: date
    voided_at: datetime | None


class SessionDetailOut(SessionOut):
    payments: list[PaymentOut]
    benefits: list[BenefitOut]


@operation(bp, "/sessions/<int:session_id>", "GET", summary="A parking session with its payments and benefits",
           auth="ops", response=SessionDetailOut, errors=("parking.session_not_found",))
def get_session(session_id: int) -> SessionDetailOut:
    with transaction() as session:
        found = reports.detail(session, session_id)
        head = _session_out(found.row, {found.row.car_park_id: found.car_park_code})
        return SessionDetailOut(**head.model_dump(), payments=[PaymentOut.model_validate(p) for p in found.payments],
                                benefits=[BenefitOut.model_validate(b) for b in found.benefits])


# --- the day report --------------------------------------------------------------------------------

class DaysQuery(Query):
    car_park: CarParkCode
    from_: Day | None = Field(default=None, alias="from", description="first mall-local day; default: 6 days "
                                                                      "before to")
    to: Day | None = Field(default=None, description="last mall-local day (included, at most 92 days); default: today")


class BenefitKindOut(Out):
    count: int = Field(description="benefits of this kind on paid payments (for coupons: coupons used)")
    seconds: int = Field(description="free time given")
    hours: float = Field(description="seconds / 3600, two decimals")
    fen: int = Field(description="what they were worth on the bills")
    points: int = Field(description="points spent (kind points)")


class OccupancyOut(Out):
    average_cars: float = Field(description="cars parked, time-weighted over the day (up to now today)")
    peak_cars: int
    average_pct: float | None = Field(description="of the car park's spaces (null: no levels)")
    peak_pct: float | None


class DayOut(Out):
    day: date
    entries: int
    exits: int
    staff_exits: int = Field(description="exits staff opened with money due")
    staff_unpaid_fen: int = Field(description="what those exits still owed")
    payments: int = Field(description="paid payments counted toward the day")
    cash_fen: int
    refunded_fen: int
    revenue_fen: int = Field(description="cash of paid payments minus their refunds")
    benefits: dict[str, BenefitKindOut] = Field(description="by kind: tier, spend, points, coupon")
    occupancy: OccupancyOut | None = Field(description="null for a day not begun")


class DaysOut(Out):
    car_park: str
    spaces: int = Field(description="the sum of its levels' spaces")
    days: list[DayOut]


def _pct(cars: float, spaces: int) -> float | None:
    return round(100 * cars / spaces, 1) if spaces else None


def _day_out(row: DayFigures, spaces: int) -> DayOut:
    occupancy = None
    if row.average_cars is not None and row.peak_cars is not None:
        occupancy = OccupancyOut(average_cars=round(row.average_cars, 2), peak_cars=row.peak_cars,
                                 average_pct=_pct(row.average_cars, spaces), peak_pct=_pct(row.peak_cars, spaces))
    return DayOut(day=row.day, entries=row.entries, exits=row.exits, staff_exits=row.staff_exits,
                  staff_unpaid_fen=row.staff_unpaid_fen, payments=row.payments, cash_fen=row.cash_fen,
                  refunded_fen=row.refunded_fen, revenue_fen=row.revenue_fen, occupancy=occupancy,
                  benefits={kind: BenefitKindOut(count=b.count, seconds=b.seconds, hours=round(b.seconds / 3600, 2),
                                                 fen=b.fen, points=b.points) for kind, b in row.benefits.items()})


@operation(bp, "/days", "GET", summary="Per mall-local day: entries, exits, unpaid exits, revenue, benefits given "
           "and occupancy of one car park", auth="ops", query=DaysQuery, response=DaysOut,
           errors=("parking.car_park_not_found", "parking.invalid_range"))
def get_days(query: DaysQuery) -> DaysOut:
    rt = runtime()
    days = reports.day_range(rt.settings.mall, query.from_, query.to, rt.now())
    with transaction() as session:
        park = reports.car_park(session, query.car_park)
        report = reports.day_report(session, rt.settings.mall, park.id, days, rt.now())
    return DaysOut(car_park=report.car_park.code, spaces=report.spaces,
                   days=[_day_out(row, report.spaces) for row in report.days])


# --- reconciliation --------------------------------------------------------------------------------

class ReconciliationsQuery(Query):
    car_park: CarParkCode | None = None
    from_: Day | None = Field(default=None, alias="from", description="default: 30 days before to")
    to: Day | None = Field(default=None, description="default: today")


class ReconcileIn(Body):
    car_park: CarParkCode
    day: BodyDay


class MismatchOut(Out):
    order_id: str
    problem: Literal["missing_there", "missing_here", "amount_differs"]
    fields: list[Literal["cash", "discount"]] = Field(default_factory=list, description="amount_differs: which")
    ours: dict[str, Any] | None = Field(description="cash_fen, discount_fen, trade_no, paid_at")
    theirs: dict[str, Any] | None = Field(description="the car park's: cash_fen, discount_fen, trade_no, paid_at")


class ReconciliationOut(Out):
    car_park: str
    day: date
    ours: int = Field(description="our paid payments of the day")
    theirs: int = Field(description="the car park's payments of the day")
    mismatches: list[MismatchOut]
    ran_at: datetime


class ReconciliationsOut(Out):
    reconciliations: list[ReconciliationOut]


def _reconciliation_out(row: Any, code: str) -> ReconciliationOut:
    return ReconciliationOut(car_park=code, day=row.day, ours=row.ours, theirs=row.theirs, ran_at=row.ran_at,
                             mismatches=[MismatchOut.model_validate(m) for m in row.mismatches])


@operation(bp, "/reconciliations", "GET", summary="Each day's payments compared with the car park's: the mismatches",
           auth="ops", query=ReconciliationsQuery, response=ReconciliationsOut,
           errors=("parking.car_park_not_found", "parking.invalid_range"))
def list_reconciliations(query: ReconciliationsQuery) -> ReconciliationsOut:
    rt = runtime()
    until = query.to or rt.settings.mall.local_day(rt.now())
    since = query.from_ or date.fromordinal(until.toordinal() - 30)
    if since > until:
        raise InvalidInput("from is after to.", code="parking.invalid_range")
    with transaction() as session:
        park_id = reports.car_park(session, query.car_park).id if query.car_park else None
        rows = reconcile.listed(session, car_park_id=park_id, since=since, until=until)
        codes = reports.car_park_codes(session, {r.car_park_id for r in rows})
        return ReconciliationsOut(reconciliations=[_reconciliation_out(r, codes[r.car_park_id]) for r in rows])


@operation(bp, "/reconciliations", "POST", summary="Reconcile one car park's day with the car park now "
           "(replaces that day's earlier run)", auth="ops_admin", body=ReconcileIn, response=ReconciliationOut,
           errors=("parking.car_park_not_found", "parking.day_not_over", "carpark.unavailable"))
def run_reconciliation(body: ReconcileIn) -> ReconciliationOut:
    rt = runtime()
    if body.day >= rt.settings.mall.local_day(rt.now()):
        raise InvalidInput("Only a day that is over can be reconciled (today is reconciled tomorrow night).", code="parking.day_not_over")
    with transaction() as session:
        park = reports.car_park(session, body.car_park)
        park_id, vendor_code = park.id, park.vendor_park_code
    start, end = reconcile.window(rt.settings.mall, body.day)
    theirs = rt.carpark(vendor_code).payments(start, end)   # outside the transaction: a slow car park holds no lock
    with transaction() as session:
        row = reconcile.record(session, rt.settings.mall, park_id, body.day, theirs, rt.now())
        log.info("parking reconciliation %s %s: %d mismatches", body.car_park, body.day, len(row.mismatches))
        return _reconciliation_out(row, body.car_park)
