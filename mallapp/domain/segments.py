"""Member segments: the nightly snapshot of each member's activity, tiers, lifecycle and lifetime value.

Tables only for now; the rules that fill them follow (issue 14). One ``MemberSnapshot`` row per member
and mall-local month: the nightly run overwrites the current month's row, so the rows of past months
stay as they were at the month's end and movements between months can be reported.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime, get_or_404
from mallapp.domain import segment_compute
from mallapp.domain.points import BigId
from mallapp.domain.segment_rules import LIFECYCLE_STATES, PYRAMID_LEVELS, RFM_SEGMENTS, T_TIERS
from mallapp.settings import Settings

# The names (defined with the rules that place members: segment_rules).
__all__ = ["LIFECYCLE_STATES", "PYRAMID_LEVELS", "RFM_SEGMENTS", "T_TIERS", "LifecycleTransition", "MemberSnapshot",
           "SegmentRun", "claim_requested", "fail", "get_run", "request", "run", "runs", "start"]


class MemberSnapshot(Base):
    """A member's activity facts and segments as of the last run in ``month`` (first day of a mall-local month)."""

    __tablename__ = "member_snapshots"
    __table_args__ = (Index("ix_member_snapshots_month_lifecycle", "month", "lifecycle"),)

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    as_of: Mapped[date] = mapped_column(Date)            # the mall-local day of the run that wrote the row
    window_start: Mapped[date] = mapped_column(Date)     # the rolling window is [window_start, as_of]
    # Facts over the window (purchases net of refunds; a fully refunded purchase does not count).
    purchases: Mapped[int] = mapped_column(Integer)
    purchase_days: Mapped[int] = mapped_column(Integer)
    spend_fen: Mapped[int] = mapped_column(BigInteger)
    scored_spend_fen: Mapped[int] = mapped_column(BigInteger)  # the spend the pyramid ranks (one-offs damped)
    visits: Mapped[int] = mapped_column(Integer)
    mean_gap_days: Mapped[float | None] = mapped_column(Float)
    # Over the member's whole history.
    first_purchase_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_purchase_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Segments (None where the rule does not place the member, e.g. no purchase in the window).
    t_tier: Mapped[str | None] = mapped_column(String(2))
    pyramid: Mapped[str | None] = mapped_column(String(8))
    rfm_r: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_f: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_m: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_segment: Mapped[str | None] = mapped_column(String(24))
    lifecycle: Mapped[str] = mapped_column(String(12))
    # Lifetime value (BG/NBD and Gamma-Gamma); None for a member the models cannot score.
    p_alive: Mapped[float | None] = mapped_column(Float)
    expected_purchases_30: Mapped[float | None] = mapped_column(Float)
    expected_purchases_90: Mapped[float | None] = mapped_column(Float)
    expected_purchases_365: Mapped[float | None] = mapped_column(Float)
    expected_spend_fen: Mapped[int | None] = mapped_column(BigInteger)
    clv_fen: Mapped[int | None] = mapped_column(BigInteger)
    next_purchase_due: Mapped[date | None] = mapped_column(Date)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LifecycleTransition(Base):
    """A member's move between lifecycle states, with the day and the cause (e.g. ``t_tier_drop``)."""

    __tablename__ = "lifecycle_transitions"
    __table_args__ = (UniqueConstraint("member_id", "day", "to_state"),
                      Index("ix_lifecycle_transitions_day_to_state", "day", "to_state"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    day: Mapped[date] = mapped_column(Date)
    from_state: Mapped[str | None] = mapped_column(String(12))
    to_state: Mapped[str] = mapped_column(String(12))
    cause: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SegmentRun(Base):
    """One run of the segmentation: when, for which month, and the boundaries and model parameters it used."""

    __tablename__ = "segment_runs"
    __table_args__ = (Index("ix_segment_runs_status", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[date] = mapped_column(Date, index=True)
    as_of: Mapped[date] = mapped_column(Date)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    members: Mapped[int] = mapped_column(Integer, default=0)
    trigger: Mapped[str] = mapped_column(String(12))     # "clock", "ops" or "cli"
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # requested (ops asked; the clock picks it up) -> running -> done or failed.
    status: Mapped[str] = mapped_column(String(12), default="done")
    requested_by: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(500))
    # Members per T-tier, pyramid level, RFM segment and lifecycle state, and transitions recorded.
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# --- the run ---------------------------------------------------------------------------------------

STATUSES = ("requested", "running", "done", "failed")
TRIGGERS = ("clock", "ops", "cli")


def start(session: Session, settings: Settings, now: datetime, *, trigger: str, requested_by: str | None = None,
          status: str = "running") -> SegmentRun:
    """Record a run about to start (or, with status "requested", one asked of the clock)."""
    day = settings.mall.local_day(now)
    row = SegmentRun(month=day.replace(day=1), as_of=day, started_at=now, members=0, trigger=trigger,
                     parameters={}, status=status, requested_by=requested_by, counts={})
    session.add(row)
    session.flush()
    return row


# A run still "running" this long after it started was cut off (its transaction rolled back): it is failed.
ABANDONED_AFTER = timedelta(hours=2)


def request(session: Session, settings: Settings, now: datetime, *, requested_by: str) -> tuple[SegmentRun, bool]:
    """Ask the clock for a run now; return (the run, created). A run already requested or running is answered."""
    stale = select(SegmentRun).where(SegmentRun.status == "running", SegmentRun.started_at < now - ABANDONED_AFTER)
    for row in session.scalars(stale):
        row.status, row.finished_at, row.error = "failed", now, "abandoned: no result within 2 hours of its start"
    pending = session.scalar(select(SegmentRun).where(SegmentRun.status.in_(("requested", "running")))
                             .order_by(SegmentRun.id).limit(1))
    if pending is not None:
        return pending, False
    return start(session, settings, now, trigger="ops", requested_by=requested_by, status="requested"), True


def claim_requested(session: Session, now: datetime) -> int | None:
    """Mark the oldest requested run running and return its id (None when nobody asked)."""
    query = select(SegmentRun).where(SegmentRun.status == "requested").order_by(SegmentRun.id).limit(1)
    row = session.scalar(query.with_for_update(skip_locked=True))
    if row is None:
        return None
    row.status, row.started_at = "running", now
    session.flush()
    return row.id


def fail(session: Session, run_id: int, now: datetime, error: str) -> None:
    """Record that run ``run_id`` failed (its work was rolled back)."""
    row = session.get(SegmentRun, run_id)
    if row is not None:
        row.status, row.finished_at, row.error = "failed", now, error[:500]


def get_run(session: Session, run_id: int) -> SegmentRun:
    """The run with this id, or NotFound."""
    return get_or_404(session, SegmentRun, run_id, code="segments.run_not_found", message="segment run not found")


def runs(session: Session, limit: int = 50) -> list[SegmentRun]:
    """The latest runs, newest first."""
    return list(session.scalars(select(SegmentRun).order_by(SegmentRun.id.desc()).limit(limit)))


def run(session: Session, settings: Settings, now: datetime, *, trigger: str = "clock",
        run_id: int | None = None) -> SegmentRun:
    """Compute every member's facts and segments for the current mall-local month, and store them.

    Writes the month's ``member_snapshots`` (replacing the rows an earlier run of the month wrote), today's
    ``lifecycle_transitions``, ``members.tier`` and the ``segment_runs`` row (``run_id``'s when given). Running it
    again with the same data the same day gives the same rows (``computed_at`` aside). Never commits.
    """
    if session.get_bind().dialect.name == "postgresql":
        # One run at a time (the nightly job, an ops request, the command line); the statements below need memory.
        session.execute(text("SELECT pg_advisory_xact_lock(1400014)"))
        session.execute(text("SET LOCAL work_mem = '256MB'"))
    row = session.get(SegmentRun, run_id) if run_id is not None else None
    if row is None:
        row = start(session, settings, now, trigger=trigger)
    today = settings.mall.local_day(now)
    row.month, row.as_of, row.status = today.replace(day=1), today, "running"
    computed = segment_compute.compute(session, settings, now)
    written = segment_compute.store(session, computed, now)
    row.members = computed.n
    row.parameters = computed.parameters
    row.counts = {**computed.counts, "transitions": written}
    row.status, row.finished_at, row.error = "done", now, None
    session.flush()
    return row
