"""The quote for a plate's open stay: the bill, and for the member whose plate it is, the benefits.

The bill comes from the car park (``car_parks.fee_source`` "carpark": the caller queries the car-park
system outside any transaction and passes the bill in) or from our tariff ("mall": the fee of the stay
with its earlier payments). The benefits (:mod:`mallapp.domain.parking.benefits`) need the member's
facts, read here: the tier, today's purchases net of refunds (mall-local day), the points balance,
the parking benefits already used today and on this visit (unvoided ``parking_benefits`` rows), and
whether this is the member's first exit today.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import Date, bindparam, func, select
from sqlalchemy.orm import Session, sessionmaker

from mallapp.db import UTCDateTime, reading
from mallapp.domain import points
from mallapp.domain.benefits import PARKING_KINDS
from mallapp.domain.coupons import Coupon
from mallapp.domain.deals import Deal
from mallapp.domain.members import Member
from mallapp.domain.parking import benefits, plates
from mallapp.domain.parking import coupons as parking_coupons
from mallapp.domain.parking.models import (
    CarPark,
    ParkingBenefit,
    ParkingPayment,
    ParkingSession,
    PlateBinding,
)
from mallapp.domain.parking.rules import BenefitRules, parse_rules
from mallapp.domain.parking.tariff import Tariff, fee, parse_tariff
from mallapp.domain.purchases import Purchase
from mallapp.errors import Forbidden, NotFound
from mallapp.settings import Settings

__all__ = ["Bill", "OpenStay", "Quote", "bound_member", "facts_of", "find_open", "for_plate", "park_of", "quote"]


class Bill(Protocol):
    """What the car park says is owed (mallapp.adapters.carpark.Bill has these)."""

    order_no: str
    gross_fen: int
    discount_fen: int
    paid_fen: int
    due_fen: int


@dataclass(frozen=True)
class OpenStay:
    """A plate's open session and its car park, read in one statement."""

    session_id: int
    car_park_id: int
    car_park_code: str
    car_park_name: str
    vendor_park_code: str
    fee_source: str
    plate: str
    vehicle_type: str
    order_no: str
    entered_at: datetime
    tariff: Tariff
    rules: BenefitRules
    bound_member_id: int | None = None  # the member the plate is bound to now
    paid_before: bool = True  # a payment of this stay was settled (False: no need to read them)


@dataclass(frozen=True)
class Quote:
    stay: OpenStay
    quoted_at: datetime
    gross_fen: int        # the fee of the whole stay so far
    paid_fen: int         # earlier payments (cash and benefits) of this stay
    due_fen: int          # before benefits
    breakdown: benefits.Breakdown
    member_id: int | None
    points_balance: int | None = None
    coupons_available: tuple[benefits.Coupon, ...] = ()

    @property
    def cash_fen(self) -> int:
        return self.breakdown.cash_fen

    def as_dict(self) -> dict[str, Any]:
        return {"plate": self.stay.plate, "car_park": self.stay.car_park_code, "entered_at": self.stay.entered_at,
                "quoted_at": self.quoted_at, "gross_fen": self.gross_fen, "paid_fen": self.paid_fen,
                "due_fen": self.due_fen, "discount_fen": self.breakdown.discount_fen, "cash_fen": self.cash_fen,
                "points": self.breakdown.points, "items": [item.as_dict() for item in self.breakdown.items]}


def _find_open_statement(*extra: Any) -> Any:
    plate = bindparam("plate")
    bound = (select(PlateBinding.member_id).where(PlateBinding.plate == plate, PlateBinding.unbound_at.is_(None))
             .scalar_subquery())
    paid_before = (select(func.count()).select_from(ParkingPayment)
                   .where(ParkingPayment.session_id == ParkingSession.id, ParkingPayment.status == "paid")
                   .scalar_subquery())
    return (select(ParkingSession.id, CarPark.id, CarPark.code, CarPark.name, CarPark.vendor_park_code,
                   CarPark.fee_source, ParkingSession.vehicle_type, ParkingSession.order_no, ParkingSession.entered_at,
                   CarPark.tariff, CarPark.rules, bound, paid_before, *extra)
            .join(CarPark, CarPark.id == ParkingSession.car_park_id)
            .where(ParkingSession.plate == plate, ParkingSession.exited_at.is_(None), CarPark.active.is_(True))
            .order_by(ParkingSession.entered_at.desc()).limit(1))


