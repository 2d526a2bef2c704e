"""Merchants (tenant stores, restaurants) and their API keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, Integer, String, bindparam, false, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime, get_or_404
from mallapp.errors import Conflict, InvalidInput, Unauthorized

KEY_PREFIX = "mk_"


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    # Only a SHA-256 of the key is kept: keys are 256-bit random, so a slow hash adds nothing.
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the key, so staff can tell keys apart without seeing them.
    key_hint: Mapped[str] = mapped_column(String(12))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Set by ops admins: this merchant's submitted deals go live without review.
    auto_approve_deals: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The Idempotency-Key of the ops call that created it (null from the command line): a retry of that call
    # finds this merchant instead of creating a second one.
    create_key: Mapped[str | None] = mapped_column(String(100), unique=True, nullable=True)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(session: Session, name: str, now: datetime, create_key: str | None = None) -> tuple[Merchant, str]:
    """Create a merchant; return it and its API key, which is shown this once and never stored.

    ``create_key`` (an ops call's Idempotency-Key) is kept on the row: see :func:`create_once`.
    """
    name = name.strip()
    if not name or len(name) > 80:
        raise InvalidInput("a merchant name is 1 to 80 characters", code="merchant.invalid_name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    merchant = Merchant(name=name, api_key_hash=hash_key(key), key_hint=key[:8], active=True,
                        auto_approve_deals=False, created_at=now, create_key=create_key)
    session.add(merchant)
    session.flush()
    return merchant, key


@dataclass(frozen=True)
class Created:
    merchant: Merchant
    api_key: str | None  # None on a replay: the key was shown once, in the first answer
    replayed: bool


def create_once(session: Session, name: str, now: datetime, create_key: str) -> Created:
    """Create a merchant unless ``create_key`` already created one: then that one, without its key (never kept).

    The same key for another name is refused (``merchant.idempotency_mismatch``): it is another request.
    A concurrent twin loses on the unique key and answers as a retry.
    """
    existing = session.scalar(select(Merchant).where(Merchant.create_key == create_key))
    if existing is None:
        try:
            with session.begin_nested():
                merchant, key = create(session, name, now, create_key)
            return Created(merchant, key, replayed=False)
        except IntegrityError:
            existing = session.scalar(select(Merchant).where(Merchant.create_key == create_key))
            if existing is None:
                raise
    if existing.name != name.strip():
        raise Conflict("this Idempotency-Key created another merchant; use a new key for a new merchant",
                       code="merchant.idempotency_mismatch")
    return Created(existing, None, replayed=True)


def list_all(session: Session) -> list[Merchant]:
    """Every merchant, active or not, by id."""
    return list(session.scalars(select(Merchant).order_by(Merchant.id)))


def get(session: Session, merchant_id: int) -> Merchant:
    return get_or_404(session, Merchant, merchant_id, code="merchant.not_found", what="merchant")


def set_active(session: Session, merchant_id: int, active: bool) -> Merchant:
    """Disable a merchant (its key and its staff's sign-ins stop working at once) or enable it again."""
    merchant = get_or_404(session, Merchant, merchant_id, code="merchant.not_found", what="merchant")
    merchant.active = active
    session.flush()
    return merchant


def rotate_key(session: Session, merchant: Merchant) -> str:
    """Replace the merchant's key; the old one stops working when the transaction commits."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    merchant.api_key_hash, merchant.key_hint = hash_key(key), key[:8]
    session.flush()
    return key


@dataclass(frozen=True)
class Caller:
    """The merchant behind an API key."""

    id: int
    name: str


# Built once: every merchant request runs it.
_BY_KEY = (select(Merchant.id, Merchant.name)
           .where(Merchant.api_key_hash == bindparam("key_hash"), Merchant.active.is_(True)))


def authenticate(session: Session, key: str) -> Caller:
    """Return the active merchant holding this key, or raise Unauthorized."""
    if not key.startswith(KEY_PREFIX):
        raise Unauthorized("not a merchant API key", code="auth.invalid_key")
    row = session.execute(_BY_KEY, {"key_hash": hash_key(key)}).first()
    if row is None:
        raise Unauthorized("unknown or disabled merchant API key", code="auth.invalid_key")
    return Caller(row.id, row.name)
