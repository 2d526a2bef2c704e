"""The merchant (till) API: post purchases for points, refund them, look them up."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from flask import Blueprint
from pydantic import AwareDatetime, Field, StringConstraints

from mallapp import purchases
from mallapp.api.core import Body, Out, current_merchant_id, operation, runtime, transaction
from mallapp.errors import NotFound

bp = Blueprint("merchant", __name__, url_prefix="/api/v1/merchant")

ReceiptNo = Annotated[str, StringConstraints(pattern=r"^[\w\-./:#]{1,64}$")]


class PurchaseIn(Body):
    member_code: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    amount_fen: int = Field(gt=0, le=100_000_000, description="the amount paid, in fen (1 yuan = 100 fen)")
    receipt_no: ReceiptNo
    occurred_at: AwareDatetime = Field(description="when the till took the payment, with its UTC offset")


class PurchaseOut(Out):
    receipt_no: str
    amount_fen: int
    refunded_fen: int
    points_earned: int
    birthday_bonus: int
    points_total: int
    points_reversed: int
    occurred_at: datetime
    replayed: bool = Field(description="true when this receipt had been posted before; nothing was added")


class RefundIn(Body):
    receipt_no: ReceiptNo
    refund_no: ReceiptNo
    amount_fen: int = Field(gt=0, le=100_000_000)


class RefundOut(Out):
    refund_no: str
    receipt_no: str
    amount_fen: int
    points_reversed: int = Field(description="the points this refund takes back")
    points_taken: int = Field(description="taken from the member's balance now")
    points_owed: int = Field(description="already spent; settled from the member's future earnings")
    points_lapsed: int = Field(description="had already expired unused; not taken again")
    replayed: bool


def _purchase_out(purchase: purchases.Purchase, replayed: bool) -> PurchaseOut:
    return PurchaseOut(receipt_no=purchase.receipt_no, amount_fen=purchase.amount_fen,
                       refunded_fen=purchase.refunded_fen, points_earned=purchase.points_earned,
                       birthday_bonus=purchase.birthday_bonus, points_total=purchase.points_total,
                       points_reversed=purchase.points_reversed, occurred_at=purchase.occurred_at,
                       replayed=replayed)


@operation(bp, "/purchases", "POST", summary="Post a purchase for the member's points (idempotent on receipt_no)",
           auth="merchant", body=PurchaseIn, response=PurchaseOut, status=201,
           errors=("card.invalid", "card.expired", "purchase.receipt_conflict", "purchase.time_out_of_range"))
def post_purchase(body: PurchaseIn):
    rt = runtime()
    with transaction() as session:
        recorded = purchases.post_from_till(
            session, rt.settings, rt.secret, merchant_id=current_merchant_id(), member_code=body.member_code,
            receipt_no=body.receipt_no, amount_fen=body.amount_fen, occurred_at=body.occurred_at, now=rt.now())
        out = _purchase_out(recorded.purchase, recorded.replayed)
    return out, 200 if recorded.replayed else 201


@operation(bp, "/purchases/<receipt_no>", "GET", summary="One of this merchant's purchases", auth="merchant",
           response=PurchaseOut, errors=("purchase.not_found",))
def get_purchase(receipt_no: str) -> PurchaseOut:
    with transaction() as session:
        purchase = purchases.find(session, current_merchant_id(), receipt_no)
        if purchase is None:
            raise NotFound("no purchase with this receipt number", code="purchase.not_found")
        return _purchase_out(purchase, replayed=False)


@operation(bp, "/refunds", "POST", summary="Refund (part of) a receipt and take back its points",
           auth="merchant", body=RefundIn, response=RefundOut, status=201,
           errors=("purchase.not_found", "refund.exceeds_purchase", "refund.number_conflict"))
def post_refund(body: RefundIn):
    rt = runtime()
    with transaction() as session:
        done = purchases.refund(session, merchant_id=current_merchant_id(), receipt_no=body.receipt_no,
                                refund_no=body.refund_no, amount_fen=body.amount_fen, now=rt.now())
        out = RefundOut(refund_no=done.refund.refund_no, receipt_no=done.purchase.receipt_no,
                        amount_fen=done.refund.amount_fen, points_reversed=done.refund.points_reversed,
                        points_taken=done.refund.points_taken, points_owed=done.refund.points_owed,
                        points_lapsed=done.refund.points_lapsed, replayed=done.replayed)
    return out, 200 if done.replayed else 201
