"""Member segments: the nightly snapshot of each member's activity, tiers, lifecycle and lifetime value.

Tables only for now; the rules that fill them follow (issue 14). One ``MemberSnapshot`` row per member
and mall-local month: the nightly run overwrites the current month's row, so the rows of past months
stay as they were at the month's end and movements between months can be reported.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Float, ForeignKey, Index, Integer, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mallapp.db import Base, UTCDateTime
from mallapp.domain.points import BigId

T_TIERS = ("T1", "T2", "T3", "T4")
PYRAMID_LEVELS = ("vip", "major", "ordinary", "small")
LIFECYCLE_STATES = ("new", "active", "weakening", "lost", "reactivated")
RFM_SEGMENTS = ("champions", "loyal", "potential_loyalist", "new", "promising", "need_attention",
                "about_to_sleep", "at_risk", "cant_lose_them", "hibernating", "lost")


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

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[date] = mapped_column(Date, index=True)
    as_of: Mapped[date] = mapped_column(Date)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    members: Mapped[int] = mapped_column(Integer, default=0)
    trigger: Mapped[str] = mapped_column(String(12))     # "clock" or "ops"
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
