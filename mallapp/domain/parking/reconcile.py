"""Reconciliation: one mall-local day's payments, ours against the car park's record of them.

Ours are the car park's sessions' payments with status ``paid`` that count toward the day
(``local_day``); theirs are what the car-park system says it took between the day's bounds (the entry
point fetches them through the adapter: this module never calls out). They are matched by our order id
(the car park keys payments by it) and each difference becomes a mismatch:

- ``missing_there``: we consider it paid, the car park has no payment with that order id;
- ``missing_here``: the car park took a payment we have not recorded as paid;
- ``amount_differs``: both have it, but the cash or the discount differ (``fields`` says which).

Near midnight our payment's day (when it was made) and the car park's time of taking it can fall on
either side, so the entry point asks the car park for a margin around the day: a payment of theirs
outside the day's bounds only matches ours, and one of theirs we hold as paid on another day is no
mismatch. One row per car park and day; a new run replaces it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mallapp.domain.parking.models import CarPark, ParkingPayment, ParkingReconciliation, ParkingSession
from mallapp.settings import MallSettings

MARGIN = timedelta(hours=1)  # around the day: payments made just before midnight and taken just after
# The clock also retries the days before yesterday that have no reconciliation (the car park was down).
BACKFILL_DAYS = 7


@dataclass(frozen=True)
class Theirs:
    """The car park's record of one payment (what the adapter's ``payments`` returns, duck-typed)."""

    order_id: str
    trade_no: str
    paid_fen: int
    discount_fen: int
    paid_at: datetime


def window(mall: MallSettings, day: date) -> tuple[datetime, datetime]:
    """The UTC range to ask the car park for: the mall-local day and the margin either side."""
    start, end = mall.day_bounds(day)
    return start - MARGIN, end + MARGIN


def _ours(payment: ParkingPayment) -> dict[str, Any]:
    return {"cash_fen": payment.cash_fen, "discount_fen": payment.discount_fen,
            "trade_no": payment.carpark_trade_no, "paid_at": payment.paid_at.isoformat() if payment.paid_at else None}


def _theirs(record: Any) -> dict[str, Any]:
    return {"cash_fen": record.paid_fen, "discount_fen": record.discount_fen, "trade_no": record.trade_no,
            "paid_at": record.paid_at.isoformat()}


def compare(ours: Sequence[ParkingPayment], theirs: Iterable[Any], day_bounds: tuple[datetime, datetime],
            paid_elsewhere: Collection[str] = ()) -> list[dict[str, Any]]:
    """The mismatches between our paid payments of the day and the car park's records (sorted by order id)."""
    start, end = day_bounds
    by_id = {record.order_id: record for record in theirs}
    problems: list[dict[str, Any]] = []
    for payment in ours:
        record = by_id.pop(payment.order_id, None)
        if record is None:
            problems.append({"order_id": payment.order_id, "problem": "missing_there", "ours": _ours(payment),
                             "theirs": None})
            continue
        fields = [name for name, a, b in (("cash", payment.cash_fen, record.paid_fen),
                                          ("discount", payment.discount_fen, record.discount_fen)) if a != b]
        if fields:
            problems.append({"order_id": payment.order_id, "problem": "amount_differs", "fields": fields,
                             "ours": _ours(payment), "theirs": _theirs(record)})
    for order_id, record in by_id.items():
        if start <= record.paid_at < end and order_id not in paid_elsewhere:
            problems.append({"order_id": order_id, "problem": "missing_here", "ours": None, "theirs": _theirs(record)})
    return sorted(problems, key=lambda p: (p["order_id"], p["problem"]))


def record(session: Session, mall: MallSettings, car_park_id: int, day: date, theirs: Sequence[Any],
           now: datetime) -> ParkingReconciliation:
    """Compare and store the day's reconciliation for the car park, replacing an earlier run's."""
    ours = list(session.scalars(
        select(ParkingPayment).join(ParkingSession, ParkingSession.id == ParkingPayment.session_id)
        .where(ParkingSession.car_park_id == car_park_id, ParkingPayment.local_day == day,
               ParkingPayment.status == "paid").order_by(ParkingPayment.order_id)))
    bounds = mall.day_bounds(day)
    ours_ids = {p.order_id for p in ours}
    in_day = [t for t in theirs if bounds[0] <= t.paid_at < bounds[1]]
    strays = [t.order_id for t in in_day if t.order_id not in ours_ids]
    elsewhere = set(session.scalars(select(ParkingPayment.order_id).where(
        ParkingPayment.order_id.in_(strays), ParkingPayment.status == "paid"))) if strays else set()
    mismatches = compare(ours, theirs, bounds, elsewhere)
    row = session.scalar(select(ParkingReconciliation).where(ParkingReconciliation.car_park_id == car_park_id,
                                                             ParkingReconciliation.day == day))
    if row is None:
        row = ParkingReconciliation(car_park_id=car_park_id, day=day)
        session.add(row)
    row.ours, row.theirs, row.mismatches, row.ran_at = len(ours), len(in_day), mismatches, now
    session.flush()
    return row


def listed(session: Session, *, car_park_id: int | None, since: date, until: date) -> list[ParkingReconciliation]:
    query = select(ParkingReconciliation).where(ParkingReconciliation.day >= since, ParkingReconciliation.day <= until)
    if car_park_id is not None:
        query = query.where(ParkingReconciliation.car_park_id == car_park_id)
    return list(session.scalars(query.order_by(ParkingReconciliation.day.desc(), ParkingReconciliation.car_park_id)))


def active_car_parks(session: Session) -> list[CarPark]:
    return list(session.scalars(select(CarPark).where(CarPark.active.is_(True)).order_by(CarPark.id)))


def days_due(session: Session, mall: MallSettings, park: CarPark, yesterday: date) -> list[date]:
    """What the nightly run reconciles for a car park: yesterday (again if it ran), and each of the
    BACKFILL_DAYS before it that has no reconciliation yet, from the car park's creation on; oldest first."""
    first = max(yesterday - timedelta(days=BACKFILL_DAYS), mall.local_day(park.created_at))
    done = set(session.scalars(select(ParkingReconciliation.day).where(
        ParkingReconciliation.car_park_id == park.id, ParkingReconciliation.day >= first,
        ParkingReconciliation.day < yesterday)))
    days = [first + timedelta(days=n) for n in range((yesterday - first).days)]
    return [day for day in days if day not in done] + ([yesterday] if yesterday >= first else [])
