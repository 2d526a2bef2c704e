"""The member reports for the ops consoles (docs/member-reports.md).

Aggregates (counts and shares, no member named): any ops user. Lists of members (not bought lately,
lost): admin and marketing (``ops_marketing``); phone numbers masked unless the caller's role sees them.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from flask import Blueprint
from pydantic import BeforeValidator, Field

from mallapp.api.core import Out, Query, current_ops, operation, runtime, transaction
from mallapp.domain import member_lists, member_reports, members
from mallapp.domain.member_lists import Listed, Page
from mallapp.domain.member_reports import Report

bp = Blueprint("reports", __name__, url_prefix="/api/v1/ops/reports")
NOT_COMPUTED = ("reports.not_computed",)


def _plain(pattern: str, what: str) -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, str) and not re.fullmatch(pattern, value):
            raise ValueError(f"{what}")
        return value
    return check


def _first_of(value: Any) -> Any:
    return f"{value}-01" if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}", value) else value


Month = Annotated[date, BeforeValidator(_first_of), BeforeValidator(_plain(r"\d{4}-\d{2}", "a month is YYYY-MM")),
                  Field(ge=date(2000, 1, 1), le=date(2999, 12, 1))]
Day = Annotated[date, BeforeValidator(_plain(r"\d{4}-\d{2}-\d{2}", "a day is YYYY-MM-DD")),
                Field(ge=date(2000, 1, 1), le=date(2999, 12, 31))]


class MonthQuery(Query):
    month: Month | None = Field(default=None, description="YYYY-MM; default: the latest month computed")


class _Report(Out):
    month: date = Field(description="the mall-local month the report is for (its first day)")
    as_of: date = Field(description="the mall-local day of the run that computed it")
    computed_at: datetime


def _head(report: Report) -> dict[str, Any]:
    return {"month": report.month, "as_of": report.as_of, "computed_at": report.computed_at}


def _read(kind: str, query: MonthQuery) -> Report:
    with transaction() as session:
        return member_reports.read(session, kind, query.month)


# --- new members -----------------------------------------------------------------------------------

class NewMembersQuery(Query):
    period: Literal["day", "week", "month"] = "day"
    since: Day | None = Field(default=None, description="first mall-local day; default: 30 days, 26 weeks or "
                                                        "12 months back from until")
    until: Day | None = Field(default=None, description="last mall-local day (included); default: today")


class PeriodCount(Out):
    start: date = Field(description="the period's first day (a week starts on Monday)")
    members: int


class NewMembersOut(Out):
    period: Literal["day", "week", "month"]
    periods: list[PeriodCount]
    total: int


@operation(bp, "/new-members", "GET", summary="New members per day, week or month", auth="ops",
           query=NewMembersQuery, response=NewMembersOut, errors=("reports.invalid_range",))
def get_new_members(query: NewMembersQuery) -> NewMembersOut:
    rt = runtime()
    with transaction() as session:
        rows = member_reports.new_members(session, rt.settings, rt.now(), period=query.period, since=query.since,
                                          until=query.until)
    return NewMembersOut(period=query.period, periods=[PeriodCount(start=d, members=n) for d, n in rows],
                         total=sum(n for _, n in rows))


# --- cohorts ---------------------------------------------------------------------------------------

class CohortOut(Out):
    month: date = Field(description="the month the cohort's members joined")
    members: int
    active_after: list[int | None] = Field(description="members active 1, 2, … retention_months months later "
                                                       "(null: that month is not over)")
    remaining: int | None = Field(description="active retention_months months later")
    share: float | None = Field(description="remaining / members")


class CohortsOut(_Report):
    retention_months: int
    cohorts: list[CohortOut]


@operation(bp, "/cohorts", "GET", summary="Of each month's new members, how many remain active months later",
           auth="ops", query=MonthQuery, response=CohortsOut, errors=NOT_COMPUTED)
def get_cohorts(query: MonthQuery) -> CohortsOut:
    report = _read("cohorts", query)
    return CohortsOut(**_head(report), **report.body)


# --- thresholds ------------------------------------------------------------------------------------

class FrequentOut(Out):
    threshold_visits: int
    members: int
    share_of_members: float | None
    share_of_visiting: float | None


class BigSpendersOut(Out):
    threshold_fen: int
    members: int
    share_of_members: float | None
    share_of_buying: float | None
    spend_fen: int
    share_of_spend: float | None


class ThresholdsOut(_Report):
    members: int = Field(description="members with a snapshot this month")
    visiting_members: int = Field(description="of them, with at least one visit in the window")
    buying_members: int = Field(description="of them, with at least one purchase in the window")
    frequent_visitors: FrequentOut
    big_spenders: BigSpendersOut


@operation(bp, "/frequent-visitors-and-big-spenders", "GET",
           summary="Members with more than N visits, and spending more than N yuan, in the window; their shares",
           auth="ops", query=MonthQuery, response=ThresholdsOut, errors=NOT_COMPUTED)
def get_thresholds(query: MonthQuery) -> ThresholdsOut:
    report = _read("thresholds", query)
    return ThresholdsOut(**_head(report), **report.body)


# --- segments --------------------------------------------------------------------------------------

class GroupOut(Out):
    key: str = Field(description='the level, tier or segment; "none" for members it does not place')
    members: int
    spend_fen: int
    share_of_spend: float | None


class ValuableShareOut(_Report):
    spend_fen: int
    top_20_spend_fen: int = Field(description="spend of the pyramid's VIP, major and ordinary members")
    top_20_share: float | None
    t1_t2_share: float | None
    pyramid: list[GroupOut]
    t_tiers: list[GroupOut]


@operation(bp, "/valuable-share", "GET", summary="The share of sales from the valuable tiers (the 80/20 rule)",
           auth="ops", query=MonthQuery, response=ValuableShareOut, errors=NOT_COMPUTED)
def get_valuable_share(query: MonthQuery) -> ValuableShareOut:
    report = _read("valuable_share", query)
    return ValuableShareOut(**_head(report), **report.body)


class TTiersOut(_Report):
    previous_month: date | None
    counts: dict[str, int] = Field(description='members per T-tier, and "none"')
    transitions: dict[str, dict[str, int]] | None = Field(
        description="members by last month's tier (outer key) and this month's (inner); null without a previous month")


@operation(bp, "/t-tiers", "GET", summary="Members per T-tier and the month-to-month transition matrix",
           auth="ops", query=MonthQuery, response=TTiersOut, errors=NOT_COMPUTED)
def get_t_tiers(query: MonthQuery) -> TTiersOut:
    report = _read("t_tiers", query)
    return TTiersOut(**_head(report), **report.body)


class FlowOut(Out):
    from_state: str | None
    to_state: str
    cause: str
    members: int


class LifecycleOut(_Report):
    counts: dict[str, int]
    flows: list[FlowOut] = Field(description="the month's recorded transitions, by states and cause")


@operation(bp, "/lifecycle", "GET", summary="Members per lifecycle state and the month's flows between states",
           auth="ops", query=MonthQuery, response=LifecycleOut, errors=NOT_COMPUTED)
def get_lifecycle(query: MonthQuery) -> LifecycleOut:
    report = _read("lifecycle", query)
    return LifecycleOut(**_head(report), **report.body)


class RfmOut(_Report):
    segments: list[GroupOut]


@operation(bp, "/rfm", "GET", summary="Members and spend per RFM segment", auth="ops", query=MonthQuery,
           response=RfmOut, errors=NOT_COMPUTED)
def get_rfm(query: MonthQuery) -> RfmOut:
    report = _read("rfm", query)
    return RfmOut(**_head(report), **report.body)


class BinOut(Out):
    from_fen: int
    to_fen: int | None = Field(description="excluded; null for the last, open bin")
    members: int


class LifetimeValueOut(_Report):
    members: int = Field(description="members with a lifetime value")
    total_fen: int
    mean_fen: int | None
    quantiles: dict[str, int] | None = Field(description="p10, p25, p50, p75, p90, p95, p99 (a member's value)")
    histogram: list[BinOut]


@operation(bp, "/lifetime-value", "GET", summary="The distribution of the members' lifetime value",
           auth="ops", query=MonthQuery, response=LifetimeValueOut, errors=NOT_COMPUTED)
def get_lifetime_value(query: MonthQuery) -> LifetimeValueOut:
    report = _read("lifetime_value", query)
    return LifetimeValueOut(**_head(report), **report.body)


# --- lists -----------------------------------------------------------------------------------------

class ListQuery(Query):
    limit: int = Field(default=50, ge=1, le=500)
    cursor: Annotated[str, Field(max_length=60)] | None = Field(default=None,
                                                                 description="next_cursor of the previous page")


class LapsedQuery(ListQuery):
    days: int | None = Field(default=None, ge=1, le=3650,
                             description="days since the last purchase; default [reports] lapsed_days")


class ListedOut(Out):
    member_id: int
    nickname: str | None
    phone: str | None = Field(description="masked (last four digits) unless the caller's role sees phone numbers")
    last_purchase_at: datetime | None
    t_tier: str | None
    pyramid: str | None
    lifecycle: str
    spend_fen: int = Field(description="spend in the segments' window")
    clv_fen: int | None


class MembersPageOut(Out):
    month: date = Field(description="the snapshot month the list reads")
    total: int
    members: list[ListedOut]
    next_cursor: str | None


def _page(page: Page) -> MembersPageOut:
    sees = current_ops().sees_phones

    def row(m: Listed) -> ListedOut:
        return ListedOut(member_id=m.member_id, nickname=m.nickname,
                         phone=m.phone if sees else members.masked_phone(m.phone),
                         last_purchase_at=m.last_purchase_at, t_tier=m.t_tier, pyramid=m.pyramid,
                         lifecycle=m.lifecycle, spend_fen=m.spend_fen, clv_fen=m.clv_fen)
    return MembersPageOut(month=page.month, total=page.total, members=[row(m) for m in page.members],
                          next_cursor=page.next_cursor)


@operation(bp, "/lapsed", "GET", summary="Members who have not bought for more than N days, latest first",
           auth="ops_marketing", query=LapsedQuery, response=MembersPageOut,
           errors=("reports.not_computed", "reports.invalid_cursor"))
def get_lapsed(query: LapsedQuery) -> MembersPageOut:
    rt = runtime()
    with transaction() as session:
        page = member_lists.lapsed(session, rt.now(), days=query.days or rt.settings.reports.lapsed_days,
                                     limit=query.limit, cursor=query.cursor)
    return _page(page)


@operation(bp, "/lost", "GET", summary="Lost members (no purchase for a year), by member id", auth="ops_marketing",
           query=ListQuery, response=MembersPageOut, errors=("reports.not_computed", "reports.invalid_cursor"))
def get_lost(query: ListQuery) -> MembersPageOut:
    with transaction() as session:
        page = member_lists.lost(session, limit=query.limit, cursor=query.cursor)
    return _page(page)
