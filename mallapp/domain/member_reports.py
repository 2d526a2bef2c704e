"""The member reports: the questions the articles ask, answered as plain data for the consoles.

Aggregates are precomputed once a night by ``precompute`` (right after ``segments.run``) into
``member_reports`` (one row per month and report, its body JSON), so each answer is one primary-key
read whatever the number of members. The two lists of members (not bought lately, lost) are in
``member_lists``, read live. Definitions: docs/member-reports.md.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
from sqlalchemy import JSON, Date, Index, String, and_, delete, func, insert, select
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from mallapp.db import Base, UTCDateTime
from mallapp.domain.checkin import Checkin
from mallapp.domain.members import Member
from mallapp.domain.proximity.history import MallVisit
from mallapp.domain.purchases import Purchase
from mallapp.domain.segments import (
    LIFECYCLE_STATES,
    PYRAMID_LEVELS,
    RFM_SEGMENTS,
    T_TIERS,
    LifecycleTransition,
    MemberSnapshot,
)
from mallapp.errors import InvalidInput, NotFound
from mallapp.settings import Settings

KINDS = ("new_members", "cohorts", "thresholds", "valuable_share", "t_tiers", "lifecycle", "rfm", "lifetime_value")
PERIODS = ("day", "week", "month")
NONE = "none"  # a member without a T-tier (no purchase in the window) or without a snapshot last month
# The lifetime-value histogram's bin edges, in fen (yuan × 100); the last bin is open.
LTV_EDGES_FEN = (0, 10_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000)
LTV_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
MAX_DAYS = 3660


class MemberReport(Base):
    """One precomputed report for a mall-local month (first day), as of the run that wrote it."""

    __tablename__ = "member_reports"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(24), primary_key=True)
    as_of: Mapped[date] = mapped_column(Date)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)


# The live lists (member_lists) page through the month's snapshots by these (migration 0015); the live top-up of
# new members since the last precompute reads members by creation time.
Index("ix_member_snapshots_month_last_purchase", MemberSnapshot.month, MemberSnapshot.last_purchase_at,
      MemberSnapshot.member_id)
Index("ix_member_snapshots_month_lifecycle_member", MemberSnapshot.month, MemberSnapshot.lifecycle,
      MemberSnapshot.member_id)
Index("ix_members_created_at", Member.created_at)


# --- local time in SQL -----------------------------------------------------------------------------

def _local(session: Session, settings: Settings, column: Any, now: datetime) -> Any:
    """The mall-local wall time of a naive-UTC column. SQLite has no zone data: it uses the zone's offset
    at ``now`` (exact for zones without summer time, such as Asia/Shanghai)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.timezone(settings.mall.timezone, func.timezone("UTC", column))
    minutes = int(now.astimezone(settings.mall.tz).utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    return func.datetime(column, f"{minutes:+d} minutes")


def _month_sql(session: Session, local: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(local, "YYYY-MM")
    return func.strftime("%Y-%m", local)


def _day_sql(session: Session, local: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(local, "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", local)


def _month_of(value: str | date) -> date:
    return date.fromisoformat(f"{value}-01") if isinstance(value, str) else value.replace(day=1)


def add_months(month: date, n: int) -> date:
    y, m = divmod(month.year * 12 + month.month - 1 + n, 12)
    return date(y, m + 1, 1)


def month_of(settings: Settings, at: datetime) -> date:
    return settings.mall.local_day(at).replace(day=1)


# --- precompute ------------------------------------------------------------------------------------

def precompute(session: Session, settings: Settings, month: date, now: datetime) -> dict[str, dict[str, Any]]:
    """Compute and store every aggregate report for ``month`` (first day, mall-local) as of ``now``; return them.

    Reads the month's snapshots (and the previous month's for the T-tier movements); running it again
    replaces the month's rows.
    """
    month = month.replace(day=1)
    as_of = settings.mall.local_day(now)
    previous = session.scalar(select(func.max(MemberSnapshot.month)).where(MemberSnapshot.month < month))
    bodies = {
        "new_members": _new_member_days(session, settings, now),
        "cohorts": _cohorts(session, settings, month, now),
        "thresholds": _thresholds(session, settings, month),
        "valuable_share": _valuable_share(session, month),
        "t_tiers": _t_tiers(session, month, previous),
        "lifecycle": _lifecycle(session, month),
        "rfm": _rfm(session, month),
        "lifetime_value": _lifetime_value(session, month),
    }
    session.execute(delete(MemberReport).where(MemberReport.month == month))
    session.execute(insert(MemberReport), [dict(month=month, kind=kind, as_of=as_of, computed_at=now, body=body)
                                           for kind, body in bodies.items()])
    return bodies


def _new_member_days(session: Session, settings: Settings, now: datetime) -> dict[str, Any]:
    """New members per mall-local day, every day before today (today is counted live)."""
    today_start = settings.mall.day_bounds(settings.mall.local_day(now))[0]
    day = _day_sql(session, _local(session, settings, Member.created_at, now))
    rows = session.execute(select(day, func.count()).where(Member.created_at < today_start)
                           .group_by(day).order_by(day)).all()
    return {"until": settings.mall.local_day(now).isoformat(), "days": [[str(d), int(n)] for d, n in rows]}


def _cohorts(session: Session, settings: Settings, month: date, now: datetime) -> dict[str, Any]:
    """Of each month's new members, how many were active 1..N months later (N = retention_months)."""
    n_months, first = settings.reports.retention_months, add_months(month, 1 - settings.reports.cohorts)
    since = datetime.combine(first, time(), tzinfo=settings.mall.tz).astimezone(UTC)
    joined = _month_sql(session, _local(session, settings, Member.created_at, now))
    sizes = dict(session.execute(select(joined, func.count()).where(Member.created_at >= since)
                                 .group_by(joined)).all())
    cohort = select(Member.id).where(Member.created_at >= since)
    activity = [
        select(Purchase.member_id.label("member_id"),
               _month_sql(session, _local(session, settings, Purchase.occurred_at, now)).label("month"))
        .where(Purchase.occurred_at >= since, Purchase.member_id.in_(cohort)),
        select(MallVisit.member_id.label("member_id"),
               _month_sql(session, _local(session, settings, MallVisit.entered_at, now)).label("month"))
        .where(MallVisit.entered_at >= since, MallVisit.member_id.in_(cohort)),
        select(Checkin.member_id.label("member_id"), _month_sql(session, Checkin.day).label("month"))
        .where(Checkin.day >= first, Checkin.member_id.in_(cohort)),
    ]
    act = activity[0].union(*activity[1:]).subquery()  # UNION: one row per member and active month
    rows = session.execute(select(joined, act.c.month, func.count()).join(act, act.c.member_id == Member.id)
                           .where(Member.created_at >= since).group_by(joined, act.c.month)).all()
    active: dict[tuple[str, str], int] = {(str(j), str(m)): int(c) for j, m, c in rows}
    current = month_of(settings, now)
    cohorts = []
    for i in range(settings.reports.cohorts):
        start = add_months(first, i)
        key = start.strftime("%Y-%m")
        size = int(sizes.get(key, 0))
        remaining: list[int | None] = []
        for k in range(1, n_months + 1):
            later = add_months(start, k)
            # A month counts once it is over: a month under way would understate who remains.
            remaining.append(active.get((key, later.strftime("%Y-%m")), 0) if later < min(add_months(month, 1), current)
                             else None)
        last = remaining[-1]
        cohorts.append({"month": start.isoformat(), "members": size, "active_after": remaining,
                        "remaining": last, "share": None if last is None or not size else round(last / size, 4)})
    return {"retention_months": n_months, "cohorts": cohorts}


def _thresholds(session: Session, settings: Settings, month: date) -> dict[str, Any]:
    r, s = settings.reports, MemberSnapshot
    row = session.execute(select(
        func.count(), func.count().filter(s.visits > 0), func.count().filter(s.purchases > 0),
        func.count().filter(s.visits > r.frequent_visits), func.count().filter(s.spend_fen > r.big_spender_fen),
        func.coalesce(func.sum(s.spend_fen), 0),
        func.coalesce(func.sum(s.spend_fen).filter(s.spend_fen > r.big_spender_fen), 0),
    ).where(s.month == month)).one()
    members, visiting, buying, frequent, big, spend, big_spend = (int(x) for x in row)

    def share(n: int, of: int) -> float | None:
        return round(n / of, 4) if of else None

    return {"members": members, "visiting_members": visiting, "buying_members": buying,
            "frequent_visitors": {"threshold_visits": r.frequent_visits, "members": frequent,
                                  "share_of_members": share(frequent, members),
                                  "share_of_visiting": share(frequent, visiting)},
            "big_spenders": {"threshold_fen": r.big_spender_fen, "members": big,
                             "share_of_members": share(big, members), "share_of_buying": share(big, buying),
                             "spend_fen": big_spend, "share_of_spend": share(big_spend, spend)}}


def _grouped(session: Session, month: date, column: Any, order: tuple[str, ...]) -> list[dict[str, Any]]:
    s = MemberSnapshot
    rows = {str(k) if k is not None else NONE: (int(n), int(v)) for k, n, v in session.execute(
        select(column, func.count(), func.coalesce(func.sum(s.spend_fen), 0)).where(s.month == month)
        .group_by(column)).all()}
    total = sum(v for _, v in rows.values())
    return [{"key": key, "members": rows.get(key, (0, 0))[0], "spend_fen": rows.get(key, (0, 0))[1],
             "share_of_spend": round(rows.get(key, (0, 0))[1] / total, 4) if total else None}
            for key in (*order, NONE)]


def _valuable_share(session: Session, month: date) -> dict[str, Any]:
    pyramid = _grouped(session, month, MemberSnapshot.pyramid, PYRAMID_LEVELS)
    tiers = _grouped(session, month, MemberSnapshot.t_tier, T_TIERS)
    total = sum(r["spend_fen"] for r in pyramid)
    top = sum(r["spend_fen"] for r in pyramid if r["key"] in ("vip", "major", "ordinary"))
    valuable_t = sum(r["spend_fen"] for r in tiers if r["key"] in ("T1", "T2"))
    return {"spend_fen": total, "top_20_spend_fen": top, "top_20_share": round(top / total, 4) if total else None,
            "t1_t2_share": round(valuable_t / total, 4) if total else None,
            "pyramid": pyramid, "t_tiers": tiers}


def _t_tiers(session: Session, month: date, previous: date | None) -> dict[str, Any]:
    cur, prev = MemberSnapshot, aliased(MemberSnapshot)
    counts = {r["key"]: r["members"] for r in _grouped(session, month, cur.t_tier, T_TIERS)}
    matrix: dict[str, dict[str, int]] = {a: {b: 0 for b in (*T_TIERS, NONE)} for a in (*T_TIERS, NONE)}
    if previous is not None:
        rows = session.execute(
            select(prev.t_tier, cur.t_tier, func.count())
            .select_from(cur).outerjoin(prev, and_(prev.member_id == cur.member_id, prev.month == previous))
            .where(cur.month == month).group_by(prev.t_tier, cur.t_tier)).all()
        for a, b, n in rows:
            matrix[a or NONE][b or NONE] += int(n)
    return {"previous_month": previous.isoformat() if previous else None, "counts": counts,
            "transitions": matrix if previous is not None else None}


def _lifecycle(session: Session, month: date) -> dict[str, Any]:
    s, t = MemberSnapshot, LifecycleTransition
    counts = dict.fromkeys(LIFECYCLE_STATES, 0)
    for state, n in session.execute(select(s.lifecycle, func.count()).where(s.month == month).group_by(s.lifecycle)):
        counts[state] = int(n)
    end = add_months(month, 1)
    flows = [{"from_state": a, "to_state": b, "cause": c, "members": int(n)} for a, b, c, n in session.execute(
        select(t.from_state, t.to_state, t.cause, func.count()).where(t.day >= month, t.day < end)
        .group_by(t.from_state, t.to_state, t.cause)
        .order_by(func.count().desc(), t.from_state, t.to_state, t.cause)).all()]
    return {"counts": counts, "flows": flows}


def _rfm(session: Session, month: date) -> dict[str, Any]:
    return {"segments": _grouped(session, month, MemberSnapshot.rfm_segment, RFM_SEGMENTS)}


def _lifetime_value(session: Session, month: date) -> dict[str, Any]:
    values = np.fromiter(session.scalars(select(MemberSnapshot.clv_fen).where(
        MemberSnapshot.month == month, MemberSnapshot.clv_fen.is_not(None))), dtype=np.int64)
    edges = np.array([*LTV_EDGES_FEN, np.iinfo(np.int64).max])
    counts = np.histogram(np.clip(values, 0, None), bins=edges)[0] if len(values) else np.zeros(len(edges) - 1)
    bins = [{"from_fen": int(lo), "to_fen": int(hi) if i < len(LTV_EDGES_FEN) - 1 else None, "members": int(n)}
            for i, (lo, hi, n) in enumerate(zip(edges[:-1], edges[1:], counts, strict=True))]
    quantiles = ({f"p{round(q * 100)}": int(np.quantile(values, q, method="inverted_cdf")) for q in LTV_QUANTILES}
                 if len(values) else None)
    return {"members": int(len(values)), "total_fen": int(values.sum()),
            "mean_fen": int(round(values.mean())) if len(values) else None,
            "quantiles": quantiles, "histogram": bins}


# --- reading ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Report:
    month: date
    kind: str
    as_of: date
    computed_at: datetime
    body: dict[str, Any]


def read(session: Session, kind: str, month: date | None = None) -> Report:
    """The stored report of ``kind`` for ``month`` (default: the latest month computed), or NotFound."""
    query = select(MemberReport).where(MemberReport.kind == kind)
    query = query.where(MemberReport.month == month.replace(day=1)) if month else query.order_by(
        MemberReport.month.desc()).limit(1)
    row = session.scalar(query)
    if row is None:
        raise NotFound("no member reports computed for this month yet (they follow the nightly segments run)",
                       code="reports.not_computed")
    return Report(row.month, row.kind, row.as_of, row.computed_at, row.body)


def new_members(session: Session, settings: Settings, now: datetime, *, period: str, since: date | None,
                until: date | None) -> list[tuple[date, int]]:
    """New members per day, week (from Monday) or month within [since, until] (mall-local days), zeros included.

    Days before the last precompute come from it, later days are counted live.
    """
    today = settings.mall.local_day(now)
    until = until or today
    since = since or {"day": until - timedelta(days=29), "week": until - timedelta(weeks=25, days=until.weekday()),
                      "month": add_months(until.replace(day=1), -11)}[period]
    if since > until or (until - since).days > MAX_DAYS:
        raise InvalidInput(f"since must not come after until, at most {MAX_DAYS} days apart",
                           code="reports.invalid_range")
    per_day: dict[date, int] = defaultdict(int)
    stored_until = since
    try:
        stored = read(session, "new_members").body
        for day, n in stored["days"]:
            per_day[date.fromisoformat(day)] = n
        stored_until = date.fromisoformat(stored["until"])
    except NotFound:
        pass
    start = settings.mall.day_bounds(min(stored_until, until + timedelta(days=1)))[0]
    for (created,) in session.execute(select(Member.created_at).where(Member.created_at >= start)):
        per_day[settings.mall.local_day(created)] += 1
    buckets: dict[date, int] = {}
    day = since
    while day <= until:
        key = {"day": day, "week": day - timedelta(days=day.weekday()), "month": day.replace(day=1)}[period]
        buckets[key] = buckets.get(key, 0) + per_day.get(day, 0)
        day += timedelta(days=1)
    return sorted(buckets.items())
