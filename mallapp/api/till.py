"""What the till (a cashier's tablet, /console/till/) reads besides posting purchases, refunds and coupons.

Every endpoint takes the merchant's API key or any staff token (a cashier's too) and shows only the calling
merchant's things. A till learns of a member only what it needs to greet them: nickname, tier, the phone's last
four digits (mallapp.domain.till says why, and how a member is found by phone).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from flask import Blueprint, g
from pydantic import AfterValidator, Field, StringConstraints

from mallapp.api.core import (
    Body,
    Out,
    Query,
    current_merchant_id,
    current_staff_id,
    operation,
    runtime,
    transaction,
)
from mallapp.api.deals import Benefit, Scope
from mallapp.domain import till, venue

bp = Blueprint("till_api", __name__, url_prefix="/api/v1/merchant")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- shapes ----------------------------------------------------------------------------------------

class TillStoreOut(Out):
    id: int
    name: str
    unit: str = Field(description="the unit on the directory, e.g. L2-07")
    floor: int


class TillDealOut(Out):
    id: int
    title: str
    text: str
    benefit: Benefit
    store_id: int = Field(description="the store that issues it")
    scope: Scope = Field(description="mall: the mall's own deal, honoured at this merchant's participating stores")
    min_spend_fen: int | None = Field(description="minimum spend in fen; null: none")
    ends_at: datetime


class TillOut(Out):
    merchant_name: str
    day: date = Field(description="today in the mall (its time zone), by the server's clock")
    stores: list[TillStoreOut] = Field(description="the merchant's active stores: a coupon is redeemed at one")
    deals: list[TillDealOut] = Field(description="the deals the till honours now, soonest ending first")


class LookupIn(Body):
    code: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="the member's card code (GET /api/v1/me/card) or a till reference from find-by-phone")


class MemberAtTillOut(Out):
    nickname: str | None
    tier: str | None = Field(description="the member's tier as segmentation set it (vip, major, …, T1…T4); null: none")
    masked_phone: str | None = Field(description="the last four digits only; null: no phone on file")


def _full_phone(text: str) -> str:
    return till.full_phone(text)


class FindByPhoneIn(Body):
    phone: Annotated[str, StringConstraints(min_length=1, max_length=30), AfterValidator(_full_phone)] = Field(
        description="the member's full phone number: 11 digits for a mainland mobile, else +<country><number>; "
                    "spaces and dashes are ignored")


class FoundByPhoneOut(Out):
    nickname: str | None
    masked_phone: str | None
    till_ref: str = Field(description="post it as member_code (POST /purchases) or look it up like a card code; "
                                      "works for this merchant only, until expires_at")
    expires_at: datetime


class FoundOut(Out):
    members: list[FoundByPhoneOut] = Field(description="usually one; more when members share the number")


class ReceiptsQuery(Query):
    day: date | None = Field(default=None, ge=date(2000, 1, 1), le=date(2999, 12, 31),
                             description="a mall-local day; default today")
    before: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,19}-[0-9]{1,19}$")] | None = Field(
        default=None, description="the previous page's next cursor")
    limit: int = Field(default=20, ge=1, le=100)


class ReceiptOut(Out):
    receipt_no: str
    amount_fen: int
    refunded_fen: int = Field(description="refunded so far; equal to amount_fen when fully refunded")
    points_total: int
    points_reversed: int
    occurred_at: datetime
    nickname: str | None


class ReceiptsOut(Out):
    day: date
    receipts: list[ReceiptOut] = Field(description="newest first")
    next: str | None = Field(description="pass as before for the next page; null: the last page")


def _cursor(at: datetime, row_id: int) -> str:
    return f"{(at - _EPOCH) // timedelta(microseconds=1)}-{row_id}"


def _uncursor(text: str) -> tuple[datetime, int]:
    micros, row_id = text.split("-")
    return _EPOCH + timedelta(microseconds=min(int(micros), 10**17)), int(row_id)


# --- endpoints -------------------------------------------------------------------------------------

@operation(bp, "/till", "GET", summary="The till's day: the merchant's stores and the deals it honours now",
           auth="merchant", response=TillOut)
def till_day() -> TillOut:
    rt = runtime()
    now = rt.now()
    with transaction() as session:
        merchant_id = current_merchant_id()
        own = venue.merchant_stores(session, merchant_id)
        deals = till.live_deals(session, merchant_id, [s.id for s in own], now)
        return TillOut(merchant_name=g.merchant_name, day=rt.settings.mall.local_day(now),
                       stores=[TillStoreOut(id=s.id, name=s.name, unit=s.unit, floor=s.floor) for s in own],
                       deals=[TillDealOut(**till.describe(d)) for d in deals])


@operation(bp, "/members/lookup", "POST", summary="Who holds this card code: nickname, tier and masked phone only",
           auth="merchant", body=LookupIn, response=MemberAtTillOut,
           errors=("card.invalid", "card.expired", "member.not_found"))
def lookup_member(body: LookupIn) -> MemberAtTillOut:
    rt = runtime()
    with transaction() as session:
        found = till.member_at_till(session, rt.secret, code=body.code, merchant_id=current_merchant_id(),
                                    now=rt.now())
    return MemberAtTillOut(nickname=found.nickname, tier=found.tier, masked_phone=found.masked_phone)


@operation(bp, "/members/find-by-phone", "POST",
           summary="Find a member whose phone is dead by their full phone number (rate-limited per staff member)",
           auth="merchant", body=FindByPhoneIn, response=FoundOut,
           errors=("member.not_found", "till.phone_lookups_exhausted"))
def find_member_by_phone(body: FindByPhoneIn) -> FoundOut:
    rt = runtime()
    with transaction() as session:
        found = till.find_by_phone(session, rt.redis, rt.settings, rt.secret, phone=body.phone,
                                   merchant_id=current_merchant_id(), staff_id=current_staff_id(), now=rt.now())
    return FoundOut(members=[FoundByPhoneOut(nickname=f.nickname, masked_phone=f.masked_phone, till_ref=f.till_ref,
                                             expires_at=f.expires_at) for f in found])


@operation(bp, "/purchases", "GET", summary="This merchant's receipts of a day (default today), newest first, paged",
           auth="merchant", query=ReceiptsQuery, response=ReceiptsOut)
def list_receipts(query: ReceiptsQuery) -> ReceiptsOut:
    rt = runtime()
    day = query.day or rt.settings.mall.local_day(rt.now())
    with transaction() as session:
        page, following = till.receipts(session, rt.settings, merchant_id=current_merchant_id(), day=day,
                                        before=_uncursor(query.before) if query.before else None, limit=query.limit)
        return ReceiptsOut(day=day, next=_cursor(*following) if following else None, receipts=[
            ReceiptOut(receipt_no=r.purchase.receipt_no, amount_fen=r.purchase.amount_fen,
                       refunded_fen=r.purchase.refunded_fen, points_total=r.purchase.points_total,
                       points_reversed=r.purchase.points_reversed, occurred_at=r.purchase.occurred_at,
                       nickname=r.nickname) for r in page])
