"""Merchant staff accounts (managers and cashiers), their sign-in and their bearer tokens.

A merchant acts through its API key or through its staff. A manager may do all the key may; a
cashier only works the till. A staff token names the staff row, which is read again on every
request, so deactivating someone, changing their role or disabling the merchant applies at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from redis import Redis
from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, bindparam, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime, get_or_404, insert_or_nothing
from mallapp.domain import auth
from mallapp.domain.merchants import Merchant
from mallapp.errors import Conflict, InvalidInput, Unauthorized
from mallapp.settings import AuthSettings

ROLES = ("manager", "cashier")
TOKEN_PREFIX = "st_"
_USERNAME = re.compile(r"^[^\x00-\x1f\x7f]{1,40}$")


class Staff(Base):
    __tablename__ = "merchant_staff"
    __table_args__ = (CheckConstraint("role IN ('manager', 'cashier')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    # Unique across the mall, so a cashier signs in with a username and password alone.
    username: Mapped[str] = mapped_column(String(40), unique=True)
    # "manager" runs deals, announcements and staff; "cashier" posts purchases, refunds and redemptions.
    role: Mapped[str] = mapped_column(String(12))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class StaffCaller:
    """The staff member behind a token, and their merchant."""

    id: int
    username: str
    role: str
    merchant_id: int
    merchant_name: str


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", code="staff.invalid_role")


def create(session: Session, merchant_id: int, username: str, role: str, password: str, now: datetime) -> Staff:
    """Add a staff member to the merchant; the caller shows the password once."""
    username = username.strip()
    if not _USERNAME.match(username):
        raise InvalidInput("a username is 1 to 40 printable characters", code="staff.invalid_username")
    _check_role(role)
    if len(password) < auth.MIN_PASSWORD:
        raise InvalidInput(f"a password has at least {auth.MIN_PASSWORD} characters", code="staff.weak_password")
    # One statement: of two concurrent requests for the same username exactly one wins.
    staff_id = insert_or_nothing(session, Staff, {
        "merchant_id": merchant_id, "username": username, "role": role,
        "password_hash": auth.hash_password(password), "active": True, "created_at": now}, ["username"])
    if staff_id is None:
        raise Conflict(f"the username {username!r} is taken", code="staff.username_taken")
    return session.get_one(Staff, staff_id)


def list_own(session: Session, merchant_id: int) -> list[Staff]:
    """The merchant's staff, active and inactive, oldest first."""
    return list(session.scalars(select(Staff).where(Staff.merchant_id == merchant_id).order_by(Staff.id)))


def update(session: Session, merchant_id: int, staff_id: int, *, role: str | None = None,
           active: bool | None = None, acting_staff_id: int | None = None) -> Staff:
    """Change a staff member's role or active flag; ``acting_staff_id`` may not lock themself out."""
    staff = get_or_404(session, Staff, staff_id, code="staff.not_found", message="no such staff member",
                       accept=lambda staff: staff.merchant_id == merchant_id)
    if role is not None:
        _check_role(role)
    # The key still works, but a manager should not lose their own access by a slip of the finger.
    if staff.id == acting_staff_id and (active is False or role not in (None, "manager")):
        raise Conflict("you cannot deactivate or demote yourself; ask another manager", code="staff.self_lockout")
    if role is not None:
        staff.role = role
    if active is not None:
        staff.active = active
    session.flush()
    return staff


def unlock(session: Session, redis: Redis, limits: AuthSettings, merchant_id: int, staff_id: int) -> Staff:
    """Clear the wrong-password counts of one of the merchant's staff (every address): they can sign in again."""
    staff = get_or_404(session, Staff, staff_id, code="staff.not_found", message="no such staff member",
                       accept=lambda staff: staff.merchant_id == merchant_id)
    auth.clear_sign_in_failures(redis, "staff", limits, staff.username)
    return staff


_BY_USERNAME = (select(Staff.id, Staff.username, Staff.role, Staff.password_hash, Staff.active, Staff.merchant_id,
                       Merchant.name.label("merchant_name"), Merchant.active.label("merchant_active"))
                .join(Merchant, Merchant.id == Staff.merchant_id)
                .where(Staff.username == bindparam("username")))


def sign_in(session: Session, redis: Redis, limits: AuthSettings, username: str, password: str,
            address: str | None = None) -> tuple[str, StaffCaller]:
    """Check the password (``auth.check_sign_in``: one error for an unknown user, a wrong password or a disabled
    one; 429 past the wrong-password limit for the username from ``address``) and issue a bearer token."""
    row = session.execute(_BY_USERNAME, {"username": username.strip()}).first()
    auth.check_sign_in(redis, "staff", limits, username, password, row.password_hash if row is not None else None,
                       row is not None and row.active and row.merchant_active, address)
    assert row is not None
    token = auth.issue_bearer(redis, "staff", TOKEN_PREFIX, row.id, limits.token_ttl_s)
    _remember_token(redis, row.id, token, limits.token_ttl_s)
    return token, StaffCaller(row.id, row.username, row.role, row.merchant_id, row.merchant_name)


# Built once: every request with a staff token runs it (a primary-key lookup joined to its merchant).
_BY_ID = (select(Staff.id, Staff.username, Staff.role, Staff.merchant_id, Merchant.name.label("merchant_name"))
          .join(Merchant, Merchant.id == Staff.merchant_id)
          .where(Staff.id == bindparam("staff_id"), Staff.active.is_(True), Merchant.active.is_(True)))


def authenticate(session: Session, redis: Redis, token: str) -> StaffCaller:
    """The active staff member of an active merchant behind a live token, or Unauthorized."""
    staff_id = int(auth.bearer_value(redis, "staff", TOKEN_PREFIX, token))
    row = session.execute(_BY_ID, {"staff_id": staff_id}).first()
    if row is None:
        raise Unauthorized("this staff account or its merchant is disabled", code="auth.invalid_token")
    return StaffCaller(row.id, row.username, row.role, row.merchant_id, row.merchant_name)


def revoke_token(redis: Redis, token: str) -> None:
    auth.revoke_bearer(redis, "staff", token)


# --- password reset --------------------------------------------------------------------------------

def _tokens_key(staff_id: int) -> str:
    # The staff member's live tokens, so a password reset can sign every one of them out.
    return f"auth:staff-tokens:{staff_id}"


def _remember_token(redis: Redis, staff_id: int, token: str, ttl_seconds: int) -> None:
    pipe = redis.pipeline()
    pipe.sadd(_tokens_key(staff_id), auth.bearer_digest("staff", token))
    pipe.expire(_tokens_key(staff_id), ttl_seconds)
    pipe.execute()


def set_password(session: Session, redis: Redis, limits: AuthSettings, merchant_id: int, staff_id: int,
                 password: str) -> Staff:
    """Give one of the merchant's staff a new password: their tokens issued since sign-ins were tracked are
    revoked (they sign in again with the new one) and their wrong-password counts cleared."""
    staff = get_or_404(session, Staff, staff_id, code="staff.not_found", message="no such staff member",
                       accept=lambda staff: staff.merchant_id == merchant_id)
    if len(password) < auth.MIN_PASSWORD:
        raise InvalidInput(f"a password has at least {auth.MIN_PASSWORD} characters", code="staff.weak_password")
    staff.password_hash = auth.hash_password(password)
    session.flush()
    digests = redis.smembers(_tokens_key(staff.id))
    auth.revoke_digests(redis, [d.decode() if isinstance(d, bytes) else d for d in digests])
    redis.delete(_tokens_key(staff.id))
    auth.clear_sign_in_failures(redis, "staff", limits, staff.username)
    return staff
