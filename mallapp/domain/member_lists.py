"""The member reports' lists of members (not bought lately, lost), read live from the latest month's snapshots.

Each page is an index range (migration 0015's indexes on ``member_snapshots``), so a page costs the
same whatever the number of members; ``total`` counts the list through the same index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from mallapp.db import MAX_ID
from mallapp.domain.members import Member
from mallapp.domain.segments import MemberSnapshot
from mallapp.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class Listed:
    """One member in a list, as of the month's snapshot."""

    member_id: int
    nickname: str | None
    phone: str | None
    last_purchase_at: datetime | None
    t_tier: str | None
    pyramid: str | None
    lifecycle: str
    spend_fen: int
    clv_fen: int | None


@dataclass(frozen=True)
class Page:
    month: date
    total: int
    members: list[Listed]
    next_cursor: str | None


def _latest_snapshot_month(session: Session) -> date:
    month = session.scalar(select(func.max(MemberSnapshot.month)))
    if month is None:
        raise NotFound("no member segments computed yet (the nightly segments run makes them)",
                       code="reports.not_computed")
    return month


_LISTED = (MemberSnapshot.member_id, Member.nickname, Member.phone, MemberSnapshot.last_purchase_at,
           MemberSnapshot.t_tier, MemberSnapshot.pyramid, MemberSnapshot.lifecycle, MemberSnapshot.spend_fen,
           MemberSnapshot.clv_fen)


def lapsed(session: Session, now: datetime, *, days: int, limit: int, cursor: str | None) -> Page:
    """Members of the latest snapshot whose last purchase is more than ``days`` days before ``now``, the most
    recent last purchase first (the likeliest to come back); members who never bought are not listed."""
    month, s = _latest_snapshot_month(session), MemberSnapshot
    before = now - timedelta(days=days)
    where = [s.month == month, s.last_purchase_at < before]
    total = int(session.scalar(select(func.count()).select_from(s).where(*where)) or 0)
    if cursor:
        at, member_id = _cursor(cursor)
        where.append(or_(s.last_purchase_at < at, and_(s.last_purchase_at == at, s.member_id < member_id)))
    rows = session.execute(select(*_LISTED).join(Member, Member.id == s.member_id).where(*where)
                           .order_by(s.last_purchase_at.desc(), s.member_id.desc()).limit(limit)).all()
    listed = [Listed(*row) for row in rows]
    more = len(listed) == limit
    last = listed[-1] if listed else None
    next_cursor = f"{last.last_purchase_at.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ}~{last.member_id}" if more and last else None
    return Page(month, total, listed, next_cursor)


def lost(session: Session, *, limit: int, cursor: str | None) -> Page:
    """Members whose lifecycle state in the latest snapshot is ``lost``, by member id."""
    month, s = _latest_snapshot_month(session), MemberSnapshot
    where = [s.month == month, s.lifecycle == "lost"]
    total = int(session.scalar(select(func.count()).select_from(s).where(*where)) or 0)
    if cursor:
        if not cursor.isdigit() or not 0 < int(cursor) <= MAX_ID:
            raise InvalidInput("cursor is not one this list gave", code="reports.invalid_cursor")
        where.append(s.member_id > int(cursor))
    rows = session.execute(select(*_LISTED).join(Member, Member.id == s.member_id).where(*where)
                           .order_by(s.member_id).limit(limit)).all()
    listed = [Listed(*row) for row in rows]
    return Page(month, total, listed, str(listed[-1].member_id) if len(listed) == limit else None)


def _cursor(value: str) -> tuple[datetime, int]:
    try:
        at, member_id = value.split("~")
        parsed = datetime.fromisoformat(at)
        if (parsed.tzinfo is None or not 2000 <= parsed.year < 3000 or not member_id.isdigit()
                or not 0 < int(member_id) <= MAX_ID):
            raise ValueError(value)
        return parsed, int(member_id)
    except ValueError:
        raise InvalidInput("cursor is not one this list gave", code="reports.invalid_cursor") from None
