"""Coupons: members claim deals, tills redeem the coupons once.

A claim locks the deal's row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite transactions begin
``IMMEDIATE``, so writers queue), so the quota and the per-member limit are checked and the
counter moved under one lock: concurrent claims can never exceed either. A redemption locks the
coupon's row; the till's ``request_id`` makes its retry return the first result.

A coupon's status is derived: ``used`` once redeemed, else ``expired`` from its expiry (the deal's
``ends_at``, or the coupon's own ``valid_until`` when sooner: a new-member pack coupon lasts the
member's first month), else ``active``. Pausing or ending a deal stops claims, not the coupons members hold.

A parking coupon (``parking_hours``, ``parking_amount``) is claimed and issued like any other, but also
reserves its value from the merchant's parking quota (mallapp.domain.parking.quota, locked after the
deal); it is used when paying for parking (mallapp.domain.parking.coupons), and a till refuses it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import BigInteger, ForeignKey, Index, String, and_, case, cast, func, literal, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from mallapp import i18n
from mallapp.db import Base, UTCDateTime, get_or_404, insert_or_nothing
from mallapp.domain import members, notifications, points, signed_codes
from mallapp.domain.benefits import PARKING_KINDS
from mallapp.domain.deals import Deal, member_matches, redeemable_at
from mallapp.domain.members import Member
from mallapp.domain.parking import quota
from mallapp.domain.points import BigId
from mallapp.domain.venue import Store
from mallapp.errors import Conflict, Forbidden, InvalidInput, NotFound, RuleViolation
from mallapp.settings import Settings

if TYPE_CHECKING:
    from mallapp.domain.notifications import Senders

Status = Literal["active", "used", "expired"]
QR_PREFIX = "CP1"
# A coupon's QR code: CP1.<coupon id>.<code>.<signature>.
QR = signed_codes.Kind(QR_PREFIX, "coupon", (int, str))
# Codes are read off a phone and typed at a till: no 0/O, 1/I/L.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


class Coupon(Base):
    __tablename__ = "coupons"
    __table_args__ = (Index("ix_coupons_deal_id_member_id", "deal_id", "member_id"),
                      Index("ix_coupons_member_id_claimed_at", "member_id", "claimed_at"),
                      # A merchant's redemptions by day (mallapp.domain.merchant_desk).
                      Index("ix_coupons_store_redeemed_at", "redeemed_at_store", "redeemed_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    code: Mapped[str] = mapped_column(String(16), unique=True)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    redeemed_at_store: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    # The staff member whose till redeemed it; None when the merchant's API key did (a POS integration).
    redeemed_by: Mapped[int | None] = mapped_column(ForeignKey("merchant_staff.id"))
    # The till's id for the redeem call: a retry carrying it gets the first answer again.
    request_id: Mapped[str | None] = mapped_column(String(64))
    bonus_points: Mapped[int | None] = mapped_column()
    # What the till sent as the purchase amount, and the discount it was told to grant (amount_off and
    # percent_off; never more than the amount). None when the till sent no amount.
    spend_fen: Mapped[int | None] = mapped_column(BigInteger)
    discount_fen: Mapped[int | None] = mapped_column(BigInteger)
    # A coupon issued rather than claimed (mallapp.domain.rewards): its own expiry, and the key that makes it once.
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    issue_key: Mapped[str | None] = mapped_column(String(80), unique=True)

    def expires_at(self, deal: Deal) -> datetime:
        return deal.ends_at if self.valid_until is None else min(deal.ends_at, self.valid_until)

    def status(self, deal: Deal, now: datetime) -> Status:
        if self.redeemed_at is not None:
            return "used"
        return "expired" if now >= self.expires_at(deal) else "active"


@dataclass(frozen=True)
class Held:
    """A coupon with its deal, as the wallet and the till show it."""

    coupon: Coupon
    deal: Deal


@dataclass(frozen=True)
class Redeemed:
    coupon: Coupon
    deal: Deal
    replayed: bool


# --- codes and the QR payload ----------------------------------------------------------------------

def new_code(length: int) -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def normalize_code(text: str) -> str:
    """What a cashier typed, in canonical form: upper case, without spaces or dashes."""
    return text.replace("-", "").replace(" ", "").upper()


def qr_payload(secret: bytes, coupon: Coupon) -> str:
    """The signed payload of the coupon's QR code: ``CP1.<id>.<code>.<HMAC>``."""
    return QR.sign(secret, coupon.id, coupon.code)


def code_from_qr(secret: bytes, payload: str) -> str:
    """The coupon code in a genuine QR payload, or InvalidInput."""
    try:
        _, code = QR.open(secret, payload)
    except signed_codes.Refused as refused:
        message = "not a coupon QR code" if refused.reason == "malformed" else "the coupon QR code is not genuine"
        raise InvalidInput(message, code="coupon.invalid_qr") from None
    return str(code)


