"""The service desk (ops CRM): find a member, read their record, adjust points, hand over gifts.

Any ops user reads (members' phone numbers masked unless the role sees phones: admin and desk);
only an admin or the desk adjusts points and hands gifts over. docs/service-desk.md has the table.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from flask import Blueprint
from pydantic import Field, StringConstraints, field_validator

from mallapp.api.core import (
    REPLAY,
    BigId,
    Body,
    Out,
    Printable,
    Query,
    current_ops,
    operation,
    runtime,
    transaction,
)
from mallapp.api.members import EntryOut  # the ledger line a member sees, as the desk sees it
from mallapp.domain import desk, desk_record, gifts, members, points

bp = Blueprint("desk", __name__, url_prefix="/api/v1/ops")

_DESK = ("ops.desk_required",)
IdempotencyKey = Annotated[str, StringConstraints(pattern=r"^[\w\-./:#]{1,100}$")]
RequestId = Annotated[str, StringConstraints(pattern=r"^[\w\-./:#]{1,64}$")]


def _phone(phone: str | None) -> str | None:
    """The phone as this caller may see it: whole for admin and desk, else only its last four digits."""
    return phone if current_ops().sees_phones else members.masked_phone(phone)


# --- search ----------------------------------------------------------------------------------------

class SearchQuery(Query):
    q: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)] = Field(
        description="a phone number (full, or its last four digits), a member id, a referral code, or part of "
                    "a nickname")
    limit: int = Field(default=20, ge=1, le=50)
    after_id: BigId | None = Field(default=None, description="the last id of the previous page")


class MemberHit(Out):
    id: int
    nickname: str | None
    phone: str | None = Field(description="masked (*******1234) unless the caller's role sees phones")
    referral_code: str
    tier: str | None
    member_since: datetime


class SearchOut(Out):
    members: list[MemberHit] = Field(description="in id order")
    next_after_id: int | None = Field(description="pass as after_id for the next page; null on the last")


@operation(bp, "/members", "GET", summary="Find members by phone (full or last four), id, referral code or nickname",
           auth="ops", query=SearchQuery, response=SearchOut)
def search_members(query: SearchQuery) -> SearchOut:
    with transaction() as session:
        found, more = desk.search(session, query.q, limit=query.limit, after_id=query.after_id)
        hits = [MemberHit(id=m.id, nickname=m.nickname, phone=_phone(m.phone), referral_code=m.referral_code,
                          tier=m.tier, member_since=m.created_at) for m in found]
    return SearchOut(members=hits, next_after_id=hits[-1].id if more else None)


# --- the record ------------------------------------------------------------------------------------

class ProfileOut(Out):
    id: int
    nickname: str | None
    gender: str
    birthday: date | None
    phone: str | None = Field(description="masked (*******1234) unless the caller's role sees phones")
    referral_code: str
    referred_by_id: int | None
    tier: str | None
    member_since: datetime


class SegmentOut(Out):
    month: date = Field(description="the first day of the mall-local month")
    as_of: date
    purchases: int
    purchase_days: int
    spend_fen: int
    visits: int
    mean_gap_days: float | None
    t_tier: str | None
    pyramid: str | None
    rfm_r: int | None
    rfm_f: int | None
    rfm_m: int | None
    rfm_segment: str | None
    lifecycle: str


class TransitionOut(Out):
    day: date
    from_state: str | None
    to_state: str
    cause: str


class SegmentsOut(Out):
    current: SegmentOut | None = Field(description="the latest month's snapshot; null before the first run")
    history: list[SegmentOut] = Field(description="one per month, newest first (up to 24)")
    transitions: list[TransitionOut] = Field(description="lifecycle moves, newest first (up to 50)")


class LifetimeValueOut(Out):
    p_alive: float | None
    expected_purchases_30: float | None
    expected_purchases_90: float | None
    expected_purchases_365: float | None
    expected_spend_fen: int | None
    clv_fen: int | None
    next_purchase_due: date | None
    purchases: int = Field(description="all the member's purchases")
    spend_fen: int = Field(description="their amounts less refunds")
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None


class PointsOut(Out):
    balance: int
    debt: int
    ledger: list[EntryOut] = Field(description="newest first")
    next_before_id: int | None = Field(description="page on with GET .../points?before_id=")


class AdjustmentRow(Out):
    id: int
    points: int
    reason: str
    ops_user_id: int
    entry_id: int
    created_at: datetime


class PurchaseRow(Out):
    id: int
    merchant_id: int
    receipt_no: str
    amount_fen: int
    refunded_fen: int
    points_earned: int
    occurred_at: datetime


class CheckinRow(Out):
    day: date
    streak: int
    points: int
    method: str


class MallVisitRow(Out):
    entered_at: datetime
    exited_at: datetime
    dwell_seconds: int


class VisitsOut(Out):
    checkins: list[CheckinRow]
    mall_visits: list[MallVisitRow]


class CouponRow(Out):
    id: int
    deal_id: int
    title: str
    status: Literal["active", "used", "expired"]
    claimed_at: datetime
    redeemed_at: datetime | None
    redeemed_at_store: int | None


class GiftRow(Out):
    id: int
    gift_code: str
    quantity: int
    points: int
    pickup_code: str
    created_at: datetime
    handed_over_at: datetime | None


class NotificationRow(Out):
    id: int
    kind: str
    title: str
    created_at: datetime
    read_at: datetime | None


class RecordOut(Out):
    profile: ProfileOut
    segments: SegmentsOut
    lifetime_value: LifetimeValueOut
    points: PointsOut
    adjustments: list[AdjustmentRow] = Field(description="manual adjustments at the desk, newest first")
    purchases: list[PurchaseRow] = Field(description="newest first")
    visits: VisitsOut
    coupons: list[CouponRow] = Field(description="newest first")
    gifts: list[GiftRow] = Field(description="gift redemptions, newest first")
    notifications: list[NotificationRow] = Field(description="what the member was told, newest first")
    campaigns: list[dict[str, Any]] = Field(description="campaigns the member received, newest first")


@operation(bp, "/members/<int:member_id>", "GET",
           summary="A member's record: profile, segments, lifetime value, points, purchases, visits, coupons, gifts",
           auth="ops", response=RecordOut, errors=("member.not_found",))
def member_record(member_id: int) -> RecordOut:
    with transaction() as session:
        record = desk_record.record(session, member_id, runtime().now())
    record["profile"]["phone"] = _phone(record["profile"]["phone"])
    return RecordOut.model_validate(record)


class LedgerQuery(Query):
    before_id: BigId | None = Field(default=None, description="the last id of the previous page")
    limit: int = Field(default=20, ge=1, le=100)


class LedgerOut(Out):
    entries: list[EntryOut] = Field(description="newest first")
    next_before_id: int | None


@operation(bp, "/members/<int:member_id>/points", "GET", summary="A member's points ledger, newest first, paged",
           auth="ops", query=LedgerQuery, response=LedgerOut, errors=("member.not_found",))
def member_ledger(member_id: int, query: LedgerQuery) -> LedgerOut:
    with transaction() as session:
        desk.live_member(session, member_id)
        rows = points.history(session, member_id, before_id=query.before_id, limit=query.limit)
        entries = [EntryOut(**e) for e in desk_record.entries(session, rows)]
    return LedgerOut(entries=entries, next_before_id=entries[-1].id if len(entries) == query.limit else None)


# --- adjustments -----------------------------------------------------------------------------------

class AdjustmentIn(Body):
    points: int = Field(ge=-desk.MAX_ADJUSTMENT, le=desk.MAX_ADJUSTMENT,
                        description="positive credits, negative debits; never zero")
    reason: Printable(200) = Field(description="why, as the member reads it in the ledger")
    idempotency_key: IdempotencyKey = Field(description="the desk's id for this adjustment: a retry with it "
                                                        "answers the first result; another body is refused")

    @field_validator("points")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("an adjustment moves at least one point")
        return value


class AdjustmentOut(AdjustmentRow):
    member_id: int
    balance: int = Field(description="the member's balance now")
    replayed: bool


@operation(bp, "/members/<int:member_id>/points-adjustments", "POST",
           summary="Credit or debit a member's points by hand, with a reason (audited, idempotent)",
           auth="ops_desk", body=AdjustmentIn, response=AdjustmentOut, status=201, also=REPLAY,
           errors=(*_DESK, "member.not_found", "points.insufficient", "desk.idempotency_mismatch"))
def adjust_points(member_id: int, body: AdjustmentIn):
    rt = runtime()
    with transaction() as session:
        done = desk.adjust_points(session, rt.settings, member_id, ops_user_id=current_ops().id, delta=body.points,
                                  reason=body.reason, idempotency_key=body.idempotency_key, now=rt.now())
        row = done.adjustment
        out = AdjustmentOut(id=row.id, member_id=row.member_id, points=row.points, reason=row.reason,
                            ops_user_id=row.ops_user_id, entry_id=row.entry_id, created_at=row.created_at,
                            balance=done.balance, replayed=done.replayed)
    return out, 200 if done.replayed else 201


# --- gifts at the desk -----------------------------------------------------------------------------

class PickupOut(Out):
    id: int
    pickup_code: str
    member_id: int
    nickname: str | None
    phone: str | None = Field(description="always masked: the desk recognises the member, nothing more")
    gift_code: str
    gift_name: str | None = Field(description="from the catalogue; null if the gift was withdrawn since")
    quantity: int
    points: int
    redeemed_at: datetime
    handed_over: bool
    handed_over_at: datetime | None
    handed_over_by: int | None
    handed_over_by_username: str | None


class HandOverIn(Body):
    request_id: RequestId = Field(description="the desk's id for this hand-over: its retry answers the first")


class HandOverOut(PickupOut):
    replayed: bool


def _pickup(session: Any, redemption: gifts.GiftRedemption) -> dict[str, Any]:
    member = members.get(session, redemption.member_id)
    gift = runtime().settings.gift(redemption.gift_code)
    return dict(id=redemption.id, pickup_code=redemption.pickup_code, member_id=member.id, nickname=member.nickname,
                phone=members.masked_phone(member.phone), gift_code=redemption.gift_code,
                gift_name=gift.name if gift else None, quantity=redemption.quantity, points=redemption.points,
                redeemed_at=redemption.created_at, handed_over=redemption.handed_over_at is not None,
                handed_over_at=redemption.handed_over_at, handed_over_by=redemption.handed_over_by,
                handed_over_by_username=gifts.handed_over_by(session, redemption))


@operation(bp, "/gifts/<pickup_code>", "GET", summary="The gift redemption behind a pick-up code",
           auth="ops", response=PickupOut, errors=("gift.pickup_not_found",))
def show_pickup(pickup_code: str) -> PickupOut:
    with transaction() as session:
        return PickupOut(**_pickup(session, gifts.by_pickup_code(session, pickup_code[:40])))


@operation(bp, "/gifts/<pickup_code>/hand-over", "POST",
           summary="Mark a gift handed over at the desk, once (the same request_id again answers the first)",
           auth="ops_desk", body=HandOverIn, response=HandOverOut, also=REPLAY, status=201,
           errors=(*_DESK, "gift.pickup_not_found", "gift.already_handed_over"))
def hand_over(pickup_code: str, body: HandOverIn):
    rt = runtime()
    with transaction() as session:
        redemption, replayed = gifts.hand_over(session, pickup_code[:40], ops_user_id=current_ops().id,
                                               request_id=body.request_id, now=rt.now())
        out = HandOverOut(**_pickup(session, redemption), replayed=replayed)
    return out, 200 if replayed else 201
