"""Daily check-in (签到): once per member per calendar day in the mall's time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from geopy.distance import geodesic
from sqlalchemy import Date, ForeignKey, Index, Integer, String, UniqueConstraint, bindparam, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime, insert_or_nothing
from mallapp.domain import points
from mallapp.errors import Conflict, InvalidInput, RuleViolation
from mallapp.settings import Settings


class Checkin(Base):
    __tablename__ = "checkins"
    __table_args__ = (UniqueConstraint("member_id", "day"),
                      Index("ix_checkins_day", "day"))  # a day's check-ins (the ops dashboard)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    day: Mapped[date] = mapped_column(Date)
    streak: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(Integer)
    # How the member checked in: "app" (the button), later "beacon" or "geofence" (automatic).
    method: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class CheckedIn:
    """A check-in that was just recorded, with the member's balance after its award."""

    id: int
    day: date
    streak: int
    points: int
    method: str
    balance: int


@dataclass(frozen=True)
class Position:
    latitude: float
    longitude: float


def streak_bonus(settings: Settings, streak: int) -> int:
    """The bonus for reaching ``streak`` consecutive days (0 on ordinary days)."""
    return settings.checkin.streak_bonus.get(streak, 0)


def distance_to_mall_m(settings: Settings, position: Position) -> float:
    mall = settings.mall
    return geodesic((mall.latitude, mall.longitude), (position.latitude, position.longitude)).meters


# Built once: runs on every check-in.
_LAST_CHECKIN = (select(Checkin.day, Checkin.streak)
                 .where(Checkin.member_id == bindparam("member"), Checkin.day < bindparam("today"))
                 .order_by(Checkin.day.desc()).limit(1))


def check_in(session: Session, settings: Settings, member_id: int, *, now: datetime,
             position: Position | None = None, method: str = "app") -> CheckedIn:
    """Check the member in for today and award the day's points, or raise ``checkin.already_today``.

    ``checkin_requires_location`` applies to the button (method "app"): an automatic check-in
    ("beacon") is itself evidence of presence, and the proximity engine already refuses sightings
    whose batch carried a position outside the geofence.
    """
    if settings.mall.checkin_requires_location and method == "app":
        if position is None:
            raise InvalidInput("this mall checks you in only with your location (latitude, longitude)",
                               code="checkin.location_required")
        distance = distance_to_mall_m(settings, position)
        if distance > settings.mall.radius_m:
            raise RuleViolation(
                f"you are {distance:.0f} m from {settings.mall.name}; check in within {settings.mall.radius_m:.0f} m",
                code="checkin.too_far",
                details={"distance_m": round(distance, 1), "radius_m": settings.mall.radius_m})
    today = now.astimezone(settings.mall.tz).date()
    previous = session.execute(_LAST_CHECKIN, {"member": member_id, "today": today}).first()
    streak = previous.streak + 1 if previous is not None and previous.day == today - timedelta(days=1) else 1
    award = settings.checkin.points + streak_bonus(settings, streak)
    values = dict(member_id=member_id, day=today, streak=streak, points=award, method=method, created_at=now)
    # The unique (member, day) row is the guard: of any number of concurrent check-ins, one inserts.
    checkin_id = insert_or_nothing(session, Checkin, values, ["member_id", "day"])
    if checkin_id is None:
        raise Conflict("you have already checked in today", code="checkin.already_today")
    posted = points.credit(session, settings, member_id, award, "checkin", source_ref=f"checkin:{checkin_id}",
                           idempotency_key=f"checkin:{member_id}:{today.isoformat()}", now=now)
    return CheckedIn(id=checkin_id, day=today, streak=streak, points=award, method=method, balance=posted.balance)


def today_checkin(session: Session, settings: Settings, member_id: int, now: datetime) -> Checkin | None:
    today = now.astimezone(settings.mall.tz).date()
    return session.scalar(select(Checkin).where(Checkin.member_id == member_id, Checkin.day == today))
