"""The queue's tables: a restaurant's party-size bands, its tickets, and the daily number counters."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
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

# waiting: in line; called: the table is ready, the party has the grace period to come; then one of
# seated, skipped (staff passed it over), cancelled (by the member), lapsed (not seated in time).
STATUSES = ("waiting", "called", "seated", "skipped", "cancelled", "lapsed")
ACTIVE = ("waiting", "called")


class QueueBand(Base):
    """One queue of a restaurant: the parties of min_party..max_party people, numbered A001, A002, ..."""

    __tablename__ = "queue_bands"
    __table_args__ = (UniqueConstraint("store_id", "code"),
                      CheckConstraint("min_party >= 1 AND (max_party IS NULL OR max_party >= min_party)",
                                      name="party_range"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    code: Mapped[str] = mapped_column(String(2))
    label: Mapped[str] = mapped_column(String(40))
    min_party: Mapped[int] = mapped_column(SmallInteger)
    # None: no upper limit ("5+").
    max_party: Mapped[int | None] = mapped_column(SmallInteger)
    is_open: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class QueueCounter(Base):
    """The last number given in a band on a mall-local day: one upsert per ticket, so numbers never repeat."""

    __tablename__ = "queue_counters"

    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), primary_key=True)
    band: Mapped[str] = mapped_column(String(2), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer)


class QueueTicket(Base):
    """A party's place in a band's line, from taking the number to being seated (or not)."""

    __tablename__ = "queue_tickets"
    __table_args__ = (
        UniqueConstraint("store_id", "band", "day", "number"),
        # The member's id while the ticket is active, else NULL: at most one active ticket per restaurant.
        UniqueConstraint("store_id", "active_member_id"),
        # A till's request id for a walk-in ticket or a call: its retry returns the first result.
        UniqueConstraint("store_id", "request_id"),
        UniqueConstraint("store_id", "call_request_id"),
        CheckConstraint(f"status IN {STATUSES}", name="status"),
        Index("ix_queue_tickets_store_id_band_status_day_number", "store_id", "band", "status", "day", "number"),
        Index("ix_queue_tickets_store_id_day", "store_id", "day"),
        Index("ix_queue_tickets_status_lapses_at", "status", "lapses_at"),
        Index("ix_queue_tickets_member_id_id", "member_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    band: Mapped[str] = mapped_column(String(2))
    # The mall-local day the number belongs to, and its number that day.
    day: Mapped[date] = mapped_column(Date)
    number: Mapped[int | None] = mapped_column(Integer)
    ticket_no: Mapped[str] = mapped_column(String(8), default="")
    party_size: Mapped[int] = mapped_column(SmallInteger)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))  # None: a walk-in
    active_member_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10))
    request_id: Mapped[str | None] = mapped_column(String(64))
    call_request_id: Mapped[str | None] = mapped_column(String(64))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Minutes after mall-local midnight when taken: the estimator's time-of-day slot, in plain SQL.
    taken_minute: Mapped[int] = mapped_column(SmallInteger)
    # Parties waiting ahead in the band when taken, and the estimates shown then (seconds).
    ahead_at_take: Mapped[int] = mapped_column(Integer)
    estimate_s: Mapped[int] = mapped_column(Integer)
    naive_estimate_s: Mapped[int] = mapped_column(Integer)
    called_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Seconds from taking the number to being called: what the estimator learns from.
    wait_s: Mapped[int | None] = mapped_column(Integer)
    lapses_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set once the "n tables ahead" message went (or was not needed: taken with n or fewer ahead).
    near_notified: Mapped[bool] = mapped_column(Boolean, default=False)
