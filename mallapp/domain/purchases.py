"""Purchases and refunds posted by merchants' tills: points earned and taken back.

A purchase is idempotent on (merchant, receipt number): the till may retry as often as it
likes and the member earns once. A refund is idempotent on (merchant, refund number).

Refund policy for points already spent: a refund takes back the share of the purchase's points
that the refunded share of the amount earned (rounded down, cumulatively, so several partial
refunds add up to exactly the full reversal). Points of the purchase that already lapsed unused
are not taken again (``points_lapsed``). The rest comes from the purchase's own lots first, then
from the member's other lots. Points the member has already spent are not taken below zero:
they are recorded as a debt on the member's account, which the member's next earnings settle
first. The refund answer says how many points were taken now and how many are owed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime, insert_or_nothing
from mallapp.domain import auth, members, points, rewards
from mallapp.domain.points import BigId
from mallapp.errors import Conflict, InvalidInput, NotFound, RuleViolation
from mallapp.settings import Settings


class Purchase(Base):
    __tablename__ = "purchases"
    __table_args__ = (UniqueConstraint("merchant_id", "receipt_no"),
                      CheckConstraint("amount_fen > 0", name="amount_positive"),
                      CheckConstraint("refunded_fen >= 0 AND refunded_fen <= amount_fen", name="refund_in_range"),
                      # The till's receipts of a day, newest first (mallapp.domain.till.receipts).
                      Index("ix_purchases_merchant_occurred", "merchant_id", "occurred_at"),
                      # A day's sales (the ops dashboard): the amount rides in the index, so PostgreSQL sums a
                      # day's purchases from the index alone instead of visiting a heap page per purchase.
                      Index("ix_purchases_occurred_at", "occurred_at", postgresql_include=["amount_fen"]))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    receipt_no: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    points_earned: Mapped[int] = mapped_column(Integer)
    birthday_bonus: Mapped[int] = mapped_column(Integer)
    points_reversed: Mapped[int] = mapped_column(Integer, default=0)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def points_total(self) -> int:
        return self.points_earned + self.birthday_bonus

    @property
    def source_ref(self) -> str:
        return f"purchase:{self.id}"


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (UniqueConstraint("merchant_id", "refund_no"),
                      CheckConstraint("amount_fen > 0", name="amount_positive"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    refund_no: Mapped[str] = mapped_column(String(64))
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    points_reversed: Mapped[int] = mapped_column(Integer)
    points_taken: Mapped[int] = mapped_column(Integer)
    points_owed: Mapped[int] = mapped_column(Integer)
    # Of points_reversed, those the purchase's own lots had already lost to expiry: not taken again.
    points_lapsed: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class Recorded:
    purchase: Purchase
    replayed: bool


@dataclass(frozen=True)
class Refunded:
    refund: Refund
    purchase: Purchase
    replayed: bool


def record_purchase(session: Session, settings: Settings, *, merchant_id: int, member_id: int,
                    receipt_no: str, amount_fen: int, occurred_at: datetime, now: datetime) -> Recorded:
    """Record a till's purchase and award its points, once per receipt."""
    member = members.earning_profile(session, member_id)
    earned = points.purchase_points(settings, amount_fen, member.tier)
    local_day = occurred_at.astimezone(settings.mall.tz).date()
    bonus = points.birthday_bonus(settings, earned) if members.is_birthday(member, local_day) else 0
    values = dict(merchant_id=merchant_id, receipt_no=receipt_no, member_id=member_id, amount_fen=amount_fen,
                  refunded_fen=0, points_earned=earned, birthday_bonus=bonus, points_reversed=0,
                  occurred_at=occurred_at, created_at=now)
    # The unique (merchant, receipt) row decides: a retry, even a concurrent one, inserts nothing.
    purchase_id = insert_or_nothing(session, Purchase, values, ["merchant_id", "receipt_no"])
    if purchase_id is not None:
        purchase = Purchase(id=purchase_id, **values)
        key = f"purchase:{merchant_id}:{receipt_no}"
        if earned:
            points.credit(session, settings, member_id, earned, "purchase", source_ref=purchase.source_ref,
                          idempotency_key=key, now=now)
        if bonus:
            points.credit(session, settings, member_id, bonus, "birthday_bonus",
                          source_ref=purchase.source_ref, idempotency_key=f"{key}:birthday", now=now)
        if member.referred_by_id is not None:
            earlier = session.scalar(select(Purchase.id).where(Purchase.member_id == member_id,
                                                               Purchase.id != purchase_id).limit(1))
            if earlier is None:
                rewards.reward_referral(session, settings, member_id=member_id, referrer_id=member.referred_by_id,
                                        purchase_id=purchase_id, purchase_points=earned, now=now)
        return Recorded(purchase, replayed=False)
    existing = find(session, merchant_id, receipt_no)
    if existing is None:  # pragma: no cover - ON CONFLICT only yields to a committed row
        raise Conflict("the receipt is being recorded; retry", code="purchase.retry")
    if existing.amount_fen != amount_fen or existing.member_id != member_id:
        raise Conflict("this receipt number was already posted with a different amount or member",
                       code="purchase.receipt_conflict",
                       details={"receipt_no": receipt_no, "amount_fen": existing.amount_fen})
    return Recorded(existing, replayed=True)


