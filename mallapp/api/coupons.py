"""Coupons: members browse and claim deals and keep a wallet; tills redeem coupons."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from flask import Blueprint
from pydantic import Field, StringConstraints, model_validator
from sqlalchemy.orm import Session

from mallapp.api.core import (
    REPLAY,
    Body,
    Out,
    Query,
    current_member_id,
    current_merchant_id,
    current_staff_id,
    operation,
    runtime,
    transaction,
)
from mallapp.api.deals import Benefit, DealContent, Id, UsedFor, used_for
from mallapp.api.directory import StoreLocationOut, location_out
from mallapp.domain import coupons, directory, members
from mallapp.domain.directory import Location

member_bp = Blueprint("member_deals", __name__, url_prefix="/api/v1")
till_bp = Blueprint("till_coupons", __name__, url_prefix="/api/v1/merchant")


# --- shapes ----------------------------------------------------------------------------------------

class MemberDealOut(DealContent):
    store: StoreLocationOut | None = Field(description="where the deal's store is: names, floor, unit")
    remaining: int = Field(description="coupons left to claim")
    claimed_by_me: int


class MemberDealsOut(Out):
    deals: list[MemberDealOut] = Field(description="soonest ending first")


class CouponDealOut(Out):
    id: int
    store_id: int
    store: StoreLocationOut | None = Field(description="where the deal's store is: names, floor, unit")
    title: str
    image_url: str | None
    benefit: Benefit
    min_spend_fen: int | None = Field(default=None, description="minimum spend in fen; null: none")
    scope: Literal["store", "mall"] = Field(default="store", description="mall: redeemed at any participating store")
    participating_store_ids: list[int] | None = Field(default=None, description="null: every store (mall-wide)")
    used_for: UsedFor = Field(default="till", description="parking: a parking coupon, used when paying for parking "
                                                          "(POST /api/v1/me/parking/payments), never at a till")
    starts_at: datetime
    ends_at: datetime = Field(description="the deal ends then")


class CouponOut(Out):
    id: int
    code: str = Field(description="what a cashier types at the till")
    qr: str = Field(description="the signed payload to show as a QR code; the till posts it back as qr")
    status: Literal["active", "used", "expired"]
    expires_at: datetime = Field(description="the coupon expires then: the deal's end, or sooner for a "
                                             "new-member pack coupon (the member's first month)")
    claimed_at: datetime
    redeemed_at: datetime | None
    redeemed_at_store: int | None
    deal: CouponDealOut


class WalletOut(Out):
    coupons: list[CouponOut] = Field(description="newest first")


class WalletQuery(Query):
    status: Literal["active", "used", "expired"] | None = None
    limit: int = Field(default=50, ge=1, le=100)


class RedeemIn(Body):
    code: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z\- ]{4,40}$")] | None = Field(
        default=None, description="the coupon code as the member shows it (dashes, spaces and case ignored)")
    qr: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        default=None, description="the scanned QR payload, instead of the code")
    store_id: Id = Field(description="the store whose till this is")
    request_id: Annotated[str, StringConstraints(pattern=r"^[\w\-./:#]{1,64}$")] = Field(
        description="the till's id for this redemption: a retry with it returns the first result")
    amount_fen: int | None = Field(default=None, gt=0, le=100_000_000,
                                   description="the purchase amount in fen: checked against a minimum spend "
                                               "(required then), and the discount is computed from it")

    @model_validator(mode="after")
    def _one_of(self) -> RedeemIn:
        if (self.code is None) == (self.qr is None):
            raise ValueError("send either code or qr")
        return self


class RedeemOut(Out):
    code: str
    deal_id: int
    title: str
    benefit: Benefit = Field(description="what the till grants")
    store_id: int
    redeemed_at: datetime
    request_id: str
    bonus_points: int | None = Field(description="points credited to the member (bonus_points deals)")
    amount_fen: int | None = Field(description="the purchase amount the till sent")
    discount_fen: int | None = Field(description="what to take off that amount (amount_off, percent_off); never "
                                                 "more than the amount; null without an amount")
    replayed: bool = Field(description="true when this request_id had redeemed the coupon before; nothing changed")


def _coupon_outs(session: Session, found: list[coupons.Held]) -> list[CouponOut]:
    """Coupons with their deals' store locations, read in one query."""
    where = directory.locations(session, {h.deal.store_id for h in found})
    return [_coupon_out(h, where.get(h.deal.store_id)) for h in found]