def _facts_columns(visit: Any) -> list[Any]:
    """The member's facts as scalar subqueries, for the visit ``visit`` (a parameter, or the stay's id column)."""
    member, start, end = bindparam("member"), bindparam("start", type_=UTCDateTime()), bindparam("end", type_=UTCDateTime())
    today, now = bindparam("today", type_=Date()), bindparam("now", type_=UTCDateTime())

    def used(kind: str, value: Any, where: Any) -> Any:
        return (select(func.coalesce(value, 0)).where(
            ParkingBenefit.member_id == member, ParkingBenefit.kind == kind, ParkingBenefit.voided_at.is_(None),
            where).scalar_subquery())
    on_day, on_visit = ParkingBenefit.local_day == today, ParkingBenefit.session_id == visit
    seconds, count = func.sum(ParkingBenefit.seconds), func.count()
    return [
        select(Member.tier).where(Member.id == member).scalar_subquery(),
        select(points.PointsAccount.balance).where(points.PointsAccount.member_id == member).scalar_subquery(),
        select(func.coalesce(func.sum(Purchase.amount_fen - Purchase.refunded_fen), 0))
        .where(Purchase.member_id == member, Purchase.occurred_at >= start, Purchase.occurred_at < end)
        .scalar_subquery(),
        select(func.count()).select_from(ParkingSession)
        .where(ParkingSession.member_id == member, ParkingSession.exited_at >= start, ParkingSession.exited_at < end)
        .scalar_subquery(),
        # The benefits used (unvoided rows): tier rows today; spend and points seconds today and on the visit;
        # coupons today and on the visit.
        used("tier", count, on_day), used("spend", seconds, on_day), used("spend", seconds, on_visit),
        used("points", seconds, on_day), used("points", seconds, on_visit), used("coupon", count, on_day),
        used("coupon", count, on_visit),
        # Whether the member holds any parking coupon at all: only then are they listed (another round trip).
        select(func.count()).select_from(Coupon).join(Deal, Deal.id == Coupon.deal_id)
        .where(Coupon.member_id == member, Coupon.redeemed_at.is_(None), Deal.benefit_kind.in_(PARKING_KINDS),
               Deal.ends_at > now).scalar_subquery()]


# Built once. A member's quote reads the stay, its car park, the plate's member and the member's facts in one
# round trip (_FIND_OPEN_WITH_FACTS); a payment reads the facts again under its lock (_FACTS).
_FIND_OPEN = _find_open_statement()
_FIND_OPEN_WITH_FACTS = _find_open_statement(*_facts_columns(ParkingSession.id))
_FACTS = select(*_facts_columns(bindparam("visit")))


def find_open(session: Session, plate_text: str) -> OpenStay:
    """The plate's open stay in an active car park (the latest if the car park somehow reports two), with the
    plate's member and whether a payment of the stay was settled: one round trip."""
    plate = plates.normalize(plate_text)
    return _stay(plate, session.execute(_FIND_OPEN, {"plate": plate}).first())


def _stay(plate: str, row: Any) -> OpenStay:
    if row is None:
        raise NotFound("No car with this plate is parked here.", code="parking.no_session")
    (session_id, park_id, code, name, vendor_code, fee_source, vehicle_type, order_no, entered_at, tariff, rules,
     member_id, paid) = row[:13]
    return OpenStay(session_id, park_id, code, name, vendor_code, fee_source, plate, vehicle_type, order_no,
                    entered_at, _tariff(tariff), _rules(rules), member_id, bool(paid))


def _facts_params(settings: Settings, member_id: int, now: datetime) -> dict[str, Any]:
    today = settings.mall.local_day(now)
    start, end = settings.mall.day_bounds(today)
    return {"member": member_id, "start": start, "end": end, "today": today, "now": now}


@lru_cache(maxsize=64)
def _parsed(kind: str, document: str) -> Tariff | BenefitRules:
    return parse_tariff(json.loads(document)) if kind == "tariff" else parse_rules(json.loads(document))


def _tariff(document: dict[str, Any]) -> Tariff:
    """The car park's tariff, validated once per distinct document (both are frozen models)."""
    return _parsed("tariff", json.dumps(document, sort_keys=True))  # type: ignore[return-value]


def _rules(document: dict[str, Any]) -> BenefitRules:
    return _parsed("rules", json.dumps(document, sort_keys=True))  # type: ignore[return-value]


def park_of(session: Session, car_park_id: int) -> CarPark:
    park = session.get(CarPark, car_park_id)
    if park is None:
        raise NotFound("No such car park.", code="parking.car_park_not_found")
    return park


def bound_member(session: Session, plate: str) -> int | None:
    """The member the plate is bound to now, if any."""
    return session.scalar(select(PlateBinding.member_id)
                          .where(PlateBinding.plate == plate, PlateBinding.unbound_at.is_(None)))


def facts_of(session: Session, settings: Settings, member_id: int, stay: OpenStay, now: datetime, *,
             points_hours: int = 0, coupon_ids: Sequence[int] = (), lock_coupons: bool = False) -> benefits.Facts:
    """What the benefits need to know of the member on this stay."""
    # One round trip: the tier, the points balance, today's net spend, exits today and the benefits used.
    row = session.execute(_FACTS, {**_facts_params(settings, member_id, now), "visit": stay.session_id}).one()
    return _facts(session, row, member_id, now, points_hours, coupon_ids, lock_coupons)[0]