# --- claiming --------------------------------------------------------------------------------------

def claim(session: Session, settings: Settings, member_id: int, deal_id: int, now: datetime) -> Held:
    """Give the member a coupon for a live deal, within its quota and the per-member limit."""
    member = members.get(session, member_id)
    deal = get_or_404(session, Deal, deal_id, code="deal.not_found", what="deal", lock=True,
                      accept=lambda deal: deal.status not in ("draft", "pending_approval", "rejected")
                      and deal.pack_key is None)
    if deal.status != "live" or not deal.within_validity(now):
        raise RuleViolation("this deal cannot be claimed now", code="deal.not_available",
                            details={"status": deal.status})
    if not member_matches(settings, deal.member_rule, member, now):
        raise RuleViolation("this deal is for other members", code="deal.member_not_eligible",
                            details={"member_rule": deal.member_rule})
    if deal.claimed >= deal.quota:
        raise RuleViolation("every coupon of this deal has been claimed", code="deal.sold_out")
    held = claims_by_deal(session, member_id, [deal.id]).get(deal.id, 0)
    if held >= deal.per_member_limit:
        raise RuleViolation(f"a member may claim this deal {deal.per_member_limit} time(s)",
                            code="deal.limit_reached")
    quota.ensure(session, deal, now)  # a parking coupon: its merchant's quota, locked after the deal
    values = dict(deal_id=deal.id, member_id=member_id, claimed_at=now, redeemed_at=None, redeemed_at_store=None,
                  request_id=None, bonus_points=None, valid_until=None, issue_key=None)
    coupon_id = _insert(session, settings, values, ["code"])
    assert coupon_id is not None
    quota.reserve(session, deal, coupon_id, now)
    deal.claimed += 1  # under the deal's lock, in the coupon's transaction
    session.flush()
    return Held(Coupon(id=coupon_id, **values), deal)


def issue(session: Session, settings: Settings, member_id: int, deal: Deal, *, key: str, valid_until: datetime,
          now: datetime) -> Held | None:
    """Give the member a coupon of ``deal`` unasked, once per ``key``; None when the key was used before.

    A parking coupon reserves its value from the merchant's quota: refused (``parking.quota_exhausted``)
    before anything is written when the quota falls short, so a caller may catch that and go on.
    """
    if quota.cost(deal) is not None:
        # The deal's row before the quota's, as a claim takes them: never the other way round (a deadlock).
        session.execute(select(Deal.id).where(Deal.id == deal.id).with_for_update())
    try:
        quota.ensure(session, deal, now)
    except Conflict:
        # A key issued before (its coupon reserved then): a repeat, not a refusal.
        if session.scalar(select(Coupon.id).where(Coupon.issue_key == key)) is not None:
            return None
        raise
    values = dict(deal_id=deal.id, member_id=member_id, claimed_at=now, redeemed_at=None, redeemed_at_store=None,
                  request_id=None, bonus_points=None, valid_until=valid_until, issue_key=key)
    # The unique key decides: a concurrent issue of the same key waits for this one and inserts nothing.
    coupon_id = _insert(session, settings, values, ["issue_key"])
    if coupon_id is None:
        return None
    quota.reserve(session, deal, coupon_id, now)
    session.execute(update(Deal).where(Deal.id == deal.id).values(claimed=Deal.claimed + 1))
    return Held(Coupon(id=coupon_id, **values), deal)


def _insert(session: Session, settings: Settings, values: dict[str, object], conflict_on: list[str]) -> int | None:
    """Insert a coupon with a fresh code; None when a row with the same ``conflict_on`` key exists.

    Keyed on ``issue_key``, a code collision (one in 31^8 or more) raises IntegrityError and the
    caller's transaction fails: rare enough for a retry to be the answer.
    """
    for _ in range(5):
        values["code"] = new_code(settings.deals.coupon_code_length)
        coupon_id = insert_or_nothing(session, Coupon, values, conflict_on)
        if coupon_id is not None or conflict_on != ["code"]:
            return coupon_id
    raise Conflict("could not allocate a coupon code, try again", code="coupon.retry")  # pragma: no cover


def claims_by_deal(session: Session, member_id: int, deal_ids: Sequence[int]) -> dict[int, int]:
    """How many coupons the member holds of each deal (used and expired ones count)."""
    if not deal_ids:
        return {}
    rows = session.execute(select(Coupon.deal_id, func.count()).where(Coupon.member_id == member_id,
                                                                      Coupon.deal_id.in_(deal_ids))
                           .group_by(Coupon.deal_id))
    return {deal_id: n for deal_id, n in rows}


