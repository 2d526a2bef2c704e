"""Members' plates: bind, list, unbind. A plate is bound to one member at a time.

The partial unique index on ``plate_bindings.plate`` (``unbound_at IS NULL``) is the last word: two
members binding the same plate at once, one of them gets ``parking.plate_taken``. The refusal never
says who holds the plate.

Borrowing a tier: a top-tier member could bind a friend's plate for a visit, unbind it, and bind the
next friend's, so that every car parks on their tier. Two settings of ``[parking]`` make that slow:

- ``plate_cooldown_hours``: a plate its member unbound cannot be bound by *another* member for this
  long (its owner may take it back at once), so a plate cannot hop between members within a day;
- ``plate_binds_per_30_days``: a member adds at most this many new bindings in any 30 days (binding
  a plate already held is not a new binding), enough to set up the cars a tier allows and change one
  or two, not to bind a new car every visit.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mallapp.domain.members import Member
from mallapp.domain.parking import plates
from mallapp.domain.parking.models import PlateBinding
from mallapp.errors import Conflict, NotFound, RuleViolation
from mallapp.settings import ParkingSettings

CHANGES_WINDOW = timedelta(days=30)


def active_for_plate(session: Session, plate: str) -> PlateBinding | None:
    """The binding that holds a normalised plate now, if any."""
    return session.scalar(select(PlateBinding).where(PlateBinding.plate == plate, PlateBinding.unbound_at.is_(None)))


def member_plates(session: Session, member_id: int) -> list[PlateBinding]:
    return list(session.scalars(select(PlateBinding).where(PlateBinding.member_id == member_id,
                                                           PlateBinding.unbound_at.is_(None))
                                .order_by(PlateBinding.bound_at, PlateBinding.id)))


def limit_for(cfg: ParkingSettings, tier: str | None) -> int:
    """How many plates a member of ``tier`` may hold at once."""
    return cfg.plates_by_tier.get(tier or "", cfg.plates_default)


def _taken() -> Conflict:
    return Conflict("This plate is bound to another member. If it is your car, ask the service desk.",
                    code="parking.plate_taken")


def bind(session: Session, member_id: int, text: str, *, vehicle_type: str | None, cfg: ParkingSettings,
         now: datetime) -> tuple[PlateBinding, bool]:
    """Bind a plate to the member; returns (binding, created). Binding a plate the member holds is a no-op."""
    plate = plates.normalize(text)
    # The member's row, locked: two binds of one member at once are counted one after the other.
    member = session.get(Member, member_id, with_for_update=True)
    if member is None:
        raise NotFound("No such member.", code="member.not_found")
    held = active_for_plate(session, plate)
    if held is not None:
        if held.member_id != member_id:
            raise _taken()
        return held, False
    limit = limit_for(cfg, member.tier)
    count = session.scalar(select(func.count()).select_from(PlateBinding).where(
        PlateBinding.member_id == member_id, PlateBinding.unbound_at.is_(None))) or 0
    if count >= limit:
        raise RuleViolation(f"You may bind {limit} plate(s) at your tier; unbind one first.",
                            code="parking.plate_limit", details={"limit": limit, "bound": count})
    cooling = session.scalar(select(func.max(PlateBinding.unbound_at)).where(
        PlateBinding.plate == plate, PlateBinding.member_id != member_id,
        PlateBinding.unbound_at > now - timedelta(hours=cfg.plate_cooldown_hours)))
    if cooling is not None:
        raise RuleViolation("This plate was unbound recently by another member; it can be bound again later.",
                            code="parking.plate_cooling_down",
                            details={"hours": cfg.plate_cooldown_hours})
    recent = session.scalar(select(func.count()).select_from(PlateBinding).where(
        PlateBinding.member_id == member_id, PlateBinding.bound_at > now - CHANGES_WINDOW)) or 0
    if recent >= cfg.plate_binds_per_30_days:
        raise RuleViolation(f"At most {cfg.plate_binds_per_30_days} new plates in 30 days; try again later.",
                            code="parking.plate_changes_exhausted",
                            details={"limit": cfg.plate_binds_per_30_days, "days": CHANGES_WINDOW.days})
    row = PlateBinding(member_id=member_id, plate=plate, vehicle_type=vehicle_type or plates.vehicle_type(plate),
                       bound_at=now, unbound_at=None)
    session.flush()
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        # Another member bound it between our read and our insert.
        raise _taken() from None
    return row, True


def unbind(session: Session, member_id: int, text: str, now: datetime) -> PlateBinding:
    plate = plates.normalize(text)
    row = session.scalar(select(PlateBinding).where(PlateBinding.member_id == member_id, PlateBinding.plate == plate,
                                                    PlateBinding.unbound_at.is_(None)).with_for_update())
    if row is None:
        raise NotFound("You have not bound this plate.", code="parking.plate_not_bound")
    row.unbound_at = now
    return row
