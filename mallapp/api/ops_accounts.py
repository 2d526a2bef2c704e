"""Accounts ops admins manage: merchants (create, disable, rotate the key, auto-approval) and ops users (create,
change role, deactivate). The command line (``mallapp merchants create``, ``mallapp ops create-user``) calls the
same domain functions. Any ops user reads the merchants; only an admin reads or changes the ops users.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from flask import Blueprint, request
from pydantic import Field, StringConstraints

from mallapp.api.core import REPLAY, Body, Out, Printable, Username, operation, runtime, transaction
from mallapp.domain import auth, deals, merchants, ops
from mallapp.errors import InvalidInput

bp = Blueprint("ops_accounts", __name__, url_prefix="/api/v1/ops")

_ADMIN = ("ops.admin_required",)
Role = Literal["admin", "marketing", "desk", "viewer"]  # ops.ROLES


def _idempotency_key() -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not 1 <= len(key) <= 64:
        raise InvalidInput("send an Idempotency-Key header (1 to 64 characters)",
                           code="request.idempotency_key_required")
    return key


# --- merchants -------------------------------------------------------------------------------------

class MerchantOut(Out):
    id: int
    name: str
    active: bool = Field(description="false: its API key and its staff's sign-ins are refused")
    auto_approve_deals: bool = Field(description="its submitted deals go live without review")
    key_hint: str = Field(description="the first characters of its API key, to tell keys apart")
    created_at: datetime


class MerchantsOut(Out):
    merchants: list[MerchantOut] = Field(description="by id; their stores: GET /api/v1/ops/stores (merchant_id)")


class MerchantKeyOut(MerchantOut):
    api_key: str | None = Field(description="the merchant's API key, in this answer only (never stored); null on a "
                                            "retried create: rotate the key if it was lost")


class MerchantCreatedOut(MerchantKeyOut):
    replayed: bool = Field(description="true: this Idempotency-Key created the merchant before; nothing changed")


class MerchantIn(Body):
    name: Printable(80)


class MerchantPatch(Body):
    auto_approve_deals: bool | None = Field(default=None, description="its submitted deals go live without review")
    active: bool | None = Field(default=None, description="false disables the merchant (key and staff refused at "
                                                          "once), true enables it again")


def _merchant(m: merchants.Merchant) -> dict:
    return dict(id=m.id, name=m.name, active=m.active, auto_approve_deals=m.auto_approve_deals, key_hint=m.key_hint,
                created_at=m.created_at)


@operation(bp, "/merchants", "GET", summary="Every merchant, active or disabled", auth="ops", response=MerchantsOut)
def list_merchants() -> MerchantsOut:
    with transaction() as session:
        return MerchantsOut(merchants=[MerchantOut(**_merchant(m)) for m in merchants.list_all(session)])


@operation(bp, "/merchants", "POST", summary="Create a merchant; its API key is in the reply, only this once "
                                             "(send an Idempotency-Key)",
           auth="ops_admin", body=MerchantIn, response=MerchantCreatedOut, status=201, also=REPLAY,
           headers={"Idempotency-Key": "required; a retry with the same key answers the merchant it created "
                                       "(without its key)"},
           errors=(*_ADMIN, "request.idempotency_key_required", "merchant.idempotency_mismatch"))
def create_merchant(body: MerchantIn):
    key = _idempotency_key()
    with transaction() as session:
        done = merchants.create_once(session, body.name, runtime().now(), key)
        out = MerchantCreatedOut(**_merchant(done.merchant), api_key=done.api_key, replayed=done.replayed)
    return out, 200 if done.replayed else 201


@operation(bp, "/merchants/<int:merchant_id>", "PATCH",
           summary="Turn a merchant's deal auto-approval on or off; disable or enable the merchant",
           auth="ops_admin", body=MerchantPatch, response=MerchantOut,
           errors=(*_ADMIN, "merchant.not_found"))
def patch_merchant(merchant_id: int, body: MerchantPatch) -> MerchantOut:
    if body.auto_approve_deals is None and body.active is None:
        raise InvalidInput("nothing to change: send auto_approve_deals or active", code="request.invalid")
    with transaction() as session:
        merchant = merchants.get(session, merchant_id)
        if body.auto_approve_deals is not None:
            deals.set_auto_approve(session, merchant_id, body.auto_approve_deals)
        if body.active is not None:
            merchants.set_active(session, merchant_id, body.active)
        return MerchantOut(**_merchant(merchant))


@operation(bp, "/merchants/<int:merchant_id>/key", "POST",
           summary="Rotate a merchant's API key: the new one is in the reply, only this once; the old one stops now",
           auth="ops_admin", response=MerchantKeyOut, errors=(*_ADMIN, "merchant.not_found"))
def rotate_merchant_key(merchant_id: int) -> MerchantKeyOut:
    with transaction() as session:
        merchant = merchants.get(session, merchant_id)
        key = merchants.rotate_key(session, merchant)
        return MerchantKeyOut(**_merchant(merchant), api_key=key)


# --- ops users -------------------------------------------------------------------------------------

class OpsUserOut(Out):
    id: int
    username: str
    role: Role
    active: bool = Field(description="false: cannot sign in, and its sessions stopped working")
    created_at: datetime


class OpsUsersOut(Out):
    users: list[OpsUserOut] = Field(description="by id")


class OpsUserCreatedOut(OpsUserOut):
    password: str | None = Field(description="the generated password, in this answer only; null when one was sent")


class OpsUserIn(Body):
    username: Username
    role: Role
    password: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        default=None, description=f"at least {auth.MIN_PASSWORD} characters; left out, one is generated and "
                                  "answered once")


class OpsUserPatch(Body):
    role: Role | None = None
    active: bool | None = Field(default=None, description="false deactivates (its sessions end at once), "
                                                          "true reactivates")


def _user(u: ops.OpsUser) -> dict:
    return dict(id=u.id, username=u.username, role=u.role, active=u.active, created_at=u.created_at)


@operation(bp, "/users", "GET", summary="The ops users and their roles", auth="ops_admin", response=OpsUsersOut,
           errors=_ADMIN)
def list_users() -> OpsUsersOut:
    with transaction() as session:
        return OpsUsersOut(users=[OpsUserOut(**_user(u)) for u in ops.list_users(session)])


@operation(bp, "/users", "POST", summary="Create an ops user with a role; a generated password is answered once",
           auth="ops_admin", body=OpsUserIn, response=OpsUserCreatedOut, status=201,
           errors=(*_ADMIN, "ops.weak_password", "ops.username_taken"))
def create_user(body: OpsUserIn) -> OpsUserCreatedOut:
    password = body.password if body.password is not None else auth.generate_password()
    with transaction() as session:
        user = ops.create_user(session, body.username, body.role, password, runtime().now())
        return OpsUserCreatedOut(**_user(user), password=None if body.password is not None else password)


@operation(bp, "/users/<int:user_id>", "PATCH",
           summary="Change an ops user's role, or deactivate / reactivate them (never the last active admin)",
           auth="ops_admin", body=OpsUserPatch, response=OpsUserOut,
           errors=(*_ADMIN, "ops.user_not_found", "ops.last_admin"))
def patch_user(user_id: int, body: OpsUserPatch) -> OpsUserOut:
    if body.role is None and body.active is None:
        raise InvalidInput("nothing to change: send role or active", code="request.invalid")
    with transaction() as session:
        user = ops.change_user(session, user_id, role=body.role, active=body.active)
        return OpsUserOut(**_user(user))

