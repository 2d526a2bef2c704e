"""Rewards the mall gives unasked: the new-member pack, the birthday gift and the referral reward.

Each is issued exactly once, by a key the database holds unique, so retries, repeated calls and
concurrent calls all end with one issue:

- the **new-member pack**: one coupon per (member, pack coupon), ``issue_key`` ``pack:<member>:<key>``
  on the coupon row. Pack coupons are coupons of ordinary deals (one per configured pack coupon,
  ``Deal.pack_key``, created on first use at the configured store, by default the mall's house store)
  that members cannot claim; each coupon carries its own ``valid_until``: joined + ``valid_days``.
  A pack coupon that names no store is mall-wide (``Deal.scope`` "mall"): redeemed at the till of every
  participating store (``participating_stores``, by default all), with its ``min_spend_fen`` if any.
  After creation the deal row is the truth: its merchant may pause or end it (then it is not issued);
- the **birthday gift**: points with ledger key ``birthday:<member>:<year>`` during the birthday month
  in the mall's time zone, from the clock (``issue_birthday_gifts``) or lazily when the member signs in
  or opens the profile;
- the **referral**: a ``Referral`` row per referred member (unique), inserted by the member's first
  purchase; the referrer's points carry keys ``referral:<member>`` and ``referral-purchase:<purchase>``.
  A refund of that purchase does not take the referral's points back.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, cast, extract, literal, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime, insert_or_nothing
from mallapp.domain import coupons, members, points
from mallapp.domain.benefits import benefit_columns
from mallapp.domain.deals import Deal
from mallapp.domain.members import Member
from mallapp.domain.points import BigId, PointsEntry
from mallapp.domain.venue import Store
from mallapp.errors import Conflict, InvalidInput
from mallapp.settings import PackCoupon, Settings, SettingsError

log = logging.getLogger(__name__)

# A pack deal is a container: its coupons' own valid_until bounds their use.
_PACK_STARTS = datetime(2000, 1, 1, tzinfo=UTC)
_PACK_ENDS = datetime(2100, 1, 1, tzinfo=UTC)
_PACK_QUOTA = 2**31 - 1


class Referral(Base):
    """A referred member's first purchase, and what it earned the referrer."""

    __tablename__ = "referrals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The referred member: one row each, so the reward is given once.
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), unique=True)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"))
    reward_points: Mapped[int] = mapped_column(Integer)
    purchase_points: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- keys ------------------------------------------------------------------------------------------

def pack_key(member_id: int, coupon_key: str) -> str:
    return f"pack:{member_id}:{coupon_key}"


def birthday_key(member_id: int, year: int) -> str:
    return f"birthday:{member_id}:{year}"


def referral_key(member_id: int) -> str:
    return f"referral:{member_id}"


def referral_purchase_key(purchase_id: int) -> str:
    return f"referral-purchase:{purchase_id}"


# --- the new-member pack ---------------------------------------------------------------------------

def sign_in(session: Session, settings: Settings, *, openid: str, unionid: str | None, now: datetime,
            referral_code: str | None = None, locale: str | None = None) -> tuple[Member, bool]:
    """``members.sign_in``, and the new-member pack for a member it created; return (member, created)."""
    member, created = members.sign_in(session, openid=openid, unionid=unionid, now=now, referral_code=referral_code,
                                      locale=locale)
    if created:
        issue_new_member_pack(session, settings, member, now)
    return member, created


def issue_new_member_pack(session: Session, settings: Settings, member: Member, now: datetime) -> list[coupons.Held]:
    """Give the member the configured pack coupons not yet given; usable until joined + valid_days."""
    pack = settings.new_member_pack
    valid_until = member.created_at + timedelta(days=pack.valid_days)
    if not pack.enabled or now >= valid_until:
        return []
    issued = []
    for template in pack.coupons:
        deal = _pack_deal(session, settings, template)
        if deal is None:
            continue
        try:
            held = coupons.issue(session, settings, member.id, deal, key=pack_key(member.id, template.key),
                                 valid_until=valid_until, now=now)
        except Conflict as refused:
            if refused.code != "parking.quota_exhausted":
                raise
            # A parking coupon whose merchant's quota is used up: refused before anything was written, and
            # sign-up must not fail on it. Skip it, say why.
            log.warning("new-member pack coupon %r skipped: its merchant's parking quota is used up", template.key)
            continue
        if held is not None:
            issued.append(held)
    session.flush()
    return issued


def check_settings(settings: Settings) -> None:
    """Refuse, at start-up, a new-member pack coupon whose benefit no deal could carry."""
    for coupon in settings.new_member_pack.coupons:
        try:
            benefit_columns(coupon.benefit)
        except InvalidInput as exc:
            raise SettingsError(f"new_member_pack.coupons {coupon.key!r}: {exc.message}") from None


