"""A campaign's audience: rules over the current segments, purchases and follows, as one SQL query.

Every rule given must hold (AND); within a rule, any of its values will do (OR). Segment rules read
the current segments: the ``member_snapshots`` rows of the latest month present. A member with no
snapshot matches no segment rule; an erased member matches nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import Session

from mallapp.domain.follows import Follow
from mallapp.domain.members import Member
from mallapp.domain.privacy import TOMBSTONE
from mallapp.domain.purchases import Purchase
from mallapp.domain.segments import LIFECYCLE_STATES, PYRAMID_LEVELS, RFM_SEGMENTS, T_TIERS, MemberSnapshot
from mallapp.domain.venue import Store
from mallapp.errors import InvalidInput


@dataclass(frozen=True)
class Audience:
    """The rules; an empty rule (``()`` or None) does not restrict."""

    t_tiers: tuple[str, ...] = ()            # the current T-tier
    last_t_tiers: tuple[str, ...] = ()       # the latest T-tier the member had (a lost member has none now)
    pyramid: tuple[str, ...] = ()
    rfm_segments: tuple[str, ...] = ()
    lifecycle: tuple[str, ...] = ()
    p_alive_min: float | None = None
    p_alive_max: float | None = None
    days_since_purchase_min: int | None = None
    days_since_purchase_max: int | None = None
    bought_at_stores: tuple[int, ...] = ()       # bought at any of these stores (their merchants' tills)
    bought_in_categories: tuple[str, ...] = ()   # bought at any store of these categories
    bought_within_days: int = 365                # how far back the two rules above look
    follows_stores: tuple[int, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Audience:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"unknown audience rules: {', '.join(unknown)}", code="campaign.invalid_audience")
        for name, value in data.items():
            if isinstance(value, list):
                data[name] = tuple(value)
        audience = cls(**data)
        audience.check()
        return audience

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def check(self) -> None:
        problem = self._problem()
        if problem:
            raise InvalidInput(problem, code="campaign.invalid_audience")

    def _problem(self) -> str | None:
        for name, allowed in (("t_tiers", T_TIERS), ("last_t_tiers", T_TIERS), ("pyramid", PYRAMID_LEVELS),
                              ("rfm_segments", RFM_SEGMENTS), ("lifecycle", LIFECYCLE_STATES)):
            wrong = [v for v in getattr(self, name) if v not in allowed]
            if wrong:
                return f"{name}: {wrong} not among {list(allowed)}"
        for low, high in (("p_alive_min", "p_alive_max"), ("days_since_purchase_min", "days_since_purchase_max")):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                return f"{low} is above {high}"
        for name in ("p_alive_min", "p_alive_max"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                return f"{name} is a probability, 0 to 1"
        for name in ("days_since_purchase_min", "days_since_purchase_max"):
            value = getattr(self, name)
            if value is not None and value < 0:
                return f"{name} is not negative"
        if self.bought_within_days < 1:
            return "bought_within_days is at least 1"
        return None

    @property
    def uses_segments(self) -> bool:
        return bool(self.t_tiers or self.pyramid or self.rfm_segments or self.lifecycle
                    or self.p_alive_min is not None or self.p_alive_max is not None
                    or self.days_since_purchase_min is not None or self.days_since_purchase_max is not None)


def latest_month(session: Session) -> Any:
    """The month of the current segments (None before the first run)."""
    return session.scalar(select(func.max(MemberSnapshot.month)))


def query(session: Session, audience: Audience, now: datetime) -> Select[tuple[int]]:
    """The ids of the members the rules select (unordered)."""
    q = select(Member.id).where(~Member.openid.startswith(TOMBSTONE))
    if audience.uses_segments:
        snap = MemberSnapshot
        q = q.join(snap, (snap.member_id == Member.id) & (snap.month == latest_month(session)))
        if audience.t_tiers:
            q = q.where(snap.t_tier.in_(audience.t_tiers))
        if audience.pyramid:
            q = q.where(snap.pyramid.in_(audience.pyramid))
        if audience.rfm_segments:
            q = q.where(snap.rfm_segment.in_(audience.rfm_segments))
        if audience.lifecycle:
            q = q.where(snap.lifecycle.in_(audience.lifecycle))
        if audience.p_alive_min is not None:
            q = q.where(snap.p_alive >= audience.p_alive_min)
        if audience.p_alive_max is not None:
            q = q.where(snap.p_alive <= audience.p_alive_max)
        if audience.days_since_purchase_min is not None:
            q = q.where(snap.last_purchase_at <= now - timedelta(days=audience.days_since_purchase_min))
        if audience.days_since_purchase_max is not None:
            q = q.where(snap.last_purchase_at > now - timedelta(days=audience.days_since_purchase_max + 1))
    if audience.last_t_tiers:
        older = MemberSnapshot.__table__.alias("older")
        latest_tier = (select(older.c.t_tier).where(older.c.member_id == Member.id, older.c.t_tier.is_not(None))
                       .order_by(older.c.month.desc()).limit(1).scalar_subquery())
        q = q.where(latest_tier.in_(audience.last_t_tiers))
    if audience.bought_at_stores or audience.bought_in_categories:
        since = now - timedelta(days=audience.bought_within_days)
        store_rule = (Store.id.in_(audience.bought_at_stores) if audience.bought_at_stores
                      else Store.category.in_(audience.bought_in_categories))
        if audience.bought_at_stores and audience.bought_in_categories:
            store_rule = store_rule | Store.category.in_(audience.bought_in_categories)
        q = q.where(exists(select(Purchase.id).join(Store, Store.merchant_id == Purchase.merchant_id).where(
            Purchase.member_id == Member.id, Purchase.occurred_at >= since,
            Purchase.refunded_fen < Purchase.amount_fen, store_rule)))
    if audience.follows_stores:
        q = q.where(exists(select(Follow.id).where(Follow.member_id == Member.id,
                                                   Follow.store_id.in_(audience.follows_stores))))
    return q


def count(session: Session, audience: Audience, now: datetime) -> int:
    """How many members the rules select: one SQL count."""
    return session.scalar(select(func.count()).select_from(query(session, audience, now).subquery())) or 0