def _coupon_out(held: coupons.Held, location: Location | None) -> CouponOut:
    rt = runtime()
    coupon, deal = held.coupon, held.deal
    return CouponOut(id=coupon.id, code=coupon.code, qr=coupons.qr_payload(rt.secret, coupon),
                     status=coupon.status(deal, rt.now()), expires_at=coupon.expires_at(deal),
                     claimed_at=coupon.claimed_at,
                     redeemed_at=coupon.redeemed_at, redeemed_at_store=coupon.redeemed_at_store,
                     deal=CouponDealOut(id=deal.id, store_id=deal.store_id, store=location_out(location),
                                        title=deal.title,
                                        image_url=deal.image_url, benefit=deal.benefit,
                                        min_spend_fen=deal.min_spend_fen, scope=deal.scope,
                                        participating_store_ids=deal.participating_store_ids,
                                        used_for=used_for(deal), starts_at=deal.starts_at, ends_at=deal.ends_at))


# --- members ---------------------------------------------------------------------------------------

@operation(member_bp, "/deals", "GET", summary="Live deals this member may claim now", auth="member",
           response=MemberDealsOut)
def list_deals() -> MemberDealsOut:
    rt = runtime()
    with transaction() as session:
        member = members.get(session, current_member_id())
        found = coupons.claimable(session, rt.settings, member, rt.now())
        held = coupons.claims_by_deal(session, member.id, [d.id for d in found])
        where = directory.locations(session, {d.store_id for d in found})
        return MemberDealsOut(deals=[MemberDealOut(
            id=d.id, store_id=d.store_id, store=location_out(where.get(d.store_id)), title=d.title, text=d.text, image_url=d.image_url, starts_at=d.starts_at,
            ends_at=d.ends_at, benefit=d.benefit, remaining=d.quota - d.claimed, per_member_limit=d.per_member_limit,
            min_spend_fen=d.min_spend_fen, scope=d.scope, participating_store_ids=d.participating_store_ids,
            used_for=used_for(d), claimed_by_me=held.get(d.id, 0)) for d in found])


@operation(member_bp, "/deals/<int:deal_id>/claim", "POST", summary="Claim a coupon of a live deal",
           auth="member", response=CouponOut, status=201,
           errors=("deal.not_found", "deal.not_available", "deal.member_not_eligible", "deal.sold_out",
                   "deal.limit_reached", "parking.quota_exhausted"))
def claim(deal_id: int) -> CouponOut:
    rt = runtime()
    with transaction() as session:
        return _coupon_outs(session, [coupons.claim(session, rt.settings, current_member_id(), deal_id, rt.now())])[0]


@operation(member_bp, "/me/coupons", "GET", summary="The member's coupon wallet (active, used, expired)",
           auth="member", query=WalletQuery, response=WalletOut)
def wallet(query: WalletQuery) -> WalletOut:
    rt = runtime()
    with transaction() as session:
        held = coupons.wallet(session, current_member_id(), rt.now(), query.status, query.limit)
        return WalletOut(coupons=_coupon_outs(session, held))


# --- tills -----------------------------------------------------------------------------------------

@operation(till_bp, "/coupons/redeem", "POST",
           summary="Redeem a coupon at the till, once (a retry with the same request_id returns the first result)",
           auth="merchant", body=RedeemIn, response=RedeemOut, status=201, also=REPLAY,
           errors=("coupon.not_found", "coupon.invalid_qr", "coupon.already_used",
                   "coupon.wrong_store", "coupon.not_yet_valid", "coupon.expired", "coupon.store_not_yours",
                   "coupon.store_not_participating", "coupon.amount_required", "coupon.below_min_spend",
                   "coupon.parking_only"))
def redeem(body: RedeemIn):
    rt = runtime()
    with transaction() as session:
        done = coupons.redeem(session, rt.settings, rt.secret, merchant_id=current_merchant_id(),
                              store_id=body.store_id, code=body.code, qr=body.qr, request_id=body.request_id,
                              now=rt.now(), spend_fen=body.amount_fen, staff_id=current_staff_id())
        coupon, deal = done.coupon, done.deal
        out = RedeemOut(code=coupon.code, deal_id=deal.id, title=deal.title, benefit=deal.benefit,
                        store_id=coupon.redeemed_at_store, redeemed_at=coupon.redeemed_at,
                        request_id=coupon.request_id, bonus_points=coupon.bonus_points,
                        amount_fen=coupon.spend_fen, discount_fen=coupon.discount_fen, replayed=done.replayed)
    return out, 200 if done.replayed else 201
