"""The mini-program's API: sign-in, the member's profile, card, points, gifts and check-in."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from flask import Blueprint, request
from pydantic import Field, StringConstraints, field_validator

from mallapp.adapters import wechat
from mallapp.api.core import (
    REPLAY,
    BigId,
    Body,
    Out,
    Printable,
    Query,
    current_member_id,
    operation,
    runtime,
    transaction,
)
from mallapp.api.directory import StoreLocationOut, location_out
from mallapp.domain import auth, checkin, directory, gifts, members, points, rewards
from mallapp.errors import InvalidInput

bp = Blueprint("members", __name__, url_prefix="/api/v1")


# --- shapes ----------------------------------------------------------------------------------------

class SignIn(Body):
    code: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    referral_code: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{8}$")] | None = None
    locale: Annotated[str, StringConstraints(max_length=35)] | None = Field(
        default=None, description="the phone's language (wx.getSystemInfo().language, e.g. zh_CN or en): the "
                                  "member's locale while they have not chosen one; a language the mall does not "
                                  "write in is ignored")


class ExpiringOut(Out):
    points: int
    expires_at: datetime


class PointsSummary(Out):
    balance: int
    owed: int = Field(description="points a refund could not take back; settled from future earnings")
    expiring_soon: list[ExpiringOut]


class MeOut(Out):
    id: int
    nickname: str | None
    gender: Literal["unknown", "male", "female"]
    birthday: date | None
    phone: str | None = Field(description="verified by WeChat, +<country code><number>")
    referral_code: str
    member_since: datetime
    tier: str | None
    locale: Literal["zh-CN", "en"] = Field(
        description="the language the member's messages are written in: their choice, else zh-CN")
    locale_chosen: bool = Field(description="false while the member has not chosen (zh-CN, the default, applies)")
    points: PointsSummary
    checked_in_today: bool


class SignedIn(Out):
    token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    new_member: bool
    referral: Literal["applied", "unknown_code", "already_member"] | None = Field(
        description="what became of referral_code: applied (the new member is linked to its referrer), "
                    "unknown_code (no member has it: signed in without a referrer), already_member (only a "
                    "new member can be referred); null when none was sent")
    member: MeOut


class PatchMe(Body):
    nickname: Printable(40) | None = None
    birthday: date | None = None
    gender: Literal["unknown", "male", "female"] | None = None
    locale: Literal["zh-CN", "en"] | None = Field(
        default=None, description="the language of the member's inbox and subscribe messages")

    @field_validator("birthday")
    @classmethod
    def _plausible(cls, value: date | None) -> date | None:
        if value is not None and not (date(1900, 1, 1) <= value <= date.today()):
            raise ValueError("a birthday between 1900-01-01 and today")
        return value


class PhoneIn(Body):
    code: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="the code from the mini-program's getPhoneNumber button")


class CardOut(Out):
    code: str = Field(description="the QR payload a till scans; post it as member_code")
    expires_at: datetime
    ttl_seconds: int


class EntryOut(Out):
    id: int
    delta: int
    balance_after: int
    reason: str
    note: str | None
    created_at: datetime
    store_id: int | None = Field(description="the store the entry concerns: a purchase's or refund's (its "
                                             "merchant's store, when it runs one), a coupon's; null for others")
    store: StoreLocationOut | None = Field(description="where that store is: names, floor, unit")


class HistoryQuery(Query):
    limit: int = Field(default=20, ge=1, le=100)
    before: BigId | None = Field(default=None, description="the next_before of the previous page")


class PointsOut(PointsSummary):
    entries: list[EntryOut]
    next_before: int | None


class GiftOut(Out):
    code: str
    name: str
    points: int


class GiftsOut(Out):
    gifts: list[GiftOut]


class RedeemGift(Body):
    gift_code: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    quantity: int = Field(default=1, ge=1, le=20)


class RedemptionOut(Out):
    id: int
    gift_code: str
    quantity: int
    points: int
    pickup_code: str
    balance: int
    created_at: datetime


class CheckinIn(Body):
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)


class CheckinOut(Out):
    day: date
    streak: int
    points: int
    balance: int


# --- helpers ---------------------------------------------------------------------------------------

def _summary(session, member_id: int) -> PointsSummary:
    rt = runtime()
    owed, balance = points.owed_and_balance(session, member_id)
    expiring = points.expiring_soon(session, rt.settings, member_id, rt.now())
    return PointsSummary(balance=balance, owed=owed,
                         expiring_soon=[ExpiringOut(points=e.points, expires_at=e.expires_at) for e in expiring])


def _me(session, member: members.Member) -> MeOut:
    """The profile; opening it (or signing in) in the birthday month brings the birthday gift."""
    rt = runtime()
    rewards.issue_birthday_gift(session, rt.settings, member, rt.now())
    points.expire_due(session, rt.now(), member_id=member.id)
    return MeOut(id=member.id, nickname=member.nickname, gender=member.gender, birthday=member.birthday,
                 phone=member.phone, referral_code=member.referral_code, member_since=member.created_at,
                 tier=member.tier, locale=members.locale_of(member), locale_chosen=member.locale is not None,
                 points=_summary(session, member.id),
                 checked_in_today=checkin.today_checkin(session, rt.settings, member.id, rt.now()) is not None)


# --- endpoints -------------------------------------------------------------------------------------

@operation(bp, "/auth/wechat", "POST", summary="Sign in with a wx.login code", body=SignIn, response=SignedIn,
           errors=("wechat.invalid_code", "wechat.code_used", "wechat.rate_limited", "wechat.unreachable"))
def sign_in(body: SignIn) -> SignedIn:
    rt = runtime()
    # WeChat first, outside any transaction: a slow upstream must not hold a database connection.
    session_info = wechat.code_to_session(rt.wechat, body.code)
    with transaction() as session:
        member, created = rewards.sign_in(session, rt.settings, openid=session_info.openid,
                                          unionid=session_info.unionid, now=rt.now(),
                                          referral_code=body.referral_code, locale=body.locale)
        out = _me(session, member)
        referral = None if body.referral_code is None else "already_member" if not created else \
            "applied" if member.referred_by_id is not None else "unknown_code"
    wechat.remember_session_key(rt.redis, member.id, session_info)
    token = auth.issue_token(rt.redis, member.id, rt.settings.auth.token_ttl_s)
    return SignedIn(token=token, expires_in=rt.settings.auth.token_ttl_s, new_member=created, referral=referral,
                    member=out)


@operation(bp, "/auth/logout", "POST", summary="Revoke the bearer token used for this call", auth="member",
           status=204)
def logout() -> None:
    auth.revoke_token(runtime().redis, request.headers["Authorization"].split(" ", 1)[1].strip())


@operation(bp, "/me", "GET", summary="The member's profile and points", auth="member", response=MeOut)
def get_me() -> MeOut:
    with transaction() as session:
        return _me(session, members.get(session, current_member_id()))


@operation(bp, "/me", "PATCH", summary="Change nickname, gender or locale, or set the birthday once", auth="member",
           body=PatchMe, response=MeOut, errors=("member.birthday_locked",))
def patch_me(body: PatchMe) -> MeOut:
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidInput("nothing to change: send nickname, birthday, gender or locale", code="request.invalid")
    if any(value is None for value in changes.values()):
        raise InvalidInput("profile fields cannot be cleared", code="request.invalid")
    with transaction() as session:
        member = members.update_profile(session, members.get(session, current_member_id()), changes)
        return _me(session, member)


@operation(bp, "/me/phone", "POST", summary="Bind the phone number the member shared through WeChat",
           auth="member", body=PhoneIn, response=MeOut, errors=("wechat.invalid_code", "wechat.unreachable"))
def bind_phone(body: PhoneIn) -> MeOut:
    phone = wechat.get_phone_number(runtime().wechat, body.code)
    with transaction() as session:
        member = members.set_phone(session, members.get(session, current_member_id()),
                                   country_code=phone["country_code"], pure_number=phone["pure_phone_number"])
        return _me(session, member)


@operation(bp, "/me/card", "GET", summary="A short-lived signed member code for the till", auth="member",
           response=CardOut)
def get_card() -> CardOut:
    rt = runtime()
    ttl = rt.settings.auth.card_ttl_s
    code, expires = auth.card_code(rt.secret, current_member_id(), rt.now(), ttl)
    return CardOut(code=code, expires_at=datetime.fromtimestamp(expires, tz=rt.now().tzinfo), ttl_seconds=ttl)


@operation(bp, "/me/points", "GET", summary="Balance, points expiring soon, and history newest first",
           auth="member", query=HistoryQuery, response=PointsOut)
def get_points(query: HistoryQuery) -> PointsOut:
    rt = runtime()
    member_id = current_member_id()
    with transaction() as session:
        points.expire_due(session, rt.now(), member_id=member_id)
        entries = points.history(session, member_id, before_id=query.before, limit=query.limit)
        summary = _summary(session, member_id)
        # Two queries for the page's stores, then one for their locations, however many entries.
        stores = directory.entry_stores(session, [e.source_ref for e in entries])
        where = directory.locations(session, stores.values())
        out = [EntryOut(id=e.id, delta=e.delta, balance_after=e.balance_after, reason=e.reason, note=e.note,
                        created_at=e.created_at, store_id=stores.get(e.source_ref),
                        store=location_out(where.get(stores.get(e.source_ref, 0)))) for e in entries]
    return PointsOut(**summary.model_dump(), entries=out,
                     next_before=entries[-1].id if len(entries) == query.limit else None)


@operation(bp, "/gifts", "GET", summary="The gift catalogue members can redeem points for", response=GiftsOut)
def list_gifts() -> GiftsOut:
    return GiftsOut(gifts=[GiftOut(code=g.code, name=g.name, points=g.points) for g in runtime().settings.gifts])


@operation(bp, "/me/points/redemptions", "POST", summary="Redeem points for a gift (send an Idempotency-Key)",
           auth="member", body=RedeemGift, response=RedemptionOut, status=201, also=REPLAY,
           headers={"Idempotency-Key": "required; a retry with the same key returns the first result"},
           errors=("points.insufficient", "gift.not_found", "points.idempotency_mismatch",
                   "request.idempotency_key_required"))
def redeem_gift(body: RedeemGift):
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > 64:
        raise InvalidInput("send an Idempotency-Key header (1 to 64 characters)",
                           code="request.idempotency_key_required")
    rt = runtime()
    member_id = current_member_id()
    with transaction() as session:
        redemption, replayed = gifts.redeem_gift(session, rt.settings, member_id, gift_code=body.gift_code,
                                                 quantity=body.quantity, idempotency_key=key, now=rt.now())
        out = RedemptionOut(id=redemption.id, gift_code=redemption.gift_code, quantity=redemption.quantity,
                            points=redemption.points, pickup_code=redemption.pickup_code,
                            balance=points.balance(session, member_id), created_at=redemption.created_at)
    return out, 200 if replayed else 201


@operation(bp, "/checkins", "POST", summary="Check in for today's points", auth="member", body=CheckinIn,
           response=CheckinOut, status=201,
           errors=("checkin.already_today", "checkin.location_required", "checkin.too_far"))
def check_in(body: CheckinIn) -> CheckinOut:
    if (body.latitude is None) != (body.longitude is None):
        raise InvalidInput("send both latitude and longitude, or neither", code="request.invalid")
    position = None if body.latitude is None else checkin.Position(body.latitude, body.longitude)
    rt = runtime()
    member_id = current_member_id()
    with transaction() as session:
        done = checkin.check_in(session, rt.settings, member_id, now=rt.now(), position=position)
    return CheckinOut(day=done.day, streak=done.streak, points=done.points, balance=done.balance)
