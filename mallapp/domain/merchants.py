"""Merchants (tenant stores, restaurants) and their API keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, Integer, String, bindparam, false, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime
from mallapp.errors import InvalidInput, Unauthorized

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


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(session: Session, name: str, now: datetime) -> tuple[Merchant, str]:
    """Create a merchant; return it and its API key, which is shown this once and never stored."""
    name = name.strip()
    if not name or len(name) > 80:
        raise InvalidInput("a merchant name is 1 to 80 characters", code="merchant.invalid_name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    merchant = Merchant(name=name, api_key_hash=hash_key(key), key_hint=key[:8], active=True,
                        auto_approve_deals=False, created_at=now)
    session.add(merchant)
    session.flush()
    return merchant, key


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