def _pack_deal(session: Session, settings: Settings, template: PackCoupon) -> Deal | None:
    """The live deal behind a pack coupon, created at its store on first use; None if it cannot be."""
    deal = session.scalar(select(Deal).where(Deal.pack_key == template.key))
    if deal is None:
        store_name = template.store or settings.new_member_pack.house_store
        store = session.scalar(select(Store).where(Store.name == store_name, Store.active,
                                                   Store.merchant_id.is_not(None)).order_by(Store.id).limit(1))
        if store is None:
            # Sign-up must not fail on the mall's configuration: skip the coupon, say why.
            log.warning("new-member pack coupon %r skipped: no active store %r with a merchant",
                        template.key, store_name)
            return None
        values = dict(merchant_id=store.merchant_id, store_id=store.id, title=template.title, text=template.text,
                      image_url=None, starts_at=_PACK_STARTS, ends_at=_PACK_ENDS, quota=_PACK_QUOTA,
                      per_member_limit=1, **benefit_columns(template.benefit), zone_ids=[], store_ids=[],
                      sale_item_ids=[], member_rule="new_members", followers_only=False, status="live",
                      rejection_reason=None, claimed=0, redeemed=0, pack_key=template.key,
                      min_spend_fen=template.min_spend_fen, created_at=_PACK_STARTS, updated_at=_PACK_STARTS,
                      **_pack_scope(session, template))
        # Two first sign-ups at once: the unique pack_key lets one create it; the other reads it.
        insert_or_nothing(session, Deal, values, ["pack_key"])
        deal = session.scalar(select(Deal).where(Deal.pack_key == template.key))
        assert deal is not None
    elif template.store is None and deal.scope == "store":
        # Made before deals had a scope (migration 0017): it becomes what its template now means, once.
        for name, value in _pack_scope(session, template).items():
            setattr(deal, name, value)
    return deal if deal.status == "live" else None


def _pack_scope(session: Session, template: PackCoupon) -> dict[str, Any]:
    """A pack coupon naming no store is mall-wide: its participating stores by name (unknown names are skipped,
    with a warning), or every store."""
    if template.store is not None:
        return {"scope": "store", "participating_store_ids": None}
    if template.participating_stores is None:
        return {"scope": "mall", "participating_store_ids": None}
    found = dict(session.execute(select(Store.name, Store.id).where(Store.name.in_(template.participating_stores),
                                                                    Store.active, Store.merchant_id.is_not(None))
                                 .order_by(Store.id.desc())).all())
    unknown = sorted(set(template.participating_stores) - set(found))
    if unknown:
        log.warning("new-member pack coupon %r: participating stores %s not found (no active store with a merchant)",
                    template.key, ", ".join(repr(n) for n in unknown))
    return {"scope": "mall", "participating_store_ids": sorted(found.values())}


# --- the birthday gift -----------------------------------------------------------------------------

def issue_birthday_gift(session: Session, settings: Settings, member: Member, now: datetime) -> points.Posted | None:
    """Credit the birthday gift during the member's birthday month, once a year; None if not due."""
    local = now.astimezone(settings.mall.tz)
    if not settings.birthday.enabled or member.birthday is None or member.birthday.month != local.month:
        return None
    key = birthday_key(member.id, local.year)
    # A read first: the profile calls this on every open, and a credit is a write even when replayed.
    if session.scalar(select(PointsEntry.id).where(PointsEntry.idempotency_key == key)) is not None:
        return None
    posted = points.credit(session, settings, member.id, settings.birthday.gift_points, "birthday_gift",
                           source_ref=f"birthday:{local.year}", idempotency_key=key, now=now,
                           note="happy birthday")
    return None if posted.replayed else posted


def issue_birthday_gifts(session: Session, settings: Settings, now: datetime, limit: int = 1000) -> int:
    """Credit up to ``limit`` members whose birthday month it is and who have no gift this year; return how many."""
    if not settings.birthday.enabled:
        return 0
    local = now.astimezone(settings.mall.tz)
    key = literal("birthday:") + cast(Member.id, String) + literal(f":{local.year}")
    given = select(PointsEntry.id).where(PointsEntry.idempotency_key == key).exists()
    due = list(session.scalars(
        select(Member).where(Member.birthday.is_not(None), extract("month", Member.birthday) == local.month, ~given)
        .order_by(Member.id).limit(limit)))
    return sum(issue_birthday_gift(session, settings, member, now) is not None for member in due)


# --- referrals -------------------------------------------------------------------------------------

def reward_referral(session: Session, settings: Settings, *, member_id: int, referrer_id: int, purchase_id: int,
                    purchase_points: int, now: datetime) -> Referral | None:
    """Reward the referrer for the referred member's first purchase (the caller knows it is), once.

    None when referrals are off, or when the member's first purchase already rewarded.
    """
    cfg = settings.referral
    if not cfg.enabled:
        return None
    accrued = purchase_points if cfg.accrue_purchase_points else 0
    values = dict(member_id=member_id, referrer_id=referrer_id, purchase_id=purchase_id,
                  reward_points=cfg.reward_points, purchase_points=accrued, created_at=now)
    # Two first purchases at once: the unique member row lets one of them reward.
    referral_id = insert_or_nothing(session, Referral, values, ["member_id"])
    if referral_id is None:
        return None
    # Not the purchase's own source_ref: a refund takes back the lots of that source, the buyer's only.
    if cfg.reward_points:
        points.credit(session, settings, referrer_id, cfg.reward_points, "referral",
                      source_ref=f"referral:{member_id}", idempotency_key=referral_key(member_id),
                      now=now, note="a member you referred made a first purchase")
    if accrued:
        points.credit(session, settings, referrer_id, accrued, "referral",
                      source_ref=f"referral:{member_id}", idempotency_key=referral_purchase_key(purchase_id),
                      now=now, note="the points of your referred member's first purchase")
    return Referral(id=referral_id, **values)
