"""Deals: merchants (the key or a manager) write and run them, ops review them (auto-approval: api.ops_accounts)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from flask import Blueprint
from pydantic import AwareDatetime, Field, StringConstraints, field_validator

from mallapp.api.core import (
    Body,
    Id,
    Out,
    Printable,
    Query,
    current_merchant_id,
    operation,
    runtime,
    transaction,
)
from mallapp.api.merchant_parking import ParkingQuotaNote, quota_note
from mallapp.domain import deals
from mallapp.domain.benefits import PARKING_KINDS
from mallapp.errors import InvalidInput

merchant_bp = Blueprint("merchant_deals", __name__, url_prefix="/api/v1/merchant")
ops_bp = Blueprint("ops_deals", __name__, url_prefix="/api/v1/ops")


# --- shapes ----------------------------------------------------------------------------------------

Title = Printable(80)
Text = Annotated[str, StringConstraints(max_length=1000, pattern=r"^[^\x00]*$")]
ImageUrl = Annotated[str, StringConstraints(max_length=500, pattern=r"^https://[^\s\x00]+$")]
Ids = Annotated[list[Id], Field(max_length=50)]
Status = Literal["draft", "pending_approval", "live", "paused", "ended", "rejected"]  # deals.STATUSES
MemberRule = Literal["everyone", "new_members", "birthday_month"]  # deals.MEMBER_RULES
_EARLIEST, _LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)


class AmountOff(Body):
    kind: Literal["amount_off"]
    amount_fen: int = Field(gt=0, le=100_000_000, description="taken off the bill, in fen")


class PercentOff(Body):
    kind: Literal["percent_off"]
    percent: int = Field(ge=1, le=99)


class GiftBenefit(Body):
    kind: Literal["gift"]
    gift: Title = Field(description="what the member receives")


class BonusPoints(Body):
    kind: Literal["bonus_points"]
    points: int = Field(gt=0, le=1_000_000, description="credited to the member's points when redeemed")


class ParkingHours(Body):
    kind: Literal["parking_hours"]
    hours: int = Field(ge=1, le=24, description="free parking hours, used when paying for parking (never at a till)")


class ParkingAmount(Body):
    kind: Literal["parking_amount"]
    amount_fen: int = Field(ge=1, le=100_000, description="taken off the parking bill, in fen (never at a till)")


Benefit = Annotated[AmountOff | PercentOff | GiftBenefit | BonusPoints | ParkingHours | ParkingAmount,
                    Field(discriminator="kind")]
# Where a coupon is used: at the deal's till, or when paying for parking (parking_hours, parking_amount).
UsedFor = Literal["till", "parking"]
MinSpend = Annotated[int, Field(gt=0, le=100_000_000, description="minimum spend (满减) in fen: the till sends the "
                                                                  "purchase amount and a smaller one is refused")]
Scope = Literal["store", "mall"]  # deals.SCOPES


class Targeting(Body):
    zone_ids: Ids = Field(default_factory=list, description="proximity: zones from the beacon registry")
    store_ids: Ids = Field(default_factory=list, description="proximity: near these stores")
    sale_item_ids: Ids = Field(default_factory=list, description="proximity: near these sale items")
    member_rule: MemberRule = Field(default="everyone", description="who may claim: new_members joined within "
                                                                    "[deals] new_member_days; birthday_month")
    followers_only: bool = Field(default=False, description="push only to the store's followers (delivery)")


class TargetingPatch(Body):
    zone_ids: Ids | None = None
    store_ids: Ids | None = None
    sale_item_ids: Ids | None = None
    member_rule: MemberRule | None = None
    followers_only: bool | None = None


def _plausible(value: datetime | None) -> datetime | None:
    # Far-off years would overflow when converted to UTC for the database.
    if value is not None and not (_EARLIEST <= value < _LATEST):
        raise ValueError("a time between the years 2000 and 2999")
    return value


class DealIn(Body):
    title: Title
    text: Text = ""
    image_url: ImageUrl | None = None
    store_id: Id = Field(description="one of this merchant's stores; coupons are redeemed only there")
    starts_at: AwareDatetime
    ends_at: AwareDatetime = Field(description="coupons expire then")
    quota: int = Field(ge=1, le=10_000_000, description="coupons in total")
    per_member_limit: int = Field(default=1, ge=1, le=100)
    benefit: Benefit
    targeting: Targeting = Field(default_factory=Targeting)
    min_spend_fen: MinSpend | None = None

    _times = field_validator("starts_at", "ends_at")(_plausible)


class DealPatch(Body):
    title: Title | None = None
    text: Text | None = None
    image_url: ImageUrl | None = Field(default=None, description="null removes the image")
    store_id: Id | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    quota: int | None = Field(default=None, ge=1, le=10_000_000, description="never below the coupons claimed")
    per_member_limit: int | None = Field(default=None, ge=1, le=100)
    benefit: Benefit | None = None
    targeting: TargetingPatch | None = None
    min_spend_fen: MinSpend | None = Field(default=None, description="null removes the minimum spend")

    _times = field_validator("starts_at", "ends_at")(_plausible)


class FiguresOut(Out):
    claimed: int
    redeemed: int
    pushes: int = Field(description="deliveries about this deal: inbox items plus WeChat subscribe messages sent "
                                    "(announcements to followers; proximity pushes will add to it)")


class TargetingOut(Out):
    zone_ids: list[int]
    store_ids: list[int]
    sale_item_ids: list[int]
    member_rule: MemberRule
    followers_only: bool


class DealContent(Out):
    """What every audience sees of a deal."""

    id: int
    store_id: int
    title: str
    text: str
    image_url: str | None
    starts_at: datetime
    ends_at: datetime
    per_member_limit: int
    benefit: Benefit
    min_spend_fen: int | None = Field(default=None, description="minimum spend in fen; null: none")
    scope: Scope = Field(default="store", description="store: redeemed at store_id only; mall: a mall-wide offer, "
                                                      "redeemed at any participating store")
    participating_store_ids: list[int] | None = Field(
        default=None, description="a mall-wide deal's participating stores; null: every store (or a store deal)")
    used_for: UsedFor = Field(default="till", description="till: redeemed at the till; parking: used when paying "
                                                          "for parking (the car park's payment), never at a till")


class DealOut(DealContent):
    merchant_id: int
    quota: int
    targeting: TargetingOut
    status: Status
    rejection_reason: str | None
    figures: FiguresOut
    parking_quota: ParkingQuotaNote | None = Field(
        default=None, description="a parking deal's coupons against the merchant's parking quota; null otherwise")
    created_at: datetime
    updated_at: datetime


class DealsOut(Out):
    deals: list[DealOut]


class OwnDealsQuery(Query):
    status: Status | None = None


class OpsDealsQuery(Query):
    status: Status | None = Field(default=None, description="pending_approval: the review queue")
    merchant_id: Id | None = None


class MallDealIn(Body):
    title: Title
    text: Text = ""
    image_url: ImageUrl | None = None
    store_id: Id = Field(description="the mall's own store that issues it (the service desk, run by the house "
                                     "merchant); its till redeems it too")
    participating_store_ids: Annotated[list[Id], Field(min_length=1, max_length=500)] | None = Field(
        default=None, description="the stores whose tills redeem it; null: every active store with a merchant")
    starts_at: AwareDatetime
    ends_at: AwareDatetime = Field(description="coupons expire then")
    quota: int = Field(ge=1, le=10_000_000, description="coupons in total")
    per_member_limit: int = Field(default=1, ge=1, le=100)
    benefit: Benefit
    min_spend_fen: MinSpend | None = None
    member_rule: MemberRule = "everyone"

    _times = field_validator("starts_at", "ends_at")(_plausible)


class RejectIn(Body):
    reason: Printable(200) = Field(description="shown to the merchant")


# --- helpers ---------------------------------------------------------------------------------------

def used_for(deal: deals.Deal) -> UsedFor:
    return "parking" if deal.benefit_kind in PARKING_KINDS else "till"


def deal_out(deal: deals.Deal) -> DealOut:
    return DealOut(
        id=deal.id, merchant_id=deal.merchant_id, store_id=deal.store_id, title=deal.title, text=deal.text,
        image_url=deal.image_url, starts_at=deal.starts_at, ends_at=deal.ends_at, quota=deal.quota,
        per_member_limit=deal.per_member_limit, benefit=deal.benefit, min_spend_fen=deal.min_spend_fen,
        scope=deal.scope, participating_store_ids=deal.participating_store_ids, used_for=used_for(deal),
        parking_quota=quota_note(deal),
        targeting=TargetingOut(zone_ids=deal.zone_ids, store_ids=deal.store_ids, sale_item_ids=deal.sale_item_ids,
                               member_rule=deal.member_rule, followers_only=deal.followers_only),
        status=deal.status, rejection_reason=deal.rejection_reason,
        figures=FiguresOut(claimed=deal.claimed, redeemed=deal.redeemed, pushes=deal.pushes),
        created_at=deal.created_at, updated_at=deal.updated_at)


def _patch_changes(body: DealPatch) -> dict[str, Any]:
    """The domain's flat changes from a PATCH body; null only clears image_url."""
    changes = body.model_dump(exclude_unset=True)
    changes |= changes.pop("targeting", None) or {}
    cleared = sorted(name for name, value in changes.items()
                     if value is None and name not in ("image_url", "min_spend_fen"))
    if cleared:
        raise InvalidInput(f"invalid body: {', '.join(cleared)} cannot be null", code="request.invalid",
                           details={"problems": [{"field": n, "problem": "cannot be null", "kind": "null_not_allowed"}
                                                         for n in cleared]})
    if not changes:
        raise InvalidInput("nothing to change: send at least one field", code="request.invalid")
    return changes


