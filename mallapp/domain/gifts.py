"""Gift redemptions: members spend points on items from the configured catalogue."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime
from mallapp.domain import points
from mallapp.domain.ops import OpsUser
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
    # Set once by the service desk (mallapp.domain.desk.hand_over): when, by which ops user, and the desk's
    # request id, so that the same desk's retry answers the first hand-over again.
    handed_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    handed_over_by: Mapped[int | None] = mapped_column(ForeignKey("ops_users.id"))
    handover_request_id: Mapped[str | None] = mapped_column(String(64))


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


# --- the service desk ------------------------------------------------------------------------------

def normalize_pickup_code(text: str) -> str:
    """A pick-up code as the desk typed it, in canonical form: upper case, without spaces or dashes."""
    return text.replace("-", "").replace(" ", "").upper()


def by_pickup_code(session: Session, pickup_code: str, *, lock: bool = False) -> GiftRedemption:
    """The redemption a member shows at the desk, or NotFound."""
    query = select(GiftRedemption).where(GiftRedemption.pickup_code == normalize_pickup_code(pickup_code))
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    redemption = session.scalar(query)
    if redemption is None:
        raise NotFound("no gift redemption with this pick-up code", code="gift.pickup_not_found")
    return redemption


def handed_over_by(session: Session, redemption: GiftRedemption) -> str | None:
    """The username of the ops user who handed the gift over, or None."""
    if redemption.handed_over_by is None:
        return None
    return session.scalar(select(OpsUser.username).where(OpsUser.id == redemption.handed_over_by))


def hand_over(session: Session, pickup_code: str, *, ops_user_id: int, request_id: str,
              now: datetime) -> tuple[GiftRedemption, bool]:
    """Mark the gift handed over, once; return (redemption, replayed).

    The same desk's retry (same ops user, same request id) answers the first hand-over; any other
    attempt after it is refused with when and by whom, so a gift is never handed over twice.
    """
    redemption = by_pickup_code(session, pickup_code, lock=True)
    if redemption.handed_over_at is not None:
        if (redemption.handed_over_by, redemption.handover_request_id) == (ops_user_id, request_id):
            return redemption, True
        raise Conflict("this gift has already been handed over", code="gift.already_handed_over",
                       details={"handed_over_at": redemption.handed_over_at.isoformat(),
                                "handed_over_by": redemption.handed_over_by,
                                "handed_over_by_username": handed_over_by(session, redemption)})
    redemption.handed_over_at, redemption.handed_over_by = now, ops_user_id
    redemption.handover_request_id = request_id
    session.flush()
    return redemption, False
