"""Merchant parking coupons on a parking payment: which a member may use, using them, giving them back.

A parking coupon is a coupon (:mod:`mallapp.domain.coupons`) whose deal's benefit is ``parking_hours``
or ``parking_amount`` (:data:`mallapp.domain.benefits.PARKING_KINDS`). Paying marks it redeemed with
``request_id`` ``parking:<payment id>``; a payment that fails or is abandoned gives it back (redeemed
again unset), so the member holds it as before. The quota behind it is parkcoupons' concern
(:mod:`mallapp.domain.parking.quota`): a coupon used here stays reserved; one given back is held again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from mallapp.db import UTCDateTime
from mallapp.domain.benefits import PARKING_KINDS
from mallapp.domain.coupons import Coupon
from mallapp.domain.deals import Deal
from mallapp.domain.parking import benefits
from mallapp.errors import RuleViolation

__all__ = ["chosen", "give_back", "usable", "use"]


def _request_id(payment_id: int) -> str:
    return f"parking:{payment_id}"


def _as_benefit(coupon: Coupon, deal: Deal) -> benefits.Coupon:
    if deal.benefit_kind == "parking_hours":
        return benefits.Coupon(coupon.id, deal.title, hours=deal.benefit_value or 0)
    return benefits.Coupon(coupon.id, deal.title, amount_fen=deal.benefit_value or 0)


def _usable_statement() -> Any:
    member, now = bindparam("member"), bindparam("now", type_=UTCDateTime())
    return (select(Coupon.id, Deal.title, Deal.benefit_kind, Deal.benefit_value).join(Deal, Deal.id == Coupon.deal_id)
            .where(Coupon.member_id == member, Coupon.redeemed_at.is_(None), Deal.benefit_kind.in_(PARKING_KINDS),
                   Deal.ends_at > now, (Coupon.valid_until.is_(None)) | (Coupon.valid_until > now))
            .order_by(Deal.ends_at, Coupon.id))


_USABLE = _usable_statement()  # built once: every member quote runs it


def usable(session: Session, member_id: int, now: datetime) -> list[benefits.Coupon]:
    """The member's parking coupons that are not used and not expired, soonest-expiring first."""
    return [benefits.Coupon(coupon_id, title, hours=value or 0) if kind == "parking_hours"
            else benefits.Coupon(coupon_id, title, amount_fen=value or 0)
            for coupon_id, title, kind, value in session.execute(_USABLE, {"member": member_id, "now": now})]


def chosen(session: Session, coupon_ids: Sequence[int], *, member_id: int, now: datetime,
           lock: bool = False) -> tuple[benefits.Coupon, ...]:
    """The coupons the member chose, in the order chosen; refuse one that is not the member's usable coupon."""
    if not coupon_ids:
        return ()
    if len(set(coupon_ids)) != len(coupon_ids):
        raise RuleViolation("A coupon can be chosen once.", code="parking.coupon_unusable")
    query = (select(Coupon, Deal).join(Deal, Deal.id == Coupon.deal_id).where(Coupon.id.in_(coupon_ids))
             .order_by(Coupon.id))
    found = {coupon.id: (coupon, deal)
             for coupon, deal in session.execute(query.with_for_update(of=Coupon) if lock else query).all()}
    out = []
    for coupon_id in coupon_ids:
        coupon, deal = found.get(coupon_id, (None, None))
        if (coupon is None or deal is None or coupon.member_id != member_id or deal.benefit_kind not in PARKING_KINDS
                or coupon.status(deal, now) != "active"):
            raise RuleViolation(f"Coupon {coupon_id} is not a parking coupon of yours that can be used now.",
                                code="parking.coupon_unusable", details={"coupon_id": coupon_id})
        out.append(_as_benefit(coupon, deal))
    return tuple(out)


def use(session: Session, coupon_ids: Sequence[int], *, member_id: int, payment_id: int, now: datetime) -> None:
    """Mark the chosen coupons redeemed by the payment (the caller checked them with :func:`chosen` under lock)."""
    for coupon_id in coupon_ids:
        coupon = session.get(Coupon, coupon_id)
        if coupon is None or coupon.member_id != member_id or coupon.redeemed_at is not None:
            raise RuleViolation(f"Coupon {coupon_id} cannot be used.", code="parking.coupon_unusable",
                                details={"coupon_id": coupon_id})
        coupon.redeemed_at, coupon.request_id = now, _request_id(payment_id)
        session.execute(update(Deal).where(Deal.id == coupon.deal_id).values(redeemed=Deal.redeemed + 1))
    session.flush()


def give_back(session: Session, payment_id: int, now: datetime) -> int:
    """Give back the coupons a payment used (it failed or was abandoned); return how many. Safe to repeat."""
    taken = list(session.scalars(select(Coupon).where(Coupon.request_id == _request_id(payment_id))
                                 .with_for_update()))
    for coupon in taken:
        coupon.redeemed_at, coupon.request_id = None, None
        session.execute(update(Deal).where(Deal.id == coupon.deal_id).values(redeemed=Deal.redeemed - 1))
    session.flush()
    return len(taken)
