"""Operations staff accounts (created from the command line or by an admin through the API) and their bearer tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from redis import Redis
from sqlalchemy import Boolean, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime, get_or_404
from mallapp.domain import auth
from mallapp.errors import Conflict, InvalidInput, Unauthorized
from mallapp.settings import AuthSettings

# What each role may do (docs/architecture.md, "Ops roles"):
#   admin      everything: the venue, the fleet, merchants, deal review, ops users, and all below;
#   marketing  segments, member reports and campaigns; sees phone numbers masked;
#   desk       the service desk: find a member, read their record (full phone), adjust points with a
#              reason, hand over gifts; acknowledge fleet alerts (the desk is staffed all day);
#   viewer     reads fleet health, presence, footfall and reports; sees phone numbers masked.
ROLES = ("admin", "marketing", "desk", "viewer")
# An operation's ops requirement (mallapp.api.core.Auth) -> the roles that meet it.
GRANTS: dict[str, frozenset[str]] = {
    "ops": frozenset(ROLES),
    "ops_admin": frozenset({"admin"}),
    "ops_marketing": frozenset({"admin", "marketing"}),
    "ops_desk": frozenset({"admin", "desk"}),
}
# Roles that see a member's full phone number; the others see members.masked_phone().
SEES_PHONES = frozenset({"admin", "desk"})
TOKEN_PREFIX = "ot_"


class OpsUser(Base):
    __tablename__ = "ops_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    # One of ROLES.
    role: Mapped[str] = mapped_column(String(12))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class OpsCaller:
    id: int
    username: str
    role: str

    def may(self, requirement: str) -> bool:
        """True when the caller's role meets an operation's requirement (a key of GRANTS)."""
        return self.role in GRANTS[requirement]

    @property
    def sees_phones(self) -> bool:
        return self.role in SEES_PHONES


def create_user(session: Session, username: str, role: str, password: str, now: datetime) -> OpsUser:
    """Create an ops user; the caller shows the password once."""
    username = username.strip()
    if not username or len(username) > 40:
        raise InvalidInput("a username is 1 to 40 characters", code="ops.invalid_username")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", code="ops.invalid_role")
    if len(password) < auth.MIN_PASSWORD:
        raise InvalidInput(f"a password has at least {auth.MIN_PASSWORD} characters", code="ops.weak_password")
    if session.scalar(select(OpsUser.id).where(OpsUser.username == username)) is not None:
        raise Conflict(f"ops user {username!r} already exists", code="ops.username_taken")
    user = OpsUser(username=username, role=role, password_hash=auth.hash_password(password), active=True,
                   created_at=now)
    session.add(user)
    session.flush()
    return user


def sign_in(session: Session, redis: Redis, limits: AuthSettings, username: str, password: str,
            address: str | None = None) -> tuple[str, OpsCaller]:
    """Check the password (``auth.check_sign_in``: one error for an unknown user, a wrong password or a disabled
    one; 429 past the wrong-password limit for the username from ``address``) and issue a bearer token."""
    user = session.scalar(select(OpsUser).where(OpsUser.username == username))
    auth.check_sign_in(redis, "ops", limits, username, password, user.password_hash if user is not None else None,
                       user is not None and user.active, address)
    assert user is not None
    token = auth.issue_bearer(redis, "ops", TOKEN_PREFIX, f"{user.id}:{user.role}:{user.username}",
                              limits.token_ttl_s)
    return token, OpsCaller(user.id, user.username, user.role)


def unlock(session: Session, redis: Redis, limits: AuthSettings, user_id: int) -> OpsUser:
    """Clear the wrong-password counts of an ops user (every address): they can sign in again."""
    user = get_or_404(session, OpsUser, user_id, code="ops.user_not_found", message="no such ops user")
    auth.clear_sign_in_failures(redis, "ops", limits, user.username)
    return user


def caller_for_token(redis: Redis, token: str) -> OpsCaller:
    user_id, role, username = auth.bearer_value(redis, "ops", TOKEN_PREFIX, token).split(":", 2)
    return OpsCaller(int(user_id), username, role)


def authenticate(session: Session, redis: Redis, token: str) -> OpsCaller:
    """The caller behind a live token, with the role their account has NOW: a deactivated account's tokens stop
    working and a new role applies at once (the token only says who signed in)."""
    user_id = int(caller_for_token(redis, token).id)
    row = session.execute(select(OpsUser.username, OpsUser.role, OpsUser.active).where(OpsUser.id == user_id)).first()
    if row is None or not row.active:
        raise Unauthorized("this ops account was deactivated; ask an admin", code="auth.invalid_token")
    return OpsCaller(user_id, row.username, row.role)


def list_users(session: Session) -> list[OpsUser]:
    """Every ops user, active or not, by id."""
    return list(session.scalars(select(OpsUser).order_by(OpsUser.id)))


def change_user(session: Session, user_id: int, *, role: str | None = None, active: bool | None = None) -> OpsUser:
    """Change an ops user's role or deactivate / reactivate them (their sessions follow at once: authenticate).

    Refused with ``ops.last_admin`` when it would leave no active admin: nobody could manage the ops users then.
    The active admins are locked first (PostgreSQL), so two admins demoting each other at once cannot both win.
    """
    if role is not None and role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", code="ops.invalid_role")
    admins = list(session.scalars(select(OpsUser.id).where(OpsUser.role == "admin", OpsUser.active.is_(True))
                                  .order_by(OpsUser.id).with_for_update()))
    user = get_or_404(session, OpsUser, user_id, code="ops.user_not_found", message="no such ops user")
    new_role = user.role if role is None else role
    new_active = user.active if active is None else active
    if user.id in admins and not (new_role == "admin" and new_active) and len(admins) == 1:
        raise Conflict("this is the last active admin: make another admin first", code="ops.last_admin")
    user.role, user.active = new_role, new_active
    session.flush()
    return user


def revoke_token(redis: Redis, token: str) -> None:
    auth.revoke_bearer(redis, "ops", token)
