"""The merchant API: staff sign in and are managed; tills post purchases for points, refund them, look them up.

The till endpoints take the merchant's API key or any staff token; staff management takes the
key or a manager's token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from flask import Blueprint, request
from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints

from mallapp.api.core import (
    REPLAY,
    Body,
    Out,
    SignedInOut,
    SignInIn,
    Username,
    current_merchant_id,
    current_staff_id,
    current_token,
    operation,
    runtime,
    transaction,
)
from mallapp.domain import auth, purchases, staff
from mallapp.errors import Forbidden, InvalidInput, NotFound

bp = Blueprint("merchant", __name__, url_prefix="/api/v1/merchant")

ReceiptNo = Annotated[str, StringConstraints(pattern=r"^[\w\-./:#]{1,64}$")]
Role = Literal["manager", "cashier"]  # staff.ROLES


class PurchaseIn(Body):
    member_code: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    amount_fen: int = Field(gt=0, le=100_000_000, description="the amount paid, in fen (1 yuan = 100 fen)")
    receipt_no: ReceiptNo
    occurred_at: AwareDatetime | None = Field(
        default=None, description="when the till took the payment, with its UTC offset; leave out for now by the "
                                  "server's clock (the till console does: a tablet's clock is not trusted)")


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
           auth="merchant", body=PurchaseIn, response=PurchaseOut, status=201, also=REPLAY,
           errors=("card.invalid", "card.expired", "purchase.receipt_conflict", "purchase.time_out_of_range"))
def post_purchase(body: PurchaseIn):
    rt = runtime()
    with transaction() as session:
        recorded = purchases.post_from_till(
            session, rt.settings, rt.secret, merchant_id=current_merchant_id(), member_code=body.member_code,
            receipt_no=body.receipt_no, amount_fen=body.amount_fen,
            occurred_at=body.occurred_at or rt.now(), now=rt.now())
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
           auth="merchant", body=RefundIn, response=RefundOut, status=201, also=REPLAY,
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


# --- staff -----------------------------------------------------------------------------------------

class StaffSignedInOut(SignedInOut):
    role: Role
    merchant_id: int
    merchant_name: str


class StaffIn(Body):
    username: Username = Field(description="unique in the whole mall: staff sign in with it alone")
    role: Role
    password: Annotated[str, StringConstraints(min_length=auth.MIN_PASSWORD, max_length=200)] | None = Field(
        default=None, description="leave out to have a strong one generated and shown once")


class StaffPatch(Body):
    role: Role | None = None
    active: bool | None = Field(default=None, description="false signs the staff member out at once")


class StaffOut(Out):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    role: Role
    active: bool
    created_at: datetime


class StaffCreatedOut(StaffOut):
    password: str | None = Field(description="the generated password, shown this once; null when one was given")


class StaffListOut(Out):
    staff: list[StaffOut]


@operation(bp, "/auth", "POST", summary="Sign a staff member in with username and password", body=SignInIn,
           response=StaffSignedInOut, errors=("merchant.bad_credentials", "auth.too_many_attempts"))
def sign_in(body: SignInIn) -> StaffSignedInOut:
    rt = runtime()
    ttl = rt.settings.auth.token_ttl_s
    with transaction() as session:
        token, caller = staff.sign_in(session, rt.redis, rt.settings.auth, body.username, body.password,
                                      request.remote_addr)
    return StaffSignedInOut(token=token, expires_in=ttl, username=caller.username, role=caller.role,
                       merchant_id=caller.merchant_id, merchant_name=caller.merchant_name)


@operation(bp, "/auth", "DELETE", summary="Sign out: revoke the staff token used for this call", auth="merchant",
           status=204)
def sign_out() -> None:
    if current_staff_id() is None:
        raise Forbidden("an API key is not signed in; rotate it to retire it", code="auth.wrong_caller")
    staff.revoke_token(runtime().redis, current_token())


@operation(bp, "/staff", "POST", summary="Add a manager or a cashier (a generated password is shown once)",
           auth="merchant_manager", body=StaffIn, response=StaffCreatedOut, status=201,
           errors=("staff.username_taken",))
def create_staff(body: StaffIn) -> StaffCreatedOut:
    password = body.password or auth.generate_password()
    with transaction() as session:
        added = staff.create(session, current_merchant_id(), body.username, body.role, password, runtime().now())
        out = StaffOut.model_validate(added)
    return StaffCreatedOut(**out.model_dump(), password=None if body.password else password)


@operation(bp, "/staff", "GET", summary="This merchant's staff, inactive ones too", auth="merchant_manager",
           response=StaffListOut)
def list_staff() -> StaffListOut:
    with transaction() as session:
        return StaffListOut(staff=[StaffOut.model_validate(s) for s in staff.list_own(session, current_merchant_id())])


@operation(bp, "/staff/<int:staff_id>", "PATCH",
           summary="Change a staff member's role or deactivate them; it applies to their next request",
           auth="merchant_manager", body=StaffPatch, response=StaffOut,
           errors=("staff.not_found", "staff.self_lockout"))
def patch_staff(staff_id: int, body: StaffPatch) -> StaffOut:
    if body.role is None and body.active is None:
        raise InvalidInput("nothing to change: send role or active", code="request.invalid")
    with transaction() as session:
        changed = staff.update(session, current_merchant_id(), staff_id, role=body.role, active=body.active,
                               acting_staff_id=current_staff_id())
        return StaffOut.model_validate(changed)


@operation(bp, "/staff/<int:staff_id>/unlock", "POST",
           summary="Clear a staff member's wrong-password counts (from every address) so they can sign in again",
           auth="merchant_manager", status=204, errors=("staff.not_found",))
def unlock_staff(staff_id: int) -> None:
    rt = runtime()
    with transaction() as session:
        staff.unlock(session, rt.redis, rt.settings.auth, current_merchant_id(), staff_id)
