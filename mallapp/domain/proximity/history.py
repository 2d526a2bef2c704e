"""What presence leaves behind: zone visits (footfall, dwell) and proximity events (for the deals issue).

Both are written by the worker under at-least-once delivery, so each row has a natural key
(member, zone, when the visit began) and a repeat is an ``insert_or_nothing`` that does nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, exists, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime, insert_or_nothing
from mallapp.domain.points import BigId


class ZoneVisit(Base):
    """A member's stay in a zone, written when it ends (exit after the unseen timeout)."""

    __tablename__ = "zone_visits"
    __table_args__ = (UniqueConstraint("member_id", "zone_id", "entered_at"),
                      # A store's zones over a period (mallapp.domain.merchant_desk.store_footfall).
                      Index("ix_zone_visits_zone_entered", "zone_id", "entered_at"),
                      # Footfall over a period (per zone: visits, members, dwell, by hour) from the index alone.
                      Index("ix_zone_visits_entered_at", "entered_at",
                            postgresql_include=["zone_id", "member_id", "dwell_seconds"]))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"))
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    exited_at: Mapped[datetime] = mapped_column(UTCDateTime)
    dwell_seconds: Mapped[int] = mapped_column(Integer)


class ZoneHour(Base):
    """Visits that began in a zone in one UTC hour, and their dwell: the footfall heat maps' rollup, kept
    beside each zone visit as it is recorded, so a month reads zones × 720 rows, not millions of visits.
    No member is named (a member's erasure leaves these counts, as it leaves every report's)."""

    __tablename__ = "zone_hours"
    __table_args__ = (Index("ix_zone_hours_hour_start", "hour_start"),)

    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"), primary_key=True)
    hour_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    visits: Mapped[int] = mapped_column(Integer)
    dwell_seconds: Mapped[int] = mapped_column(BigInteger)


class MallVisit(Base):
    """A member's stay in the mall as a whole (from the first consistent sighting to the exit timeout)."""

    __tablename__ = "mall_visits"
    __table_args__ = (UniqueConstraint("member_id", "entered_at"),
                      Index("ix_mall_visits_entered_at", "entered_at"))  # the mall's footfall by hour

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    exited_at: Mapped[datetime] = mapped_column(UTCDateTime)
    dwell_seconds: Mapped[int] = mapped_column(Integer)


class ProximityEvent(Base):
    """A member dwelt near a store or a sale item: the moment an offer may be relevant."""

    __tablename__ = "proximity_events"
    __table_args__ = (UniqueConstraint("member_id", "zone_id", "visit_started_at", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id"))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), nullable=True)
    sale_item_id: Mapped[int | None] = mapped_column(ForeignKey("sale_items.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(12))  # "dwell"
    visit_started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


def record_zone_visit(session: Session, member_id: int, zone_id: int, entered_at: datetime,
                      exited_at: datetime) -> int | None:
    """Record a finished zone visit; None when this visit was recorded already."""
    dwell = max(0, int((exited_at - entered_at).total_seconds()))
    made = insert_or_nothing(session, ZoneVisit, dict(member_id=member_id, zone_id=zone_id, entered_at=entered_at,
                                                      exited_at=exited_at, dwell_seconds=dwell),
                             ["member_id", "zone_id", "entered_at"])
    if made is not None:  # a repeat of a recorded visit adds nothing to the rollup either
        _add_to_hour(session, zone_id, entered_at, dwell)
    return made


def _add_to_hour(session: Session, zone_id: int, entered_at: datetime, dwell: int) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    hour = entered_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    stmt = insert(ZoneHour).values(zone_id=zone_id, hour_start=hour, visits=1, dwell_seconds=dwell)
    session.execute(stmt.on_conflict_do_update(
        index_elements=["zone_id", "hour_start"],
        set_={"visits": ZoneHour.visits + 1, "dwell_seconds": ZoneHour.dwell_seconds + dwell}))


def record_mall_visit(session: Session, member_id: int, entered_at: datetime, exited_at: datetime) -> int | None:
    dwell = max(0, int((exited_at - entered_at).total_seconds()))
    return insert_or_nothing(session, MallVisit, dict(member_id=member_id, entered_at=entered_at,
                                                      exited_at=exited_at, dwell_seconds=dwell),
                             ["member_id", "entered_at"])


def record_proximity_event(session: Session, member_id: int, zone_id: int, store_id: int | None,
                           sale_item_id: int | None, visit_started_at: datetime, at: datetime,
                           kind: str = "dwell") -> int | None:
    """Record that a member dwelt near a store or item; None when this visit's event exists already."""
    return insert_or_nothing(session, ProximityEvent,
                             dict(member_id=member_id, zone_id=zone_id, store_id=store_id,
                                  sale_item_id=sale_item_id, kind=kind, visit_started_at=visit_started_at, at=at),
                             ["member_id", "zone_id", "visit_started_at", "kind"])


def proximity_event_id(session: Session, member_id: int, zone_id: int, visit_started_at: datetime,
                       kind: str = "dwell") -> int | None:
    return session.scalar(select(ProximityEvent.id).where(
        ProximityEvent.member_id == member_id, ProximityEvent.zone_id == zone_id,
        ProximityEvent.visit_started_at == visit_started_at, ProximityEvent.kind == kind))


def footfall(session: Session, since: datetime, until: datetime) -> dict[int, tuple[int, int, float]]:
    """Per zone: visits that began in [since, until), distinct members, mean dwell in seconds."""
    rows = session.execute(
        select(ZoneVisit.zone_id, func.count(), func.count(ZoneVisit.member_id.distinct()),
               func.avg(ZoneVisit.dwell_seconds))
        .where(ZoneVisit.entered_at >= since, ZoneVisit.entered_at < until)
        .group_by(ZoneVisit.zone_id))
    return {zone: (int(visits), int(members), float(dwell or 0)) for zone, visits, members, dwell in rows}


def events_for(session: Session, member_id: int, limit: int = 50) -> list[ProximityEvent]:
    return list(session.scalars(select(ProximityEvent).where(ProximityEvent.member_id == member_id)
                                .order_by(ProximityEvent.id.desc()).limit(limit)))


# A stay whose exit was lost (its worker state went with a Redis data loss, or was replayed onto an
# older state) is taken as still going for this long after its dwell: longer than any one stay.
STAY_HORIZON = timedelta(hours=12)


def stay_goes_on(session: Session, member_id: int, zone_id: int, visit_started_at: datetime,
                 kind: str = "dwell") -> bool:
    """Whether an earlier stay of the member in the zone already had its event and never ended.

    Presence rebuilt from scratch (after Redis lost its data, or a replay onto an older state) starts
    the same stay again with a new start; the stay's event is not recorded twice. An earlier event's
    stay has ended when a zone visit entered at or after its start was recorded.
    """
    ended = exists().where(ZoneVisit.member_id == member_id, ZoneVisit.zone_id == zone_id,
                           ZoneVisit.entered_at >= ProximityEvent.visit_started_at)
    return session.scalar(select(exists().where(
        ProximityEvent.member_id == member_id, ProximityEvent.zone_id == zone_id, ProximityEvent.kind == kind,
        ProximityEvent.visit_started_at < visit_started_at,
        ProximityEvent.visit_started_at > visit_started_at - STAY_HORIZON, ~ended))) or False
