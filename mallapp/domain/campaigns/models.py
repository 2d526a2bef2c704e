"""The campaign tables: a campaign (audience, steps, timing, control share, window) and its assignments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from mallapp.db import Base, UTCDateTime
from mallapp.domain.points import BigId

STATUSES = ("draft", "scheduled", "running", "finished", "cancelled")
# now: at launch; at: at start_at; lifecycle: each member entering lifecycle_state; next_purchase_due: each
# member whose next purchase falls due (member_snapshots.next_purchase_due).
TIMINGS = ("now", "at", "lifecycle", "next_purchase_due")
ARMS = ("treated", "control")


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (CheckConstraint(f"status IN {STATUSES}", name="status"),
                      CheckConstraint(f"timing IN {TIMINGS}", name="timing"),
                      CheckConstraint("control_pct >= 0 AND control_pct <= 50", name="control_pct_range"),
                      CheckConstraint("window_days > 0", name="window_positive"),
                      Index("ix_campaigns_status", "status"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(12), default="draft")
    # The audience rules (mallapp.domain.campaigns.audience.Audience as a dict), and the steps: a list of
    # {"after_days": n, "offer": {...}} (one step unless a sequence), each delivered n days after assignment.
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    timing: Mapped[str] = mapped_column(String(20))
    start_at: Mapped[datetime | None] = mapped_column(UTCDateTime)      # timing "at"
    lifecycle_state: Mapped[str | None] = mapped_column(String(12))     # timing "lifecycle"
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)       # triggered timings stop assigning then
    control_pct: Mapped[int] = mapped_column(SmallInteger, default=10)
    window_days: Mapped[int] = mapped_column(SmallInteger, default=30)
    seed: Mapped[int] = mapped_column(BigInteger)                        # the control draw's seed
    created_by: Mapped[int] = mapped_column(ForeignKey("ops_users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    launched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Assignment(Base):
    """A member drawn into a campaign, once: treated (contacted step by step) or control (never contacted)."""

    __tablename__ = "campaign_assignments"
    __table_args__ = (UniqueConstraint("campaign_id", "member_id"),
                      CheckConstraint(f"arm IN {ARMS}", name="arm"),
                      Index("ix_campaign_assignments_next_step_at", "next_step_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    arm: Mapped[str] = mapped_column(String(8))
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    measure_until: Mapped[datetime] = mapped_column(UTCDateTime)         # assigned_at + the campaign's window
    # The step to deliver next and when it is due (None: nothing more to deliver, and always for control).
    next_step: Mapped[int] = mapped_column(SmallInteger, default=0)
    next_step_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)     # put on the stream, not yet delivered
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