# A till's clock may run a little fast; a receipt older than this is not posted for points.
MAX_CLOCK_SKEW = timedelta(minutes=10)
MAX_RECEIPT_AGE = timedelta(days=30)


def post_from_till(session: Session, settings: Settings, secret: bytes, *, merchant_id: int, member_code: str,
                   receipt_no: str, amount_fen: int, occurred_at: datetime, now: datetime) -> Recorded:
    """Record a purchase for the member whose code the till scanned (or the till reference it was given when it
    found the member by phone: mallapp.domain.till).

    A retry of a receipt already recorded is answered even after the member code has expired
    (tills queue and resend while offline); a new receipt needs a live code.
    """
    try:
        member_id = auth.member_for_till_code(secret, member_code, merchant_id, now)
    except InvalidInput as exc:
        if exc.code != "card.expired":
            raise
        existing = find(session, merchant_id, receipt_no)
        if existing is None or existing.member_id != int(member_code.split(".")[1]):
            raise
        member_id = existing.member_id
    if not now - MAX_RECEIPT_AGE <= occurred_at <= now + MAX_CLOCK_SKEW:
        raise RuleViolation("occurred_at must lie within the last 30 days and not in the future",
                            code="purchase.time_out_of_range")
    return record_purchase(session, settings, merchant_id=merchant_id, member_id=member_id, receipt_no=receipt_no,
                           amount_fen=amount_fen, occurred_at=occurred_at, now=now)


def refund(session: Session, *, merchant_id: int, receipt_no: str, refund_no: str, amount_fen: int,
           now: datetime) -> Refunded:
    """Refund (part of) a receipt and take back the points it earned, once per refund number."""
    purchase = session.scalar(
        select(Purchase).where(Purchase.merchant_id == merchant_id, Purchase.receipt_no == receipt_no)
        .with_for_update()
    )
    if purchase is None:
        raise NotFound("no purchase with this receipt number", code="purchase.not_found")
    session.refresh(purchase)
    done = session.scalar(select(Refund).where(Refund.merchant_id == merchant_id, Refund.refund_no == refund_no))
    if done is not None:
        if done.purchase_id != purchase.id or done.amount_fen != amount_fen:
            raise Conflict("this refund number was already used for a different refund",
                           code="refund.number_conflict")
        return Refunded(done, purchase, replayed=True)
    if purchase.refunded_fen + amount_fen > purchase.amount_fen:
        raise RuleViolation("refunds would exceed the purchase amount", code="refund.exceeds_purchase",
                            details={"refundable_fen": purchase.amount_fen - purchase.refunded_fen})
    purchase.refunded_fen += amount_fen
    due = purchase.points_total * purchase.refunded_fen // purchase.amount_fen - purchase.points_reversed
    values = dict(merchant_id=merchant_id, refund_no=refund_no, purchase_id=purchase.id, amount_fen=amount_fen,
                  points_reversed=due, points_taken=0, points_owed=0, points_lapsed=0, created_at=now)
    # Claim the refund number before any points move. The purchase's lock does not cover the same
    # number racing on another receipt: the unique (merchant, refund_no) row decides, the loser waits
    # for the winner and answers 409 (its transaction is rolled back by the caller).
    refund_id = insert_or_nothing(session, Refund, values, ["merchant_id", "refund_no"])
    if refund_id is None:
        raise Conflict("this refund number was already used for a different refund", code="refund.number_conflict")
    lapsed = _unforgiven_lapse(session, purchase, now, due)
    if due - lapsed:
        posted, owed = points.take_back(
            session, purchase.member_id, due - lapsed, source_ref=purchase.source_ref,
            idempotency_key=f"refund:{merchant_id}:{refund_no}", now=now, note=f"refund {refund_no}")
        values.update(points_taken=due - lapsed - owed, points_owed=owed)
    values["points_lapsed"] = lapsed
    if due:
        session.execute(update(Refund).where(Refund.id == refund_id).values(
            points_taken=values["points_taken"], points_owed=values["points_owed"], points_lapsed=lapsed))
    purchase.points_reversed += due
    return Refunded(Refund(id=refund_id, **values), purchase, replayed=False)


def _unforgiven_lapse(session: Session, purchase: Purchase, now: datetime, due: int) -> int:
    """How much of ``due`` the purchase's points already lost to expiry (and no earlier refund counted)."""
    if not due:
        return 0
    points.expire_due(session, now, member_id=purchase.member_id)  # a lapse due by now counts too
    lapsed = points.lapsed_from(session, purchase.source_ref)
    counted = int(session.scalar(select(func.coalesce(func.sum(Refund.points_lapsed), 0))
                                 .where(Refund.purchase_id == purchase.id)) or 0)
    return min(due, lapsed - counted)


def find(session: Session, merchant_id: int, receipt_no: str) -> Purchase | None:
    """The merchant's purchase with this receipt number (another merchant's is never found)."""
    return session.scalar(
        select(Purchase).where(Purchase.merchant_id == merchant_id, Purchase.receipt_no == receipt_no)
    )
