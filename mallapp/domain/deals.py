"""Deals merchants publish: content, benefit, targeting, quota, and the review lifecycle.

Lifecycle::

    draft ──submit──> pending_approval ──approve──> live <──resume── paused
      ^                 │   (auto-approval: submit goes straight to live)   │
      └── (edit) ── rejected <──reject──┘          live ──pause──> paused   │
                                                   live, paused ──end──> ended

A content edit of a live or paused deal sends it back to review (unless the merchant is
auto-approved); raising the quota is not a content edit. ``claimed`` and ``redeemed`` are changed
only by :mod:`mallapp.domain.coupons`, in the same transaction as the coupon rows, and ``pushes`` only by
:mod:`mallapp.domain.notifications`, in the same transaction as the delivery rows, so they are exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime, get_or_404, id_in_range
from mallapp.domain import members
from mallapp.domain.benefits import BENEFIT_VALUE, PARKING_KINDS, benefit_columns
from mallapp.domain.merchants import Merchant
from mallapp.domain.venue import SaleItem, Store, Zone
from mallapp.errors import Conflict, InvalidInput, RuleViolation
from mallapp.settings import Settings

STATUSES = ("draft", "pending_approval", "live", "paused", "ended", "rejected")
MEMBER_RULES = ("everyone", "new_members", "birthday_month")
CONTENT_FIELDS = ("title", "text", "image_url", "store_id", "starts_at", "ends_at", "per_member_limit", "benefit",
                  "zone_ids", "store_ids", "sale_item_ids", "member_rule", "followers_only", "min_spend_fen")
SCOPES = ("store", "mall")
EDITABLE = (*CONTENT_FIELDS, "quota")
# What members hold a coupon for: once claimed, these stay as they were.
_PROMISED = ("store_id", "benefit", "min_spend_fen")


class Deal(Base):
    __tablename__ = "deals"
    __table_args__ = (CheckConstraint("quota > 0", name="quota_positive"),
                      CheckConstraint("per_member_limit > 0", name="limit_positive"),
                      CheckConstraint("claimed >= 0 AND claimed <= quota", name="claimed_in_quota"),
                      CheckConstraint("redeemed >= 0 AND redeemed <= claimed", name="redeemed_in_claimed"),
                      CheckConstraint("pushes >= 0", name="pushes_non_negative"),
                      CheckConstraint("starts_at < ends_at", name="window"),
                      CheckConstraint("scope IN ('store', 'mall')", name="scope"),
                      CheckConstraint("min_spend_fen IS NULL OR min_spend_fen > 0", name="min_spend_positive"),
                      Index("ix_deals_status_ends_at", "status", "ends_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    title: Mapped[str] = mapped_column(String(80))
    text: Mapped[str] = mapped_column(String(1000), default="")
    image_url: Mapped[str | None] = mapped_column(String(500))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    quota: Mapped[int] = mapped_column(Integer)
    per_member_limit: Mapped[int] = mapped_column(Integer)
    benefit_kind: Mapped[str] = mapped_column(String(16))
    # amount_fen, percent or points by benefit_kind; None for a gift.
    benefit_value: Mapped[int | None] = mapped_column(Integer)
    benefit_gift: Mapped[str | None] = mapped_column(String(80))
    # Targeting, kept for the delivery slice: where a member must be, and who may be pushed.
    zone_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    store_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    sale_item_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    member_rule: Mapped[str] = mapped_column(String(16), default="everyone")
    followers_only: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    rejection_reason: Mapped[str | None] = mapped_column(String(200))
    claimed: Mapped[int] = mapped_column(Integer, default=0)
    redeemed: Mapped[int] = mapped_column(Integer, default=0)
    # Inbox items plus subscribe messages sent about this deal; moved only by mallapp.domain.notifications,
    # in the transaction that records the delivery.
    pushes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When the merchant announced it to the store's followers (once per deal).
    announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set on a new-member pack deal (mallapp.domain.rewards issues its coupons): members cannot claim it.
    pack_key: Mapped[str | None] = mapped_column(String(40), unique=True)
    # "store": redeemed only at store_id. "mall": a mall-wide offer published by ops (the mall's house
    # merchant runs store_id, the service desk), redeemed at the till of any participating store.
    scope: Mapped[str] = mapped_column(String(8), default="store", server_default="store")
    # A mall-wide deal's participating stores; None: every active store with a merchant.
    participating_store_ids: Mapped[list[int] | None] = mapped_column(JSON)
    # Minimum spend (满减): the till sends the purchase amount and a smaller one is refused; None: no minimum.
    min_spend_fen: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def benefit(self) -> dict[str, Any]:
        if self.benefit_kind == "gift":
            return {"kind": "gift", "gift": self.benefit_gift}
        return {"kind": self.benefit_kind, BENEFIT_VALUE[self.benefit_kind]: self.benefit_value}

    def within_validity(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


# --- rules -----------------------------------------------------------------------------------------

def member_matches(settings: Settings, rule: str, member: members.Member, now: datetime) -> bool:
    """Whether the member rule lets this member claim now (months are the mall's)."""
    if rule == "new_members":
        return now - member.created_at <= timedelta(days=settings.deals.new_member_days)
    if rule == "birthday_month":
        return member.birthday is not None and member.birthday.month == now.astimezone(settings.mall.tz).month
    return rule == "everyone"


# The code of an unknown reference, spelled out so that each is a literal (mallapp.api.error_index).
_UNKNOWN = {"zone": "venue.unknown_zone", "store": "venue.unknown_store", "sale_item": "venue.unknown_sale_item"}


def _check_ids(session: Session, merchant_id: int, model: type[Zone] | type[Store] | type[SaleItem],
               ids: Sequence[int], noun: str) -> list[int]:
    """Active rows of the merchant's own: a store it runs, a sale item or zone in one of its stores.

    A mall-wide zone (no store: an entrance, a corridor) is nobody's, so no merchant targets it.
    """
    wanted = sorted(set(ids))
    if not all(id_in_range(i) for i in wanted):
        raise RuleViolation(f"unknown {noun} id", code=_UNKNOWN[noun])
    found = set(session.scalars(select(model.id).where(model.id.in_(wanted), model.active))) if wanted else set()
    missing = [i for i in wanted if i not in found]
    if missing:
        raise RuleViolation(f"there is no active {noun.replace('_', ' ')} with id {missing[0]}",
                            code=_UNKNOWN[noun], details={"ids": missing})
    owned = (Store.merchant_id == merchant_id if model is Store
             else model.store_id.in_(select(Store.id).where(Store.merchant_id == merchant_id)))  # type: ignore[union-attr]
    ours = set(session.scalars(select(model.id).where(model.id.in_(wanted), owned))) if wanted else set()
    others = [i for i in wanted if i not in ours]
    if others:
        whose = "a mall-wide zone or another merchant's" if model is Zone else "another merchant's"
        raise RuleViolation(f"{noun.replace('_', ' ')} {others[0]} is {whose}: a deal targets only this merchant's "
                            "own stores, sale items and store zones", code="deal.target_not_yours",
                            details={"field": f"{noun}_ids", "ids": others})
    return wanted


def _check(session: Session, merchant_id: int, values: dict[str, Any], changed: Sequence[str]) -> None:
    """Validate a deal's merged values; references are checked only where they changed."""
    if not values["starts_at"] < values["ends_at"]:
        raise InvalidInput("starts_at must be before ends_at", code="deal.invalid_window")
    if values["member_rule"] not in MEMBER_RULES:
        raise InvalidInput(f"member_rule is one of {', '.join(MEMBER_RULES)}", code="request.invalid")
    if values.get("min_spend_fen") is not None and not 0 < values["min_spend_fen"] <= 100_000_000:
        raise InvalidInput("min_spend_fen is a positive amount in fen", code="request.invalid")
    if "store_id" in changed:
        store = session.get(Store, values["store_id"]) if id_in_range(values["store_id"]) else None
        if store is None or not store.active or store.merchant_id != merchant_id:
            raise RuleViolation("the deal's store must be an active store of this merchant",
                                code="deal.store_not_yours")
    for field, model, noun in (("zone_ids", Zone, "zone"), ("store_ids", Store, "store"),
                               ("sale_item_ids", SaleItem, "sale_item")):
        if field in changed:
            values[field] = _check_ids(session, merchant_id, model, values[field], noun)


def _check_parking(benefit_kind: str, min_spend_fen: int | None) -> None:
    # A parking coupon is used when paying for parking: no till sends a purchase amount to check.
    if benefit_kind in PARKING_KINDS and min_spend_fen is not None:
        raise InvalidInput("a parking coupon has no minimum spend: it is used when paying for parking, not at a till",
                           code="request.invalid")


# --- merchants' side -------------------------------------------------------------------------------

def create(session: Session, merchant_id: int, *, title: str, store_id: int, starts_at: datetime,
           ends_at: datetime, quota: int, per_member_limit: int, benefit: Mapping[str, Any], now: datetime,
           text: str = "", image_url: str | None = None, zone_ids: Sequence[int] = (),
           store_ids: Sequence[int] = (), sale_item_ids: Sequence[int] = (), member_rule: str = "everyone",
           followers_only: bool = False, min_spend_fen: int | None = None) -> Deal:
    """Create a draft deal at one of the merchant's stores."""
    values = dict(title=title, text=text, image_url=image_url, store_id=store_id, starts_at=starts_at,
                  ends_at=ends_at, per_member_limit=per_member_limit, zone_ids=list(zone_ids),
                  store_ids=list(store_ids), sale_item_ids=list(sale_item_ids), member_rule=member_rule,
                  followers_only=followers_only, min_spend_fen=min_spend_fen)
    _check(session, merchant_id, values, list(values))
    if quota <= 0 or per_member_limit <= 0:
        raise InvalidInput("quota and per_member_limit are positive", code="request.invalid")
    _check_parking(benefit_columns(benefit)["benefit_kind"], min_spend_fen)
    deal = Deal(merchant_id=merchant_id, quota=quota, **values, **benefit_columns(benefit), status="draft",
                claimed=0, redeemed=0, created_at=now, updated_at=now)
    session.add(deal)
    session.flush()
    return deal


def get_own(session: Session, merchant_id: int, deal_id: int, *, lock: bool = False) -> Deal:
    """The merchant's deal; another merchant's is NotFound, exactly like one that does not exist."""
    return get_or_404(session, Deal, deal_id, code="deal.not_found", what="deal", lock=lock,
                      accept=lambda deal: deal.merchant_id == merchant_id)


def list_own(session: Session, merchant_id: int, status: str | None = None) -> list[Deal]:
    query = select(Deal).where(Deal.merchant_id == merchant_id)
    if status is not None:
        query = query.where(Deal.status == status)
    return list(session.scalars(query.order_by(Deal.id.desc())))


def update(session: Session, merchant_id: int, deal_id: int, changes: Mapping[str, Any], now: datetime) -> Deal:
    """Edit a deal; content edits of a live or paused deal go back to review."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    # Locked: the quota check below must see the claims that are being made right now.
    deal = get_own(session, merchant_id, deal_id, lock=True)
    if deal.status == "ended":
        raise Conflict("an ended deal cannot be edited", code="deal.invalid_state")
    changes = {f: sorted(set(v)) if f.endswith("_ids") else v for f, v in changes.items()}
    changed = [f for f in changes if f == "benefit" and changes[f] != deal.benefit
               or f != "benefit" and changes[f] != getattr(deal, f)]
    if deal.claimed and any(f in changed for f in _PROMISED):
        raise Conflict("members hold coupons for this deal: its store and benefit stay as they are",
                       code="deal.terms_locked")
    if "quota" in changes and changes["quota"] < deal.claimed:
        raise RuleViolation(f"{deal.claimed} coupons are claimed: the quota cannot go below that",
                            code="deal.quota_below_claimed", details={"claimed": deal.claimed})
    values = {f: getattr(deal, f) for f in EDITABLE if f != "benefit"} | {
        f: v for f, v in changes.items() if f != "benefit"}
    _check(session, merchant_id, values, changed)
    if "benefit" in changed:
        values |= benefit_columns(changes["benefit"])
    _check_parking(values.get("benefit_kind", deal.benefit_kind), values["min_spend_fen"])
    for name, value in values.items():
        setattr(deal, name, value)
    content_changed = any(f in CONTENT_FIELDS for f in changed)
    if deal.status in ("live", "paused") and content_changed and not _auto_approved(session, merchant_id):
        deal.status = "pending_approval"
    deal.updated_at = now
    session.flush()
    return deal


def _auto_approved(session: Session, merchant_id: int) -> bool:
    return bool(session.scalar(select(Merchant.auto_approve_deals).where(Merchant.id == merchant_id)))


# Which transitions each verb makes: {from status: to status}.
_MOVES = {
    "submit": {"draft": "pending_approval", "rejected": "pending_approval"},
    "pause": {"live": "paused"},
    "resume": {"paused": "live"},
    "end": {"draft": "ended", "pending_approval": "ended", "live": "ended", "paused": "ended",
            "rejected": "ended"},
    "approve": {"pending_approval": "live"},
    "reject": {"pending_approval": "rejected"},
}


# How a refusal says where a deal stands ("cannot resume this deal: it has ended").
_STANDING = {"draft": "it is a draft", "pending_approval": "it is pending approval", "live": "it is live",
             "paused": "it is paused", "ended": "it has ended", "rejected": "it was rejected"}


def _move(deal: Deal, verb: str, now: datetime) -> Deal:
    target = _MOVES[verb].get(deal.status)
    if target is None:
        standing = _STANDING.get(deal.status, f"it is {deal.status}")
        raise Conflict(f"cannot {verb} this deal: {standing}", code="deal.invalid_state",
                       details={"status": deal.status})
    deal.status, deal.updated_at = target, now
    return deal


def transition(session: Session, merchant_id: int, deal_id: int, verb: str, now: datetime) -> Deal:
    """The merchant submits, pauses, resumes or ends its deal; submit goes live if auto-approved."""
    if verb not in ("submit", "pause", "resume", "end"):
        raise ValueError(verb)
    deal = _move(get_own(session, merchant_id, deal_id, lock=True), verb, now)
    if verb == "submit":
        deal.rejection_reason = None
        if _auto_approved(session, merchant_id):
            deal.status = "live"
    session.flush()
    return deal


# --- ops' side -------------------------------------------------------------------------------------

def review(session: Session, deal_id: int, *, approve: bool, now: datetime, reason: str | None = None) -> Deal:
    """Ops approve a pending deal (it goes live) or reject it with a reason the merchant sees."""
    deal = _move(get_or_404(session, Deal, deal_id, code="deal.not_found", what="deal", lock=True), "approve" if approve else "reject", now)
    deal.rejection_reason = None if approve else reason
    session.flush()
    return deal


def participating_stores(session: Session, ids: Sequence[int] | None) -> list[int] | None:
    """A mall-wide deal's participating stores, checked: active stores that a merchant runs (None: all of them)."""
    if ids is None:
        return None
    wanted = sorted(set(ids))
    if not wanted:
        raise InvalidInput("name at least one participating store, or none at all for every store",
                           code="request.invalid")
    found = set(session.scalars(select(Store.id).where(Store.id.in_([i for i in wanted if id_in_range(i)]),
                                                       Store.active, Store.merchant_id.is_not(None))))
    missing = [i for i in wanted if i not in found]
    if missing:
        raise RuleViolation(f"there is no active store with a merchant with id {missing[0]}",
                            code="venue.unknown_store", details={"ids": missing})
    return wanted


def create_mall_wide(session: Session, *, store_id: int, title: str, starts_at: datetime, ends_at: datetime,
                     quota: int, per_member_limit: int, benefit: Mapping[str, Any], now: datetime, text: str = "",
                     image_url: str | None = None, participating_store_ids: Sequence[int] | None = None,
                     member_rule: str = "everyone", min_spend_fen: int | None = None) -> Deal:
    """Ops publish a mall-wide deal, live at once: the mall's own (its house merchant's ``store_id``, the service
    desk) and redeemable at the till of every participating store (``None``: every active store with a merchant)."""
    store = session.get(Store, store_id) if id_in_range(store_id) else None
    if store is None or not store.active or store.merchant_id is None:
        raise RuleViolation("a mall-wide deal is issued by an active store with a merchant (the mall's service desk)",
                            code="venue.unknown_store", details={"ids": [store_id]})
    values = dict(title=title, text=text, image_url=image_url, store_id=store_id, starts_at=starts_at,
                  ends_at=ends_at, per_member_limit=per_member_limit, zone_ids=[], store_ids=[], sale_item_ids=[],
                  member_rule=member_rule, followers_only=False, min_spend_fen=min_spend_fen)
    _check(session, store.merchant_id, values, [])
    _check_parking(benefit_columns(benefit)["benefit_kind"], min_spend_fen)
    deal = Deal(merchant_id=store.merchant_id, quota=quota, **values, **benefit_columns(benefit), status="live",
                scope="mall", participating_store_ids=participating_stores(session, participating_store_ids),
                claimed=0, redeemed=0, created_at=now, updated_at=now)
    session.add(deal)
    session.flush()
    return deal


def redeemable_at(session: Session, deal: Deal, store_id: int) -> bool:
    """Whether a till at ``store_id`` may redeem the deal's coupons: its own store, or a participating one."""
    if store_id == deal.store_id:
        return True
    if deal.scope != "mall":
        return False
    if deal.participating_store_ids is not None and store_id not in deal.participating_store_ids:
        return False
    store = session.get(Store, store_id)
    return store is not None and store.active and store.merchant_id is not None


def list_all(session: Session, status: str | None = None, merchant_id: int | None = None) -> list[Deal]:
    """Deals for ops, oldest first (the review queue's order)."""
    query = select(Deal)
    if status is not None:
        query = query.where(Deal.status == status)
    if merchant_id is not None:
        query = query.where(Deal.merchant_id == merchant_id)
    return list(session.scalars(query.order_by(Deal.updated_at, Deal.id)))


def set_auto_approve(session: Session, merchant_id: int, value: bool) -> Merchant:
    merchant = get_or_404(session, Merchant, merchant_id, code="merchant.not_found", what="merchant")
    merchant.auto_approve_deals = value
    session.flush()
    return merchant


# --- members' side ---------------------------------------------------------------------------------