def wallet(session: Session, member_id: int, now: datetime, status: Status | None = None,
           limit: int = 50) -> list[Held]:
    """The member's coupons, newest first, optionally of one status."""
    query = select(Coupon, Deal).join(Deal, Deal.id == Coupon.deal_id).where(Coupon.member_id == member_id)
    own_expiry_passed = Coupon.valid_until.is_not(None) & (Coupon.valid_until <= now)
    if status == "used":
        query = query.where(Coupon.redeemed_at.is_not(None))
    elif status == "active":
        query = query.where(Coupon.redeemed_at.is_(None), Deal.ends_at > now, ~own_expiry_passed)
    elif status == "expired":
        query = query.where(Coupon.redeemed_at.is_(None), (Deal.ends_at <= now) | own_expiry_passed)
    rows = session.execute(query.order_by(Coupon.claimed_at.desc(), Coupon.id.desc()).limit(limit))
    return [Held(coupon, deal) for coupon, deal in rows]


# --- redeeming at the till -------------------------------------------------------------------------

def redeem(session: Session, settings: Settings, secret: bytes, *, merchant_id: int, store_id: int,
           code: str | None = None, qr: str | None = None, request_id: str, now: datetime,
           spend_fen: int | None = None, staff_id: int | None = None) -> Redeemed:
    """Use a coupon at the till, once; the same request_id again returns the first result.

    A store's coupon is redeemed at its deal's store; a mall-wide one (``Deal.scope`` "mall") at any
    participating store of the calling merchant. ``spend_fen``, the purchase amount, is checked against the
    deal's minimum spend and sets the discount the till grants (never more than the amount).
    """
    if (code is None) == (qr is None):
        raise InvalidInput("send the coupon's code or its QR payload", code="request.invalid")
    wanted = code_from_qr(secret, qr) if qr is not None else normalize_code(code or "")
    coupon = session.scalar(select(Coupon).where(Coupon.code == wanted).with_for_update()
                            .execution_options(populate_existing=True))
    deal = session.get(Deal, coupon.deal_id) if coupon is not None else None
    # Another merchant's coupon answers as a made-up code does: a till must not learn that a code exists.
    # A mall-wide coupon is the mall's, for every merchant's till.
    if coupon is None or deal is None or (deal.merchant_id != merchant_id and deal.scope != "mall"):
        raise NotFound("no coupon with this code", code="coupon.not_found")
    if deal.benefit_kind in PARKING_KINDS:
        raise RuleViolation("a parking coupon is used when paying for parking (停车缴费), not at a till",
                            code="coupon.parking_only", details={"benefit": deal.benefit})
    if coupon.redeemed_at is not None:
        if coupon.request_id == request_id:
            return Redeemed(coupon, deal, replayed=True)
        raise Conflict("this coupon has already been used", code="coupon.already_used",
                       details={"redeemed_at": coupon.redeemed_at.isoformat(), "store_id": coupon.redeemed_at_store})
    if deal.scope == "mall":
        _check_mall_wide_till(session, deal, merchant_id, store_id)
    elif store_id != deal.store_id:
        raise RuleViolation("this coupon is valid only at the deal's store", code="coupon.wrong_store",
                            details={"store_id": deal.store_id})
    if now < deal.starts_at:
        raise RuleViolation("this coupon is not valid yet", code="coupon.not_yet_valid",
                            details={"starts_at": deal.starts_at.isoformat()})
    if now >= coupon.expires_at(deal):
        raise RuleViolation("this coupon has expired", code="coupon.expired",
                            details={"ends_at": coupon.expires_at(deal).isoformat()})
    if deal.min_spend_fen is not None:
        if spend_fen is None:
            raise RuleViolation("this coupon has a minimum spend: send the purchase amount (amount_fen)",
                                code="coupon.amount_required", details={"min_spend_fen": deal.min_spend_fen})
        if spend_fen < deal.min_spend_fen:
            raise RuleViolation(f"this coupon needs a purchase of at least {deal.min_spend_fen / 100:.2f} yuan",
                                code="coupon.below_min_spend",
                                details={"min_spend_fen": deal.min_spend_fen, "amount_fen": spend_fen})
    coupon.spend_fen, coupon.discount_fen = spend_fen, discount(deal, spend_fen)
    coupon.redeemed_at, coupon.redeemed_at_store, coupon.request_id = now, store_id, request_id
    coupon.redeemed_by = staff_id
    if deal.benefit_kind == "bonus_points" and deal.benefit_value:
        # Keyed by the coupon, so no path (a retry, a second request id) can credit it twice.
        points.credit(session, settings, coupon.member_id, deal.benefit_value, "coupon",
                      source_ref=f"coupon:{coupon.id}", idempotency_key=f"coupon:{coupon.id}:bonus", now=now,
                      note=deal.title[:200])
        coupon.bonus_points = deal.benefit_value
    # One statement, in the coupon's transaction: the figure stays exact under concurrent redemptions.
    session.execute(update(Deal).where(Deal.id == deal.id).values(redeemed=Deal.redeemed + 1))
    session.flush()
    session.refresh(deal)
    return Redeemed(coupon, deal, replayed=False)


