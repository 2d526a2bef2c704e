"""The operations dashboard: one mall-local day's figures (footfall by hour, new members, check-ins, sales,
points issued and redeemed), each read by an indexed range over the day's UTC bounds.

Footfall is the mall's own presence history: ``mall_visits`` (a member's stay in the mall, written when it
ends), counted in the local hour the stay began. Members in the mall *now* are live presence, not history:
the API reads them from ``venue_admin.presence`` beside these figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.orm import Session

from mallapp.domain.checkin import Checkin
from mallapp.domain.members import Member
from mallapp.domain.points import PointsEntry
from mallapp.domain.proximity.history import MallVisit
from mallapp.domain.purchases import Purchase
from mallapp.settings import Settings

HOURS = 24


@dataclass(frozen=True)
class DayFigures:
    day: date
    footfall_by_hour: list[int]     # mall visits begun in each local hour 0..23
    new_members: int
    checkins: int
    purchases: int
    sales_fen: int                  # the day's purchases as recorded (refunds made later are not taken off)
    points_issued: int              # every credit to a points account that day
    points_redeemed: int            # redemptions (gifts, parking, coupons), not expiry nor reversals


def local_hour(session: Session, settings: Settings, column: Any, at: datetime) -> Any:
    """The mall-local hour (0..23) of a naive-UTC column as SQL. SQLite has no zone data: it shifts by the
    zone's offset at ``at`` (exact for zones without summer time, such as Asia/Shanghai)."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.extract("hour", func.timezone(settings.mall.timezone, func.timezone("UTC", column))),
                    Integer)
    minutes = int(at.astimezone(settings.mall.tz).utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    return cast(func.strftime("%H", func.datetime(column, f"{minutes:+d} minutes")), Integer)


def footfall_by_hour(session: Session, settings: Settings, day: date) -> list[int]:
    """Mall visits that began on the mall-local ``day``, per local hour (24 counts)."""
    start, end = settings.mall.day_bounds(day)
    inner = (select(local_hour(session, settings, MallVisit.entered_at, start).label("hour"))
             .where(MallVisit.entered_at >= start, MallVisit.entered_at < end).subquery())
    counts = [0] * HOURS
    # Grouped outside the subquery: PostgreSQL will not match a GROUP BY expression holding a parameter.
    for hour, n in session.execute(select(inner.c.hour, func.count()).group_by(inner.c.hour)):
        if hour is not None and 0 <= int(hour) < HOURS:
            counts[int(hour)] += int(n)
    return counts


def figures(session: Session, settings: Settings, day: date) -> DayFigures:
    """The dashboard's figures for the mall-local ``day``."""
    start, end = settings.mall.day_bounds(day)
    new_members = session.scalar(select(func.count()).select_from(Member)
                                 .where(Member.created_at >= start, Member.created_at < end))
    checkins = session.scalar(select(func.count()).select_from(Checkin).where(Checkin.day == day))
    purchases, sales = session.execute(
        select(func.count(), func.coalesce(func.sum(Purchase.amount_fen), 0))
        .where(Purchase.occurred_at >= start, Purchase.occurred_at < end)).one()
    in_day = (PointsEntry.created_at >= start, PointsEntry.created_at < end)
    issued = session.scalar(select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(*in_day, PointsEntry.delta > 0))
    redeemed = session.scalar(select(func.coalesce(-func.sum(PointsEntry.delta), 0))
                              .where(*in_day, PointsEntry.reason == "redemption"))
    return DayFigures(day=day, footfall_by_hour=footfall_by_hour(session, settings, day),
                      new_members=int(new_members or 0), checkins=int(checkins or 0), purchases=int(purchases),
                      sales_fen=int(sales), points_issued=int(issued or 0), points_redeemed=int(redeemed or 0))


def same_weekday_last_week(day: date) -> date:
    return day - timedelta(days=7)