_NOT_FOUND = ("deal.not_found",)
_CONTENT = ("deal.store_not_yours", "deal.invalid_window", "venue.unknown_zone",
            "venue.unknown_store", "venue.unknown_sale_item", "deal.target_not_yours")


# --- merchants -------------------------------------------------------------------------------------

@operation(merchant_bp, "/deals", "POST", summary="Write a deal (a draft until submitted)",
           auth="merchant_manager", body=DealIn, response=DealOut, status=201, errors=_CONTENT)
def create_deal(body: DealIn) -> DealOut:
    values = body.model_dump()
    values |= values.pop("targeting")
    with transaction() as session:
        return deal_out(deals.create(session, current_merchant_id(), **values, now=runtime().now()))


@operation(merchant_bp, "/deals", "GET", summary="This merchant's deals with their figures, newest first",
           auth="merchant_manager", query=OwnDealsQuery, response=DealsOut)
def list_deals(query: OwnDealsQuery) -> DealsOut:
    with transaction() as session:
        return DealsOut(deals=[deal_out(d) for d in deals.list_own(session, current_merchant_id(), query.status)])


@operation(merchant_bp, "/deals/<int:deal_id>", "GET", summary="One of this merchant's deals with its figures",
           auth="merchant_manager", response=DealOut, errors=_NOT_FOUND)
