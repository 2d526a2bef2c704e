"""The till: what a cashier's screen needs beyond posting and refunding (mallapp.domain.purchases does those).

* **Who is this member?** A card code (``MC1…``, the member's phone shows it for three minutes) tells the till the
  member's nickname, tier and masked phone: enough to greet them and to see the right card was scanned, nothing
  more (no id, no balance, no full phone).
* **A member whose phone is dead** is found by the *full* phone number they say aloud. The answer is the
  nickname, the masked phone and a *till reference* (``TR1.<member>.<merchant>.<expires>.<sig>``): a signed
  code the till posts in place of the card code. It works only for the merchant that asked, only for
  ``[till] phone_ref_ttl_s`` (ten minutes), and each staff member may ask ``[till] phone_lookups_per_hour``
  times an hour, found or not: a number is never narrowed from its last digits, and a till cannot be used
  to test a list of numbers for membership.
* **Today's receipts** of the merchant, newest first, paged, for refunds; **today's promotions** the till
  must honour; **the merchant's stores** (a coupon is redeemed at a store).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from redis import Redis
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from mallapp.db import MAX_ID
from mallapp.domain import auth
from mallapp.domain.deals import Deal
from mallapp.domain.members import Member, masked_phone
from mallapp.domain.privacy import TOMBSTONE
from mallapp.domain.purchases import Purchase
from mallapp.errors import NotFound, RateLimited
from mallapp.settings import Settings

# Found by the full number only: +<country><number>, or a mainland mobile's 11 digits (+86 is assumed).
_MAINLAND_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_INTERNATIONAL = re.compile(r"[1-9][0-9]{7,14}")


@dataclass(frozen=True)
class MemberAtTill:
    """What a till may know of a member."""

    nickname: str | None
    tier: str | None
    masked_phone: str | None


@dataclass(frozen=True)
class FoundByPhone:
    nickname: str | None
    masked_phone: str | None
    till_ref: str
    expires_at: datetime


def _live_member(session: Session, member_id: int) -> Member:
    member = session.get(Member, member_id) if 0 < member_id <= MAX_ID else None
    if member is None or member.openid.startswith(TOMBSTONE):
        raise NotFound("member not found", code="member.not_found")
    return member


def member_at_till(session: Session, secret: bytes, *, code: str, merchant_id: int, now: datetime) -> MemberAtTill:
    """The nickname, tier and masked phone of the member whose code the till holds."""
    member = _live_member(session, auth.member_for_till_code(secret, code, merchant_id, now))
    return MemberAtTill(member.nickname, member.tier, masked_phone(member.phone))


# --- found by phone --------------------------------------------------------------------------------

def full_phone(text: str) -> str:
    """The number as stored (``+8613800138000``) from what a cashier typed, or ValueError unless it is a full one."""
    bare = re.sub(r"[\s\-()]", "", text)
    if bare.startswith("+"):
        digits = bare[1:]
        if _INTERNATIONAL.fullmatch(digits) and not (digits.startswith("86") and not
                                                     _MAINLAND_MOBILE.fullmatch(digits[2:])):
            return "+" + digits
    elif _MAINLAND_MOBILE.fullmatch(bare):
        return "+86" + bare
    elif bare.startswith("86") and _MAINLAND_MOBILE.fullmatch(bare[2:]):
        return "+" + bare
    raise ValueError("type the member's full phone number (11 digits for a mainland mobile)")


def _lookups_key(merchant_id: int, staff_id: int | None, hour: int) -> str:
    # Per staff member (the merchant's API key counts as one caller of its own), per clock hour.
    return f"till:phone-lookups:{merchant_id}:{staff_id if staff_id is not None else 'key'}:{hour}"


def _count_lookup(redis: Redis, settings: Settings, merchant_id: int, staff_id: int | None, now: datetime) -> None:
    stamp = int(now.timestamp())
    key = _lookups_key(merchant_id, staff_id, stamp // 3600)
    pipe = redis.pipeline()
    pipe.incr(key)
    pipe.expire(key, 3600)
    count = pipe.execute()[0]
    if count > settings.till.phone_lookups_per_hour:
        wait = 3600 - stamp % 3600
        raise RateLimited(f"this till has found members by phone {settings.till.phone_lookups_per_hour} times this "
                          f"hour; ask the member to show their code, or try again in {wait} s",
                          code="till.phone_lookups_exhausted", details={"retry_after_s": wait})


def with_phone(session: Session, phone: str) -> list[Member]:
    """The (at most five) live members with this number, as stored (``+8613800138000``); the phone index finds them."""
    return list(session.scalars(select(Member).where(Member.phone == phone, ~Member.openid.startswith(TOMBSTONE))
                                .order_by(Member.id).limit(5)))


def find_by_phone(session: Session, redis: Redis, settings: Settings, secret: bytes, *, phone: str, merchant_id: int,
                  staff_id: int | None, now: datetime) -> list[FoundByPhone]:
    """Members with this full phone number (``full_phone`` form), each with a till reference for this merchant.

    Every call counts against the caller's hourly allowance, found or not. NotFound (``member.not_found``) when
    no member has the number.
    """
    _count_lookup(redis, settings, merchant_id, staff_id, now)
    found = with_phone(session, phone)
    if not found:
        raise NotFound("no member has this phone number", code="member.not_found")
    expires = int(now.timestamp()) + settings.till.phone_ref_ttl_s
    return [FoundByPhone(m.nickname, masked_phone(m.phone), auth.till_ref(secret, m.id, merchant_id, expires),
                         datetime.fromtimestamp(expires, UTC)) for m in found]


# --- the merchant's day ----------------------------------------------------------------------------

def live_deals(session: Session, merchant_id: int, store_ids: list[int], now: datetime) -> list[Deal]:
    """The deals a till of the merchant honours now: its own live ones, and the mall's that its stores take part in.

    Soonest ending first. New-member pack deals are left out (members hold those coupons, they are not promoted).
    """
    query = (select(Deal).where(Deal.status == "live", Deal.starts_at <= now, Deal.ends_at > now,
                                Deal.pack_key.is_(None))
             .where(or_(Deal.merchant_id == merchant_id, Deal.scope == "mall"))
             .order_by(Deal.ends_at, Deal.id))
    out = []
    for deal in session.scalars(query):
        if deal.merchant_id == merchant_id or _takes_part(deal, store_ids):
            out.append(deal)
    return out


def _takes_part(deal: Deal, store_ids: list[int]) -> bool:
    if deal.participating_store_ids is None:
        return bool(store_ids)
    return bool(set(deal.participating_store_ids) & set(store_ids))


@dataclass(frozen=True)
class Receipt:
    purchase: Purchase
    nickname: str | None


def receipts(session: Session, settings: Settings, *, merchant_id: int, day: date, before: tuple[datetime, int] | None,
             limit: int) -> tuple[list[Receipt], tuple[datetime, int] | None]:
    """The merchant's purchases of the mall-local ``day``, newest first; a page and the cursor of the next one.

    ``before`` is a cursor: (occurred_at, id) of the last receipt of the previous page.
    """
    start, end = settings.mall.day_bounds(day)
    query = (select(Purchase, Member.nickname).join(Member, Member.id == Purchase.member_id)
             .where(Purchase.merchant_id == merchant_id, Purchase.occurred_at >= start, Purchase.occurred_at < end))
    if before is not None:
        at, last_id = before
        query = query.where(or_(Purchase.occurred_at < at, and_(Purchase.occurred_at == at, Purchase.id < last_id)))
    rows = session.execute(query.order_by(Purchase.occurred_at.desc(), Purchase.id.desc()).limit(limit + 1)).all()
    page = [Receipt(purchase, nickname) for purchase, nickname in rows[:limit]]
    following = (page[-1].purchase.occurred_at, page[-1].purchase.id) if len(rows) > limit else None
    return page, following


def describe(deal: Deal) -> dict[str, Any]:
    """A deal as a till shows it (see mallapp.api.till)."""
    return {"id": deal.id, "title": deal.title, "text": deal.text, "benefit": deal.benefit, "store_id": deal.store_id,
            "scope": deal.scope, "min_spend_fen": deal.min_spend_fen, "ends_at": deal.ends_at}