def discount(deal: Deal, spend_fen: int | None) -> int | None:
    """What the coupon takes off a purchase of ``spend_fen``: never more than the amount; None when the
    amount is unknown or the benefit is no discount (a gift, bonus points)."""
    if spend_fen is None or deal.benefit_value is None:
        return None
    if deal.benefit_kind == "amount_off":
        return min(deal.benefit_value, spend_fen)
    if deal.benefit_kind == "percent_off":
        return spend_fen * deal.benefit_value // 100
    return None


def _check_mall_wide_till(session: Session, deal: Deal, merchant_id: int, store_id: int) -> None:
    store = session.get(Store, store_id)
    if store is None or store.merchant_id != merchant_id:
        raise Forbidden("this till is not at one of this merchant's stores", code="coupon.store_not_yours",
                        details={"store_id": store_id})
    if not redeemable_at(session, deal, store_id):
        raise RuleViolation("this mall-wide coupon is not accepted at this store", code="coupon.store_not_participating",
                            details={"participating_store_ids": deal.participating_store_ids})


# --- reminders -------------------------------------------------------------------------------------

def reminder_key(coupon_id: int) -> str:
    return f"coupon:{coupon_id}:expiring"


def remind_expiring(sessions: sessionmaker[Session], settings: Settings, senders: Senders, now: datetime,
                    batch: int = 500, keep_going: Callable[[], bool] | None = None) -> int:
    """Tell members of unused coupons expiring within ``[deals] coupon_reminder_hours``, once each; how many.

    For the clock. A batch is recorded in one transaction and sent after its commit; the reminder's
    notification key is what marks a coupon reminded, so a second run, or one after a crash,
    reminds nobody twice (see :mod:`mallapp.domain.notifications`). ``keep_going`` (the clock's
    lock check) is asked before each batch; when it says no, the run stops and the next finishes.
    """
    hours = settings.deals.coupon_reminder_hours
    if not hours:
        return 0
    expires = case((and_(Coupon.valid_until.is_not(None), Coupon.valid_until < Deal.ends_at), Coupon.valid_until),
                   else_=Deal.ends_at)
    key = literal("coupon:") + cast(Coupon.id, String) + literal(":expiring")
    told = (select(notifications.Notification.id)
            .where(notifications.Notification.member_id == Coupon.member_id, notifications.Notification.key == key)
            .exists())
    due = (select(Coupon.id, Coupon.member_id, Deal.title, Deal.id.label("deal_id"), Deal.store_id,
                  Store.name.label("store"), expires.label("expires_at"))
           .join(Deal, Deal.id == Coupon.deal_id).join(Store, Store.id == Deal.store_id)
           .where(Coupon.redeemed_at.is_(None), expires > now, expires <= now + timedelta(hours=hours), ~told)
           .order_by(Coupon.id).limit(batch))
    total = 0
    while keep_going is None or keep_going():
        with sessions.begin() as session:
            rows = session.execute(due).all()
            if not rows:
                return total
            notifications.record_many(session, settings, [(row.member_id, _reminder(settings, row)) for row in rows],
                                      now, senders.online({row.member_id for row in rows}))
        total += len(rows)
    return total


def _reminder(settings: Settings, row: Any) -> notifications.Message:
    tz, expires_at, deal_title, store = settings.mall.tz, row.expires_at, row.title, row.store

    def render(locale: str) -> notifications.Text:
        return notifications.Text(
            i18n.t(locale, "member.coupon.expiring.title", until=i18n.fmt_datetime(expires_at, tz, locale)),
            i18n.t(locale, "member.coupon.expiring.body", title=deal_title, store=store),
            # ends_at in WeChat's time data format, whatever the locale
            {"store": store, "ends_at": expires_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")})

    return notifications.Message(kind="reminder", key=reminder_key(row.id), text=render, store_id=row.store_id,
                                 page=f"{settings.notifications.deal_page}?id={row.deal_id}")


def claimable(session: Session, settings: Settings, member: Member, now: datetime) -> list[Deal]:
    """Live deals within validity, not sold out, whose member rule fits, under the member's limit."""
    deals = session.scalars(select(Deal).where(Deal.status == "live", Deal.starts_at <= now, Deal.ends_at > now,
                                               Deal.claimed < Deal.quota, Deal.pack_key.is_(None))
                            .order_by(Deal.ends_at, Deal.id))
    fitting = [d for d in deals if member_matches(settings, d.member_rule, member, now)]
    held = claims_by_deal(session, member.id, [d.id for d in fitting])
    return [d for d in fitting if held.get(d.id, 0) < d.per_member_limit]
