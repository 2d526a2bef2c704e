"""A member's record as the service desk reads it: one dict of plain values per section.

Each list is the newest rows first and short (``limit``); the points ledger pages on with
:func:`mallapp.domain.points.history`. Phone numbers come out whole: the API masks them for the roles
that do not see phones (``OpsCaller.sees_phones``). ``campaigns`` lists the campaigns the member was drawn
into, treated or control (``campaigns.received``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mallapp.domain import campaigns, desk, directory, points
from mallapp.domain.checkin import Checkin
from mallapp.domain.coupons import Coupon
from mallapp.domain.deals import Deal
from mallapp.domain.gifts import GiftRedemption
from mallapp.domain.notifications import Notification
from mallapp.domain.proximity.history import MallVisit
from mallapp.domain.purchases import Purchase
from mallapp.domain.segments import LifecycleTransition, MemberSnapshot

_SEGMENT_FIELDS = ("month", "as_of", "purchases", "purchase_days", "spend_fen", "visits", "mean_gap_days",
                   "t_tier", "pyramid", "rfm_r", "rfm_f", "rfm_m", "rfm_segment", "lifecycle")
_VALUE_FIELDS = ("p_alive", "expected_purchases_30", "expected_purchases_90", "expected_purchases_365",
                 "expected_spend_fen", "clv_fen", "next_purchase_due")


def _pick(row: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in names}


def entries(session: Session, rows: Sequence[points.PointsEntry]) -> list[dict[str, Any]]:
    """Ledger lines as the member reads them, each with the store it concerns (three queries for the page)."""
    stores = directory.entry_stores(session, [e.source_ref for e in rows])
    where = directory.locations(session, stores.values())
    out = []
    for e in rows:
        store_id = stores.get(e.source_ref)
        location = where.get(store_id) if store_id is not None else None
        out.append({"id": e.id, "delta": e.delta, "balance_after": e.balance_after, "reason": e.reason,
                    "note": e.note, "created_at": e.created_at, "store_id": store_id,
                    "store": asdict(location) if location is not None else None})
    return out


def record(session: Session, member_id: int, now: datetime, *, limit: int = 20) -> dict[str, Any]:
    """Everything the desk shows of a member (NotFound for an unknown or erased one)."""
    member = desk.live_member(session, member_id)
    snapshots = list(session.scalars(select(MemberSnapshot).where(MemberSnapshot.member_id == member_id)
                                     .order_by(MemberSnapshot.month.desc()).limit(24)))
    current = snapshots[0] if snapshots else None
    transitions = session.scalars(select(LifecycleTransition).where(LifecycleTransition.member_id == member_id)
                                  .order_by(LifecycleTransition.day.desc(), LifecycleTransition.id.desc())
                                  .limit(50))
    spent = session.execute(select(func.count(), func.coalesce(func.sum(Purchase.amount_fen - Purchase.refunded_fen), 0),
                                   func.min(Purchase.occurred_at), func.max(Purchase.occurred_at))
                            .where(Purchase.member_id == member_id)).one()
    debt, balance = points.owed_and_balance(session, member_id)
    ledger = points.history(session, member_id, before_id=None, limit=limit)
    coupons = session.execute(select(Coupon, Deal).join(Deal, Deal.id == Coupon.deal_id)
                              .where(Coupon.member_id == member_id)
                              .order_by(Coupon.claimed_at.desc(), Coupon.id.desc()).limit(limit))
    return {
        "profile": {"id": member.id, "nickname": member.nickname, "gender": member.gender,
                    "birthday": member.birthday, "phone": member.phone, "referral_code": member.referral_code,
                    "referred_by_id": member.referred_by_id, "tier": member.tier, "member_since": member.created_at},
        "segments": {
            "current": _pick(current, _SEGMENT_FIELDS) if current else None,
            "history": [_pick(row, _SEGMENT_FIELDS) for row in snapshots],
            "transitions": [{"day": t.day, "from_state": t.from_state, "to_state": t.to_state, "cause": t.cause}
                            for t in transitions],
        },
        "lifetime_value": {
            **({name: getattr(current, name) for name in _VALUE_FIELDS} if current
               else dict.fromkeys(_VALUE_FIELDS)),
            "purchases": int(spent[0]), "spend_fen": int(spent[1]),
            "first_purchase_at": spent[2], "last_purchase_at": spent[3],
        },
        "points": {"balance": balance, "debt": debt, "ledger": entries(session, ledger),
                   "next_before_id": ledger[-1].id if len(ledger) == limit else None},
        "adjustments": [{"id": a.id, "points": a.points, "reason": a.reason, "ops_user_id": a.ops_user_id,
                         "entry_id": a.entry_id, "created_at": a.created_at}
                        for a in desk.adjustments(session, member_id, limit)],
        "purchases": [{"id": p.id, "merchant_id": p.merchant_id, "receipt_no": p.receipt_no,
                       "amount_fen": p.amount_fen, "refunded_fen": p.refunded_fen, "points_earned": p.points_earned,
                       "occurred_at": p.occurred_at}
                      for p in session.scalars(select(Purchase).where(Purchase.member_id == member_id)
                                               .order_by(Purchase.occurred_at.desc(), Purchase.id.desc())
                                               .limit(limit))],
        "visits": {
            "checkins": [{"day": c.day, "streak": c.streak, "points": c.points, "method": c.method}
                         for c in session.scalars(select(Checkin).where(Checkin.member_id == member_id)
                                                  .order_by(Checkin.day.desc()).limit(limit))],
            "mall_visits": [{"entered_at": v.entered_at, "exited_at": v.exited_at, "dwell_seconds": v.dwell_seconds}
                            for v in session.scalars(select(MallVisit).where(MallVisit.member_id == member_id)
                                                     .order_by(MallVisit.entered_at.desc()).limit(limit))],
        },
        "coupons": [{"id": c.id, "deal_id": d.id, "title": d.title, "status": c.status(d, now),
                     "claimed_at": c.claimed_at, "redeemed_at": c.redeemed_at, "redeemed_at_store": c.redeemed_at_store}
                    for c, d in coupons],
        "gifts": [{"id": g.id, "gift_code": g.gift_code, "quantity": g.quantity, "points": g.points,
                   "pickup_code": g.pickup_code, "created_at": g.created_at, "handed_over_at": g.handed_over_at}
                  for g in session.scalars(select(GiftRedemption).where(GiftRedemption.member_id == member_id)
                                           .order_by(GiftRedemption.id.desc()).limit(limit))],
        "notifications": [{"id": n.id, "kind": n.kind, "title": n.title, "created_at": n.created_at,
                           "read_at": n.read_at}
                          for n in session.scalars(select(Notification).where(Notification.member_id == member_id)
                                                   .order_by(Notification.id.desc()).limit(limit))],
        "campaigns": campaigns.received(session, member_id),
    }