def _facts(session: Session, row: Sequence[Any], member_id: int, now: datetime, points_hours: int,
           coupon_ids: Sequence[int], lock_coupons: bool) -> tuple[benefits.Facts, bool]:
    """The facts from their columns, and whether the member holds any parking coupon."""
    tier, balance, spend, exited_today, *used, coupons_held = row
    return benefits.Facts(
        tier=tier,
        spend_fen_today=int(spend or 0),
        points_balance=int(balance or 0),
        first_exit_today=not exited_today,
        used=benefits.Used(used[0] > 0, *(int(value) for value in used[1:])),
        points_hours=points_hours,
        coupons=parking_coupons.chosen(session, coupon_ids, member_id=member_id, now=now, lock=lock_coupons)
    ), bool(coupons_held)


def _earlier(session: Session, session_id: int) -> list[ParkingPayment]:
    return list(session.scalars(select(ParkingPayment).where(ParkingPayment.session_id == session_id,
                                                             ParkingPayment.status == "paid")
                                .order_by(ParkingPayment.seq)))


def quote(session: Session, settings: Settings, stay: OpenStay, now: datetime, *, bill: Bill | None = None,
          facts: benefits.Facts | None = None, member_id: int | None = None) -> Quote:
    """The bill of the stay now (the car park's ``bill`` for fee_source "carpark") and the benefits for ``facts``."""
    tz = settings.mall.tz
    earlier = _earlier(session, stay.session_id) if stay.paid_before else []
    if stay.fee_source == "carpark":
        if bill is None:
            raise ValueError("a car park that computes its own fee needs its bill")
        seconds_before = sum(int(item.get("seconds") or 0) for p in earlier for item in p.items)
        the_stay = benefits.Stay(stay.tariff, stay.vehicle_type, stay.entered_at, now, tz,
                                 seconds_before=seconds_before, bill_due_fen=bill.due_fen)
        gross, paid = bill.gross_fen, bill.discount_fen + bill.paid_fen
    else:
        paid_list = tuple((p.settled_at or p.created_at, p.discount_fen + p.cash_fen) for p in earlier)
        the_stay = benefits.Stay(stay.tariff, stay.vehicle_type, stay.entered_at, now, tz, paid=paid_list)
        gross = fee(stay.tariff, stay.vehicle_type, stay.entered_at, now, tz=tz).gross_fen
        paid = sum(fen for _, fen in paid_list)
    result = benefits.breakdown(the_stay, stay.rules, facts)
    return Quote(stay, now, gross, paid, result.due_fen, result, member_id,
                 points_balance=None if facts is None else facts.points_balance)


def for_plate(sessions: sessionmaker[Session], settings: Settings, fetch_bill: Callable[[str, str], Bill],
              plate: str, now: datetime, *, member_id: int | None = None, points_hours: int = 0,
              coupon_ids: Sequence[int] = ()) -> Quote:
    """The quote for a plate: read the stay, ask the car park for its bill between transactions, then price it.

    With ``member_id`` the plate must be bound to that member, and the member's benefits are priced in.
    """
    normal = plates.normalize(plate)
    with reading(sessions) as session:  # reads only: the payment reads them again under its lock
        if member_id is None:
            stay, facts_row = find_open(session, normal), None
        else:  # the stay and the member's facts in one round trip
            row = session.execute(_FIND_OPEN_WITH_FACTS, {"plate": normal,
                                                          **_facts_params(settings, member_id, now)}).first()
            stay, facts_row = _stay(normal, row), None if row is None else row[13:]
            if stay.bound_member_id != member_id:
                raise Forbidden("This plate is not bound to you.", code="parking.plate_not_yours")
        if stay.fee_source != "carpark":  # our tariff: no call out, so one transaction does it all
            return _priced(session, stay, now, None, member_id, facts_row, points_hours, coupon_ids, settings)
    bill = fetch_bill(stay.vendor_park_code, stay.plate)
    with reading(sessions) as session:
        return _priced(session, stay, now, bill, member_id, facts_row, points_hours, coupon_ids, settings)


def _priced(session: Session, stay: OpenStay, now: datetime, bill: Bill | None, member_id: int | None,
            facts_row: Sequence[Any] | None, points_hours: int, coupon_ids: Sequence[int],
            settings: Settings) -> Quote:
    if member_id is None or facts_row is None:
        return quote(session, settings, stay, now, bill=bill)
    facts, coupons_held = _facts(session, facts_row, member_id, now, points_hours, coupon_ids, False)
    result = quote(session, settings, stay, now, bill=bill, facts=facts, member_id=member_id)
    usable = parking_coupons.usable(session, member_id, now) if coupons_held else []
    return replace(result, coupons_available=tuple(usable))