def get_deal(deal_id: int) -> DealOut:
    with transaction() as session:
        return deal_out(deals.get_own(session, current_merchant_id(), deal_id))


@operation(merchant_bp, "/deals/<int:deal_id>", "PATCH",
           summary="Edit a deal; a content edit of a live or paused deal sends it back to review",
           auth="merchant_manager", body=DealPatch, response=DealOut,
           errors=(*_NOT_FOUND, *_CONTENT, "deal.invalid_state", "deal.terms_locked", "deal.quota_below_claimed"))
def patch_deal(deal_id: int, body: DealPatch) -> DealOut:
    changes = _patch_changes(body)
    with transaction() as session:
        return deal_out(deals.update(session, current_merchant_id(), deal_id, changes, runtime().now()))


def _move(deal_id: int, verb: str) -> DealOut:
    with transaction() as session:
        return deal_out(deals.transition(session, current_merchant_id(), deal_id, verb, runtime().now()))


_MOVE_ERRORS = (*_NOT_FOUND, "deal.invalid_state")


@operation(merchant_bp, "/deals/<int:deal_id>/submit", "POST",
           summary="Submit a draft or rejected deal for review (live at once when auto-approved)",
           auth="merchant_manager", response=DealOut, errors=_MOVE_ERRORS)
def submit_deal(deal_id: int) -> DealOut:
    return _move(deal_id, "submit")


@operation(merchant_bp, "/deals/<int:deal_id>/pause", "POST", summary="Pause a live deal: no claims meanwhile",
           auth="merchant_manager", response=DealOut, errors=_MOVE_ERRORS)
def pause_deal(deal_id: int) -> DealOut:
    return _move(deal_id, "pause")


@operation(merchant_bp, "/deals/<int:deal_id>/resume", "POST", summary="Resume a paused deal",
           auth="merchant_manager", response=DealOut, errors=_MOVE_ERRORS)
def resume_deal(deal_id: int) -> DealOut:
    return _move(deal_id, "resume")


@operation(merchant_bp, "/deals/<int:deal_id>/end", "POST",
           summary="End a deal for good: no more claims (coupons already held stay valid until ends_at)",
           auth="merchant_manager", response=DealOut, errors=_MOVE_ERRORS)
def end_deal(deal_id: int) -> DealOut:
    return _move(deal_id, "end")


# --- ops -------------------------------------------------------------------------------------------

@operation(ops_bp, "/deals", "GET", summary="Deals of every merchant, oldest change first (the review queue)",
           auth="ops", query=OpsDealsQuery, response=DealsOut)
def ops_list_deals(query: OpsDealsQuery) -> DealsOut:
    with transaction() as session:
        return DealsOut(deals=[deal_out(d) for d in deals.list_all(session, query.status, query.merchant_id)])


@operation(ops_bp, "/deals", "POST",
           summary="Publish a mall-wide deal (live at once): redeemed at the till of every participating store",
           auth="ops_marketing", body=MallDealIn, response=DealOut, status=201,
           errors=("ops.marketing_required", "venue.unknown_store", "deal.invalid_window"))
def create_mall_wide_deal(body: MallDealIn) -> DealOut:
    with transaction() as session:
        return deal_out(deals.create_mall_wide(session, **body.model_dump(), now=runtime().now()))


@operation(ops_bp, "/deals/<int:deal_id>/approve", "POST", summary="Approve a pending deal: it goes live",
           auth="ops_admin", response=DealOut, errors=("ops.admin_required", *_MOVE_ERRORS))
def approve_deal(deal_id: int) -> DealOut:
    with transaction() as session:
        return deal_out(deals.review(session, deal_id, approve=True, now=runtime().now()))


@operation(ops_bp, "/deals/<int:deal_id>/reject", "POST", summary="Reject a pending deal with a reason",
           auth="ops_admin", body=RejectIn, response=DealOut, errors=("ops.admin_required", *_MOVE_ERRORS))
def reject_deal(deal_id: int, body: RejectIn) -> DealOut:
    with transaction() as session:
        return deal_out(deals.review(session, deal_id, approve=False, reason=body.reason, now=runtime().now()))


# PATCH /api/v1/ops/merchants/<id> (auto-approval, disable, enable) is in mallapp.api.ops_accounts.
