"""The service desk: find a member, read their record, adjust their points with a reason.

**Search** (:func:`search`) reads what the desk is told: a phone number (in full, or its last four
digits), a member id, a referral code, or part of a nickname. Each key has an index (``members.phone``,
``members.phone_last4``, the primary key, ``referral_code`` and, on PostgreSQL, a trigram index on the
nickname), so a search on a million members reads index entries, never the whole table. Erased members
(see :mod:`mallapp.domain.privacy`) are never found.

**Record** (:mod:`mallapp.domain.desk_record`) gathers what the mall knows of one member.

**Adjustments** (:func:`adjust_points`) credit or debit points through :mod:`mallapp.domain.points`
(reason ``adjustment``, the desk's text as the entry's note, so the member reads it in the ledger) and
record who did it in ``points_adjustments``. The desk's idempotency key makes a retry answer the first
result; the same key with another body is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import MAX_ID, Base, UTCDateTime, insert_or_nothing
from mallapp.domain import points
from mallapp.domain.members import _REFERRAL_ALPHABET, Member
from mallapp.domain.points import BigId
from mallapp.domain.privacy import TOMBSTONE
from mallapp.errors import Conflict, InvalidInput, NotFound
from mallapp.settings import Settings

# The bound of one manual adjustment, either way: a larger correction is several, each with its reason.
MAX_ADJUSTMENT = 100_000


class PointsAdjustment(Base):
    """A manual points adjustment made at the service desk: who, when, why, and the ledger entry it posted."""

    __tablename__ = "points_adjustments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    ops_user_id: Mapped[int] = mapped_column(ForeignKey("ops_users.id"))
    points: Mapped[int] = mapped_column(BigInteger)  # positive: a credit; negative: a debit
    reason: Mapped[str] = mapped_column(String(200))
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("points_entries.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- search ----------------------------------------------------------------------------------------

def _digits(text: str) -> str | None:
    """The digits of a phone number or id as typed ("+86 138-0013-8000"), or None when it is not one."""
    bare = text.replace(" ", "").replace("-", "")
    bare = bare[1:] if bare.startswith("+") else bare
    return bare if bare.isdigit() else None


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(session: Session, q: str, *, limit: int, after_id: int | None = None) -> tuple[list[Member], bool]:
    """Members matching ``q`` by id, phone (full or last four), referral code or nickname part, in id order.

    Return (one page, whether more follow); page with ``after_id`` (the last id of the previous page).
    """
    q = q.strip()
    if not q:
        raise InvalidInput("say what to look for: a phone number, its last four digits, a member id, a referral "
                           "code or part of a nickname", code="desk.empty_query")
    keys = []
    digits = _digits(q)
    if digits is not None:
        if len(digits) == 4:
            keys.append(Member.phone_last4 == digits)
        if len(digits) >= 7:
            keys.append(Member.phone.in_([f"+{digits}", f"+86{digits}"]))
        if len(digits) <= 10 and 0 < int(digits) <= MAX_ID:
            keys.append(Member.id == int(digits))
    if len(q) == 8 and all(ch in _REFERRAL_ALPHABET for ch in q.upper()):
        keys.append(Member.referral_code == q.upper())
    if digits is None:
        keys.append(Member.nickname.ilike(f"%{_like_escape(q)}%", escape="\\"))
    query = select(Member).where(or_(*keys), ~Member.openid.startswith(TOMBSTONE))
    if after_id is not None:
        query = query.where(Member.id > after_id)
    found = list(session.scalars(query.order_by(Member.id).limit(limit + 1)))
    return found[:limit], len(found) > limit


def live_member(session: Session, member_id: int) -> Member:
    """The member, or NotFound: an unknown id and an erased member answer alike."""
    member = session.get(Member, member_id) if 0 < member_id <= MAX_ID else None
    if member is None or member.openid.startswith(TOMBSTONE):
        raise NotFound("member not found", code="member.not_found")
    return member


# --- adjustments -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Adjusted:
    adjustment: PointsAdjustment
    balance: int
    replayed: bool


def ledger_key(idempotency_key: str) -> str:
    return f"desk:{idempotency_key}"


def _same_or_refuse(done: PointsAdjustment, member_id: int, delta: int, reason: str) -> None:
    if (done.member_id, done.points, done.reason) != (member_id, delta, reason):
        raise Conflict("this idempotency key was used for a different adjustment", code="desk.idempotency_mismatch",
                       details={"member_id": done.member_id, "points": done.points, "reason": done.reason})


def adjust_points(session: Session, settings: Settings, member_id: int, *, ops_user_id: int, delta: int,
                  reason: str, idempotency_key: str, now: datetime) -> Adjusted:
    """Credit (``delta`` > 0) or debit (``delta`` < 0) the member's points with a reason, once per key.

    A debit past the balance is refused (``points.insufficient``); the balance never goes below zero.
    """
    if delta == 0 or abs(delta) > MAX_ADJUSTMENT:
        raise InvalidInput(f"points is a non-zero number from -{MAX_ADJUSTMENT} to {MAX_ADJUSTMENT}",
                           code="request.invalid")
    done = session.scalar(select(PointsAdjustment).where(PointsAdjustment.idempotency_key == idempotency_key))
    if done is not None:
        _same_or_refuse(done, member_id, delta, reason)
        return Adjusted(done, points.balance(session, member_id), replayed=True)
    live_member(session, member_id)
    key, source = ledger_key(idempotency_key), f"desk:{ops_user_id}"
    if delta > 0:
        posted = points.credit(session, settings, member_id, delta, "adjustment", source_ref=source,
                               idempotency_key=key, now=now, note=reason)
    else:
        posted = points.debit(session, member_id, -delta, "adjustment", source_ref=source, idempotency_key=key,
                              now=now, note=reason)
    values = dict(member_id=member_id, ops_user_id=ops_user_id, points=delta, reason=reason,
                  idempotency_key=idempotency_key, entry_id=posted.entry.id, created_at=now)
    # A concurrent retry of the same key: the ledger's key let one posting through, this row's key does the same.
    row_id = insert_or_nothing(session, PointsAdjustment, values, ["idempotency_key"])
    if row_id is None:
        done = session.scalar(select(PointsAdjustment).where(PointsAdjustment.idempotency_key == idempotency_key))
        assert done is not None
        _same_or_refuse(done, member_id, delta, reason)
        return Adjusted(done, points.balance(session, member_id), replayed=True)
    return Adjusted(PointsAdjustment(id=row_id, **values), posted.balance, replayed=posted.replayed)


def adjustments(session: Session, member_id: int, limit: int = 20) -> list[PointsAdjustment]:
    """The member's desk adjustments, newest first."""
    return list(session.scalars(select(PointsAdjustment).where(PointsAdjustment.member_id == member_id)
                                .order_by(PointsAdjustment.id.desc()).limit(limit)))
