"""Paying for parking: quotes and payments for members (with benefits) and for anyone (by plate), and
WeChat Pay's payment notifications. See docs/parking.md, "Benefits" and "Paying"."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from flask import Blueprint, current_app, request
from pydantic import Field, StringConstraints
from sqlalchemy import select

from mallapp.adapters import wechat
from mallapp.adapters.parking_outside import ParkingOutside, pay_state
from mallapp.adapters.wechatpay import notify_answer
from mallapp.api.core import REPLAY, BigId, Body, Out, current_member_id, operation, runtime, transaction
from mallapp.domain.members import Member
from mallapp.domain.parking import payments, plates, quotes
from mallapp.errors import InvalidInput, NotFound

bp = Blueprint("parking_pay", __name__, url_prefix="/api/v1")
log = logging.getLogger("mallapp.parking")

Plate = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=16)]
Key = Annotated[str, StringConstraints(pattern=r"^[\w\-.:]{8,64}$")]
ERRORS = ("parking.plate_invalid", "parking.no_session", "parking.unconfigured")
PAY_ERRORS = (*ERRORS, "parking.already_paid", "parking.payment_pending", "parking.quote_changed",
              "parking.nothing_due", "parking.idempotency_mismatch", "wechatpay.unconfigured")
MEMBER_ERRORS = ("parking.plate_not_yours", "parking.coupon_limit", "parking.coupon_unusable")


# --- shapes ----------------------------------------------------------------------------------------

class ItemOut(Out):
    code: str = Field(description="tier, spend, points or coupon:<id>")
    kind: Literal["tier", "spend", "points", "coupon"]
    name: str = Field(description="a quote's line in the member's language (GET /me locale); a payment's as "
                                  "stored: zh-CN, then English")
    seconds: int = Field(description="free time given (0 for an amount)")
    fen: int = Field(description="an amount given (0 for time)")
    value_fen: int = Field(description="what it is worth on this bill, in stacking order")
    points: int
    coupon_id: int | None


class CouponOut(Out):
    id: int
    title: str
    hours: int
    amount_fen: int


class PublicQuoteOut(Out):
    plate: str = Field(description="masked: 沪A1***5")
    car_park: str
    entered_at: datetime
    quoted_at: datetime
    gross_fen: int = Field(description="the fee of the stay so far")
    paid_fen: int = Field(description="paid earlier on this stay (cash and benefits)")
    due_fen: int
    cash_fen: int = Field(description="what to pay now: send it back as expected_cash_fen")


class QuoteOut(PublicQuoteOut):
    discount_fen: int
    points: int = Field(description="points the breakdown costs")
    points_balance: int
    items: list[ItemOut] = Field(description="the benefits, in the car park's stacking order")
    coupons_available: list[CouponOut] = Field(description="the member's parking coupons usable now")


class PaymentOut(Out):
    order_id: str = Field(description="ours; the car park's and WeChat Pay's order id too")
    status: Literal["pending", "paying", "paid", "failed", "abandoned"]
    payer: Literal["member", "public"]
    plate: str = Field(description="masked")
    gross_fen: int
    discount_fen: int
    cash_fen: int
    points: int
    items: list[ItemOut]
    prepay: dict[str, Any] | None = Field(description="pending: {jsapi: the fields wx.requestPayment takes} or "
                                                      "{code_url: a WeChat Pay code to scan}")
    failure_code: str | None
    refunded_fen: int
    created_at: datetime
    paid_at: datetime | None
    settled_at: datetime | None
    replayed: bool = Field(description="true when this retry changed nothing")


class MemberQuoteIn(Body):
    plate: Plate
    points_hours: int = Field(default=0, ge=0, le=72, description="hours to pay with points (cut to the caps)")
    coupon_ids: list[BigId] = Field(default_factory=list, max_length=10)


class MemberPayIn(MemberQuoteIn):
    expected_cash_fen: int = Field(ge=0, le=100_000_000, description="the quote's cash_fen")
    idempotency_key: Key = Field(description="the client's id for this payment: a retry returns the first result")


class PublicQuoteIn(Body):
    plate: Plate


class PublicPayIn(Body):
    plate: Plate
    expected_cash_fen: int = Field(ge=0, le=100_000_000)
    idempotency_key: Key
    wx_code: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        default=None, description="a wx.login code inside the mini-program: pay there (JSAPI) without joining; "
                                  "absent: a Native code_url to scan")


# --- views -----------------------------------------------------------------------------------------

def _outside() -> ParkingOutside:
    rt = runtime()
    return ParkingOutside(rt.carpark, lambda: rt.wechatpay)


def _public(quote: quotes.Quote) -> dict[str, Any]:
    return {"plate": plates.masked(quote.stay.plate), "car_park": quote.stay.car_park_name,
            "entered_at": quote.stay.entered_at, "quoted_at": quote.quoted_at, "gross_fen": quote.gross_fen,
            "paid_fen": quote.paid_fen, "due_fen": quote.due_fen, "cash_fen": quote.cash_fen}


@operation(bp, "/me/parking/quote", "POST", summary="The bill for my plate, with my benefits itemised",
           auth="member", body=MemberQuoteIn, response=QuoteOut, errors=(*ERRORS, *MEMBER_ERRORS))
def member_quote(body: MemberQuoteIn) -> QuoteOut:
    rt = runtime()
    quote = quotes.for_plate(rt.sessions, rt.settings, _outside().bill, body.plate, rt.now(),
                             member_id=current_member_id(), points_hours=body.points_hours,
                             coupon_ids=body.coupon_ids)
    result = quote.breakdown
    with transaction() as session:
        locale = session.scalar(select(Member.locale).where(Member.id == current_member_id()))
    items = [item.as_dict() | {"name": item.name_in(locale)} for item in result.items]
    return QuoteOut(**_public(quote), discount_fen=result.discount_fen, points=result.points,
                    points_balance=quote.points_balance or 0, items=items,
                    coupons_available=[c.__dict__ for c in quote.coupons_available])


@operation(bp, "/me/parking/payments", "POST", summary="Pay my plate's bill: benefits first, WeChat Pay for the rest",
           auth="member", body=MemberPayIn, response=PaymentOut, status=201, also=REPLAY,
           errors=(*PAY_ERRORS, *MEMBER_ERRORS))
def member_pay(body: MemberPayIn) -> tuple[PaymentOut, int]:
    rt = runtime()
    member_id = current_member_id()
    req = payments.Request(plate=body.plate, member_id=member_id, expected_cash_fen=body.expected_cash_fen,
                           idempotency_key=f"m{member_id}:{body.idempotency_key}", points_hours=body.points_hours,
                           coupon_ids=tuple(body.coupon_ids))
    with transaction() as session:
        openid = session.scalar(_openid_of(member_id))
    result = payments.create(rt.sessions, rt.settings, _outside(), req, now=rt.now(), openid=openid)
    return PaymentOut(**result), 200 if result["replayed"] else 201


def _openid_of(member_id: int) -> Any:
    return select(Member.openid).where(Member.id == member_id)


@operation(bp, "/parking/quote", "POST", summary="The bill for a plate, for anyone: no sign-in, no personal data",
           body=PublicQuoteIn, response=PublicQuoteOut, errors=ERRORS)
def public_quote(body: PublicQuoteIn) -> PublicQuoteOut:
    rt = runtime()
    return PublicQuoteOut(**_public(quotes.for_plate(rt.sessions, rt.settings, _outside().bill, body.plate,
                                                     rt.now())))


@operation(bp, "/parking/payments", "POST", summary="Pay a plate's bill without joining (WeChat Pay)",
           body=PublicPayIn, response=PaymentOut, status=201, also=REPLAY, errors=PAY_ERRORS)
def public_pay(body: PublicPayIn) -> tuple[PaymentOut, int]:
    rt = runtime()
    req = payments.Request(plate=body.plate, member_id=None, expected_cash_fen=body.expected_cash_fen,
                           idempotency_key=f"p:{body.idempotency_key}", wants_jsapi=body.wx_code is not None)
    # The code gives the payer's openid for a JSAPI order; no member is created and nothing is kept.
    openid = wechat.code_to_session(rt.wechat, body.wx_code).openid if body.wx_code else None
    result = payments.create(rt.sessions, rt.settings, _outside(), req, now=rt.now(), openid=openid)
    return PaymentOut(**result), 200 if result["replayed"] else 201


@operation(bp, "/parking/payments/<order_id>", "GET", summary="A parking payment's status, by its order id",
           response=PaymentOut, errors=("parking.payment_not_found",))
def payment_status(order_id: str) -> PaymentOut:
    with transaction() as session:
        return PaymentOut(**payments.get(session, order_id))


@operation(bp, "/parking/wechatpay/notify", "POST", summary="WeChat Pay's payment notification (signed)",
           raw=True, also={400: "FAIL: the notification did not verify; WeChat Pay sends it again"})
def wechatpay_notify() -> tuple[Any, int]:
    rt = runtime()
    try:
        notice = rt.wechatpay.parse_notification(dict(request.headers), request.get_data())
    except InvalidInput as exc:
        log.warning("a WeChat Pay notification did not verify: %s", exc.code)
        body, status = notify_answer(False, "signature")
        return _json(body), status
    order = notice.order
    if notice.event_type == "TRANSACTION.SUCCESS" and order is not None and order.trade_state == "SUCCESS":
        try:
            payments.paid(rt.sessions, rt.settings, _outside(), order.out_trade_no, pay_state(order), now=rt.now())
        except NotFound:
            log.warning("WeChat Pay notified an order we do not know: %s", order.out_trade_no)
    elif (notice.event_type == "REFUND.SUCCESS" and notice.out_refund_no and notice.refund_status == "SUCCESS"
          and not payments.refunded(rt.sessions, notice.out_refund_no)):
        log.info("WeChat Pay notified a refund with nothing left to record: %s", notice.out_refund_no)
    body, status = notify_answer(True)
    return _json(body), status


def _json(body: dict[str, Any]) -> Any:
    return current_app.json.response(body)
