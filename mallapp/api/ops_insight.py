"""What operations watches day to day (docs/consoles.md, "Operations: dashboard, reports, footfall"):
the dashboard's figures for a day, and footfall and dwell per zone and hour of the day.

Both are aggregates (no member named): any ops user.
"""

from __future__ import annotations

from datetime import date, datetime

from flask import Blueprint
from pydantic import Field

from mallapp.api.core import Out, Query, operation, runtime, transaction
from mallapp.api.ops import Floor, FootfallQuery
from mallapp.api.reports import Day
from mallapp.domain import dashboard, footfall_hours, venue_admin

bp = Blueprint("ops_insight", __name__, url_prefix="/api/v1/ops")


class DashboardQuery(Query):
    day: Day | None = Field(default=None, description="YYYY-MM-DD, mall-local; default: today")


class FootfallHoursOut(Out):
    hours: list[int] = Field(description="mall visits begun in each mall-local hour, 0 to 23")
    total: int


class DashboardOut(Out):
    day: date = Field(description="the mall-local day of the figures")
    compared_day: date = Field(description="the same weekday a week before")
    footfall: FootfallHoursOut = Field(description="the day's mall visits (a stay counts when it has ended)")
    footfall_compared: FootfallHoursOut = Field(description="the same for compared_day")
    in_mall_now: int = Field(description="members in the mall now (live presence, whatever the day asked)")
    new_members: int
    checkins: int
    purchases: int
    sales_fen: int = Field(description="the day's purchases as recorded; later refunds are not taken off")
    points_issued: int = Field(description="every credit to a points account that day")
    points_redeemed: int = Field(description="points spent on gifts, parking and coupons that day")


def _hours(counts: list[int]) -> FootfallHoursOut:
    return FootfallHoursOut(hours=counts, total=sum(counts))


@operation(bp, "/dashboard", "GET", summary="A day's figures: footfall by hour against the same weekday last week, "
                                            "members in the mall now, new members, check-ins, sales, points",
           auth="ops", query=DashboardQuery, response=DashboardOut)
def get_dashboard(query: DashboardQuery) -> DashboardOut:
    rt = runtime()
    day = query.day or rt.settings.mall.local_day(rt.now())
    compared = dashboard.same_weekday_last_week(day)
    with transaction() as session:
        figures = dashboard.figures(session, rt.settings, day)
        before = dashboard.footfall_by_hour(session, rt.settings, compared)
        in_mall, _ = venue_admin.presence(session, rt.redis)
    return DashboardOut(day=day, compared_day=compared, footfall=_hours(figures.footfall_by_hour),
                        footfall_compared=_hours(before), in_mall_now=in_mall, new_members=figures.new_members,
                        checkins=figures.checkins, purchases=figures.purchases, sales_fen=figures.sales_fen,
                        points_issued=figures.points_issued, points_redeemed=figures.points_redeemed)


class FootfallHoursQuery(FootfallQuery):
    floor: Floor | None = Field(default=None, description="only this floor's zones")


class ZoneHoursOut(Out):
    zone_id: int
    name: str
    kind: str
    floor: int
    visits: list[int] = Field(description="visits begun in each mall-local hour, 0 to 23")
    dwell_seconds: list[int] = Field(description="their total dwell per hour (mean = dwell / visits)")


class FootfallByHourOut(Out):
    since: datetime
    until: datetime
    zones: list[ZoneHoursOut]


@operation(bp, "/footfall/hours", "GET",
           summary="Visits and dwell per zone and mall-local hour of the day over a period (heat maps)",
           auth="ops", query=FootfallHoursQuery, response=FootfallByHourOut, errors=("footfall.invalid_range",))
def get_footfall_hours(query: FootfallHoursQuery) -> FootfallByHourOut:
    rt = runtime()
    since, until = venue_admin.footfall_period(rt.settings.mall.tz, rt.now(), *query.period(rt.settings.mall.tz))
    with transaction() as session:
        rows = footfall_hours.by_hour(session, rt.settings, since, until, query.floor)
        return FootfallByHourOut(since=since, until=until, zones=[
            ZoneHoursOut(zone_id=r.zone.id, name=r.zone.name, kind=r.zone.kind, floor=r.zone.floor, visits=r.visits,
                         dwell_seconds=r.dwell_seconds) for r in rows])
