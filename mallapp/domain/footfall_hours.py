"""Footfall and dwell per zone and mall-local hour of the day over a period (the footfall heat maps).

Reads ``zone_visits`` (written when a stay in a zone ends) by an indexed range on ``entered_at``; a visit
counts in the local hour it began. Zones as in ``venue_admin.footfall``: every active zone (of the floor, if
given), and inactive ones that had visits in the period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from mallapp.domain.dashboard import HOURS, local_hour
from mallapp.domain.proximity.history import ZoneVisit
from mallapp.domain.venue import Zone
from mallapp.settings import Settings


@dataclass(frozen=True)
class ZoneHours:
    zone: Zone
    visits: list[int]          # per local hour 0..23
    dwell_seconds: list[int]   # total dwell of those visits, per hour (mean = dwell / visits)


def by_hour(session: Session, settings: Settings, since: datetime, until: datetime,
            floor: int | None = None) -> list[ZoneHours]:
    """Visits and total dwell per zone and local hour, for visits that began in [since, until)."""
    where = [ZoneVisit.entered_at >= since, ZoneVisit.entered_at < until]
    if floor is not None:
        where.append(ZoneVisit.zone_id.in_(select(Zone.id).where(Zone.floor == floor)))
    inner = (select(ZoneVisit.zone_id, local_hour(session, settings, ZoneVisit.entered_at, since).label("hour"),
                    ZoneVisit.dwell_seconds).where(*where).subquery())
    stats: dict[int, tuple[list[int], list[int]]] = {}
    for zone_id, hour, n, dwell in session.execute(
            select(inner.c.zone_id, inner.c.hour, func.count(), func.coalesce(func.sum(inner.c.dwell_seconds), 0))
            .group_by(inner.c.zone_id, inner.c.hour)):
        visits, dwells = stats.setdefault(zone_id, ([0] * HOURS, [0] * HOURS))
        if hour is not None and 0 <= int(hour) < HOURS:
            visits[int(hour)] += int(n)
            dwells[int(hour)] += int(dwell)
    zones = select(Zone).where(or_(Zone.active, Zone.id.in_(list(stats))))
    if floor is not None:
        zones = zones.where(Zone.floor == floor)
    return [ZoneHours(z, *stats.get(z.id, ([0] * HOURS, [0] * HOURS))) for z in session.scalars(zones.order_by(Zone.id))]
