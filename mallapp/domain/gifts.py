"""Gift redemptions: members spend points on items from the configured catalogue."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime
from mallapp.domain import points
from mallapp.domain.points import BigId
from mallapp.errors import Conflict, NotFound
from mallapp.settings import Settings


class GiftRedemption(Base):
    __tablename__ = "gift_redemptions"
    __table_args__ = (UniqueConstraint("member_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    gift_code: Mapped[str] = mapped_column(String(40))
    quantity: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(Integer)
    entry_id: Mapped[int] = mapped_column(ForeignKey("points_entries.id"))
    # What the member shows at the service desk to collect the gift.
    pickup_code: Mapped[str] = mapped_column(String(12), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


def redeem_gift(session: Session, settings: Settings, member_id: int, *, gift_code: str, quantity: int,
                idempotency_key: str, now: datetime) -> tuple[GiftRedemption, bool]:
    """Spend points on a catalogue gift; return (redemption, replayed)."""
    gift = settings.gift(gift_code)
    if gift is None:
        raise NotFound(f"no gift {gift_code!r} in the catalogue", code="gift.not_found")
    cost = gift.points * quantity
    posted = points.redeem(session, member_id, cost, source_ref=f"gift:{gift.code}",
                           idempotency_key=f"gift:{member_id}:{idempotency_key}", now=now,
                           note=f"{quantity} x {gift.name}")
    if posted.replayed:
        done = session.scalar(select(GiftRedemption).where(GiftRedemption.member_id == member_id,
                                                           GiftRedemption.idempotency_key == idempotency_key))
        if done is None or done.gift_code != gift.code or done.quantity != quantity:
            raise Conflict("this idempotency key was used for a different redemption",
                           code="points.idempotency_mismatch")
        return done, True
    redemption = GiftRedemption(member_id=member_id, gift_code=gift.code, quantity=quantity, points=cost,
                                entry_id=posted.entry.id, pickup_code=secrets.token_hex(5).upper(),
                                idempotency_key=idempotency_key, created_at=now)
    session.add(redemption)
    session.flush()
    return redemption, False
