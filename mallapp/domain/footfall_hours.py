"""Footfall and dwell per zone and mall-local hour of the day over a period (the footfall heat maps).

Reads the hourly rollup ``zone_hours`` (kept beside each zone visit by ``history.record_zone_visit``: visits
begun in a zone in a UTC hour, and their dwell), so a month is zones × 720 rows whatever the mall's traffic.
A visit counts in the hour it began; the period's bounds are taken at whole hours (a period that starts or
ends mid-hour counts that hour whole). UTC hours become mall-local hours of the day by the zone's offset,
exact for zones whose offset is a whole number of hours (Asia/Shanghai). Zones as in
``venue_admin.footfall``: every active zone (of the floor, if given), and inactive ones that had visits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mallapp.domain.proximity.history import ZoneHour
from mallapp.domain.venue import Zone
from mallapp.settings import Settings

HOURS = 24


@dataclass(frozen=True)
class ZoneHours:
    zone: Zone
    visits: list[int]          # per local hour 0..23
    dwell_seconds: list[int]   # total dwell of those visits, per hour (mean = dwell / visits)


def by_hour(session: Session, settings: Settings, since: datetime, until: datetime,
            floor: int | None = None) -> list[ZoneHours]:
    """Visits and total dwell per zone and local hour, for visits that began in [since, until) (whole hours)."""
    start = since.replace(minute=0, second=0, microsecond=0)
    where = [ZoneHour.hour_start >= start, ZoneHour.hour_start < until]
    if floor is not None:
        where.append(ZoneHour.zone_id.in_(select(Zone.id).where(Zone.floor == floor)))
    stats: dict[int, tuple[list[int], list[int]]] = {}
    tz = settings.mall.tz
    for zone_id, hour_start, visits, dwell in session.execute(
            select(ZoneHour.zone_id, ZoneHour.hour_start, ZoneHour.visits, ZoneHour.dwell_seconds).where(*where)):
        hour = hour_start.astimezone(tz).hour
        counts, dwells = stats.setdefault(zone_id, ([0] * HOURS, [0] * HOURS))
        counts[hour] += int(visits)
        dwells[hour] += int(dwell)
    zones = select(Zone).where(or_(Zone.active, Zone.id.in_(list(stats))))
    if floor is not None:
        zones = zones.where(Zone.floor == floor)
    return [ZoneHours(z, *stats.get(z.id, ([0] * HOURS, [0] * HOURS))) for z in session.scalars(zones.order_by(Zone.id))]

