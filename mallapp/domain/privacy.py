"""What the mall holds about a member (the PIPL's right of access) and the erasure of a member's account.

**Export.** Every table with a ``member_id`` column is in :data:`EXPORTED` (its rows of the member are
returned whole) or in :data:`NOT_EXPORTED` with the reason; ``tests/unit/test_privacy_coverage.py``
fails when a new table is in neither, so nothing the mall keeps about a member is left out by oversight.

**Erasure** (:func:`erase`). The member row stays as an anonymous id (the points ledger, purchases,
coupons and bookings refer to it, and the database refuses to change ``points_entries``):

- erased: the openid (replaced by the tombstone ``erased:<id>``, so the same WeChat user signing in
  again is a new member), the unionid, nickname, phone, birthday, gender and tier; the referral code
  (replaced by ``0<id in hex>``: 0 is not in the referral alphabet, so no one can type it);
- deleted: follows, mutes, subscribe quotas; the inbox (``notifications`` and their deliveries: their
  text names the member's bookings, queue numbers and stores, and nobody reads it once the account is
  gone); the location trail (``zone_visits``, ``mall_visits``, ``proximity_events``);
- kept, keyed by the anonymous id: the points ledger, purchases and referrals (the merchants' and the
  mall's accounts), check-ins (the ledger's sources), coupons, gift redemptions, queue tickets and
  reservations (the restaurants' counters), and campaign assignments (a campaign's measurement:
  treated or control, no text about the member);
- the member's bearer tokens are revoked (the API layer also drops the WeChat session key);
- the erasure itself is recorded in ``member_deletions`` (who, when, what), once: erasing again
  answers the first record.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime
from mallapp.domain import members, notifications
from mallapp.domain.members import Member

# Exported table -> section of the export (each a list of the member's rows, oldest first by id).
EXPORTED = {
    "points_accounts": "points_account", "points_entries": "points_entries", "points_lots": "points_lots",
    "purchases": "purchases", "referrals": "referrals", "coupons": "coupons", "gift_redemptions": "gift_redemptions",
    "checkins": "checkins", "mall_visits": "mall_visits", "zone_visits": "zone_visits",
    "proximity_events": "proximity_events", "notifications": "notifications", "follows": "follows",
    "mutes": "mutes", "subscribe_quotas": "subscribe_quotas", "queue_tickets": "queue_tickets",
    "reservations": "reservations", "member_snapshots": "segments", "lifecycle_transitions": "lifecycle",
    "member_deletions": "deletions", "points_adjustments": "points_adjustments",
    "campaign_assignments": "campaigns", "plate_bindings": "plates", "parking_sessions": "parking_sessions",
    "parking_payments": "parking_payments", "parking_benefits": "parking_benefits",
}
# Tables with a member_id column that the export leaves out, and why.
NOT_EXPORTED: dict[str, str] = {}
# Deleted on erasure, children first.
# Segments profile the member: they go too (and the nightly segmentation skips erased members).
# Plates identify the member's cars: unbound by deletion. Parking sessions and payments are the
# mall's accounts (like purchases) and stay, under the anonymous id.
ERASED = ("follows", "mutes", "subscribe_quotas", "notifications", "zone_visits", "mall_visits", "proximity_events",
          "member_snapshots", "lifecycle_transitions", "plate_bindings")
TOMBSTONE = "erased:"


class MemberDeletion(Base):
    """The record of an erased account: kept so the erasure itself is accountable, and answered again."""

    __tablename__ = "member_deletions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), unique=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime)
    erased_by: Mapped[str] = mapped_column(String(20))  # "member": the member asked
    # JSON: {"fields": [...cleared columns], "deleted": {table: rows}}
    erased: Mapped[str] = mapped_column(Text)


def member_tables() -> dict[str, Any]:
    """Every mapped table with a ``member_id`` column, by name (the model registry must be loaded)."""
    return {t.name: t for t in Base.metadata.sorted_tables if "member_id" in t.columns}


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def export(session: Session, member_id: int) -> dict[str, Any]:
    """Everything the mall holds about the member: the profile and, per table, the member's rows."""
    member = members.get(session, member_id)
    profile = {c.name: _plain(getattr(member, c.key)) for c in Member.__table__.columns}
    tables = member_tables()
    missing = set(tables) - set(EXPORTED) - set(NOT_EXPORTED)
    if missing:  # a programming error, caught by the coverage test before it ships
        raise RuntimeError(f"tables with member_id not covered by the export: {sorted(missing)}")
    out: dict[str, Any] = {"profile": profile}
    for name, section in EXPORTED.items():
        table = tables[name]
        order = list(table.primary_key.columns)
        rows = session.execute(select(table).where(table.c.member_id == member_id).order_by(*order)).mappings()
        out[section] = [{k: _plain(v) for k, v in row.items()} for row in rows]
    return out


def _record(row: MemberDeletion) -> dict[str, Any]:
    return {"member_id": row.member_id, "erased_at": row.erased_at, "erased_by": row.erased_by,
            **json.loads(row.erased)}


def erase(session: Session, member_id: int, now: datetime) -> tuple[dict[str, Any], bool]:
    """Erase the member's personal data (see the module); return (the deletion record, replayed).

    Locks the member's row first, so two concurrent erasures queue and the second answers the first record.
    The caller revokes the tokens (``auth.revoke_member_tokens``) after the commit.
    """
    member = session.scalar(select(Member).where(Member.id == member_id).with_for_update())
    if member is None:
        members.get(session, member_id)  # NotFound, as every member endpoint answers
    assert member is not None
    done = session.scalar(select(MemberDeletion).where(MemberDeletion.member_id == member_id))
    if done is not None:
        return _record(done), True
    cleared = [name for name in ("unionid", "nickname", "phone", "birthday", "tier")
               if getattr(member, name) is not None] + ["openid", "referral_code"]
    if member.gender != "unknown":
        cleared.append("gender")
    member.openid = f"{TOMBSTONE}{member.id}"
    member.referral_code = f"0{member.id:07x}"[-8:]
    member.unionid = member.nickname = member.phone = member.phone_last4 = member.birthday = member.tier = None
    member.gender = "unknown"
    tables = member_tables()
    deleted: dict[str, int] = {}
    ids = select(notifications.Notification.id).where(notifications.Notification.member_id == member_id)
    deleted["deliveries"] = session.execute(
        delete(notifications.Delivery).where(notifications.Delivery.notification_id.in_(ids))).rowcount
    for name in ERASED:
        table = tables[name]
        deleted[name] = session.execute(delete(table).where(table.c.member_id == member_id)).rowcount
    row = MemberDeletion(member_id=member_id, erased_at=now, erased_by="member",
                         erased=json.dumps({"fields": sorted(cleared), "deleted": deleted}))
    session.add(row)
    session.flush()
    return _record(row), False

