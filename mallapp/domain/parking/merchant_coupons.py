"""Merchants' parking coupons after the claim: the quota of expired ones returned, and their use per day.

The clock's ``parking-coupons-expiry`` job (:func:`return_expired`) finds parking coupons that expired
unused and whose reservation was not yet returned, and returns it (mallapp.domain.parking.quota.return_coupons,
once per coupon by its entry's key). It locks the coupons it takes (skipping any a payment holds now,
so a coupon being used as it expires is never both used and returned) and works a batch per
transaction: running it twice, or after a crash, returns nothing twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session, sessionmaker

from mallapp.domain.benefits import PARKING_KINDS
from mallapp.domain.coupons import Coupon
from mallapp.domain.deals import Deal
from mallapp.domain.parking import quota
from mallapp.domain.parking.models import ParkingBenefit, ParkingQuotaEntry
from mallapp.settings import Settings

MAX_DAYS = 92  # the longest range the usage report takes


def _expires() -> ColumnElement[Any]:
    """A coupon's expiry in SQL: the deal's end, or the coupon's own valid_until when sooner."""
    return case((and_(Coupon.valid_until.is_not(None), Coupon.valid_until < Deal.ends_at), Coupon.valid_until),
                else_=Deal.ends_at)


def _reserved_not_returned() -> ColumnElement[bool]:
    """Coupons whose value was reserved from the quota and not yet returned."""
    reserved = select(ParkingQuotaEntry.id).where(ParkingQuotaEntry.coupon_id == Coupon.id,
                                                  ParkingQuotaEntry.reason == "reserved").exists()
    returned = select(ParkingQuotaEntry.id).where(ParkingQuotaEntry.coupon_id == Coupon.id,
                                                  ParkingQuotaEntry.reason == "returned").exists()
    return and_(reserved, ~returned)


def return_expired(sessions: sessionmaker[Session], now: datetime, batch: int = 500,
                   keep_going: Callable[[], bool] | None = None) -> int:
    """Return the quota of parking coupons expired unused, a batch per transaction; how many coupons.

    For the clock. ``keep_going`` (the clock's lock check) is asked before each batch.
    """
    expires = _expires()
    due = (select(Coupon.id, Deal.merchant_id).join(Deal, Deal.id == Coupon.deal_id)
           .where(Deal.benefit_kind.in_(PARKING_KINDS), Coupon.redeemed_at.is_(None), expires <= now,
                  _reserved_not_returned())
           .order_by(Coupon.id).limit(batch)
           # A coupon a payment is using right now is its: skip it (the next run sees how that ended).
           .with_for_update(of=Coupon, skip_locked=True))
    total = 0
    while keep_going is None or keep_going():
        with sessions.begin() as session:
            rows = session.execute(due).all()
            by_merchant: dict[int, list[int]] = defaultdict(list)
            for row in rows:
                by_merchant[row.merchant_id].append(row.id)
            # Merchants' quota rows are locked in one order, so two runs never wait on each other in a circle.
            returned = sum(quota.return_coupons(session, merchant_id, by_merchant[merchant_id], now)
                           for merchant_id in sorted(by_merchant))
        total += returned
        if len(rows) < batch:
            return total
    return total


# --- the merchant's usage report -------------------------------------------------------------------

@dataclass
class Day:
    """One mall-local day of a merchant's parking coupons."""

    day: date
    claimed: int = 0  # coupons claimed or issued that day
    claimed_hours: int = 0
    claimed_fen: int = 0
    used: int = 0  # coupons used in parking payments that day (parking_benefits of kind coupon, not voided)
    used_seconds: int = 0  # the free time they gave
    used_fen: int = 0  # their value on the bills
    expired: int = 0  # coupons that expired unused that day
    expired_hours: int = 0
    expired_fen: int = 0
    returned_hours: int = 0  # quota returned that day (from expired coupons)
    returned_fen: int = 0


@dataclass
class Usage:
    merchant_id: int
    first: date
    last: date
    days: list[Day] = field(default_factory=list)


def _add(day: Day, prefix: str, kind: str, value: int) -> None:
    unit = quota.UNIT_OF[kind]
    setattr(day, f"{prefix}_{unit}", getattr(day, f"{prefix}_{unit}") + value)


def usage(session: Session, settings: Settings, merchant_id: int, first: date, last: date, now: datetime) -> Usage:
    """The merchant's parking coupons per mall-local day from ``first`` to ``last`` (inclusive)."""
    start, end = settings.mall.day_bounds(first)[0], settings.mall.day_bounds(last)[1]
    days = {first.fromordinal(n): Day(first.fromordinal(n)) for n in range(first.toordinal(), last.toordinal() + 1)}
    local = settings.mall.local_day
    parking = (Deal.merchant_id == merchant_id) & Deal.benefit_kind.in_(PARKING_KINDS)
    claims = session.execute(select(Coupon.claimed_at, Deal.benefit_kind, Deal.benefit_value)
                             .join(Deal, Deal.id == Coupon.deal_id)
                             .where(parking, Coupon.claimed_at >= start, Coupon.claimed_at < end))
    for at, kind, value in claims:
        day = days[local(at)]
        day.claimed += 1
        _add(day, "claimed", kind, value)
    expires = _expires()
    lapsed = session.execute(select(expires, Deal.benefit_kind, Deal.benefit_value)
                             .select_from(Coupon).join(Deal, Deal.id == Coupon.deal_id)
                             .where(parking, Coupon.redeemed_at.is_(None), expires >= start, expires < end,
                                    expires <= now))
    for at, kind, value in lapsed:
        day = days[local(at)]
        day.expired += 1
        _add(day, "expired", kind, value)
    used = session.execute(select(ParkingBenefit.local_day, func.count(), func.sum(ParkingBenefit.seconds),
                                  func.sum(ParkingBenefit.fen))
                           .join(Coupon, Coupon.id == ParkingBenefit.coupon_id).join(Deal, Deal.id == Coupon.deal_id)
                           .where(parking, ParkingBenefit.kind == "coupon", ParkingBenefit.voided_at.is_(None),
                                  ParkingBenefit.local_day >= first, ParkingBenefit.local_day <= last)
                           .group_by(ParkingBenefit.local_day))
    for on, count, seconds, fen in used:
        day = days[on]
        day.used, day.used_seconds, day.used_fen = count, int(seconds or 0), int(fen or 0)
    returns = session.execute(select(ParkingQuotaEntry.created_at, ParkingQuotaEntry.unit, ParkingQuotaEntry.delta)
                              .where(ParkingQuotaEntry.merchant_id == merchant_id,
                                     ParkingQuotaEntry.reason == "returned",
                                     ParkingQuotaEntry.created_at >= start, ParkingQuotaEntry.created_at < end))
    for at, unit, delta in returns:
        day = days[local(at)]
        setattr(day, f"returned_{unit}", getattr(day, f"returned_{unit}") + delta)
    return Usage(merchant_id, first, last, [days[d] for d in sorted(days)])


def totals(report: Usage) -> dict[str, int]:
    """The report's days added up, field by field."""
    out: dict[str, int] = defaultdict(int)
    for day in report.days:
        for name, value in vars(day).items():
            if name != "day":
                out[name] += value
    return dict(out)
