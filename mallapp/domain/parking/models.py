"""Parking's tables: car parks and their levels, bays and gates; plates; sessions; payments and the
benefits they used; merchants' parking-coupon quota; the nightly reconciliation with the car park.

Money is integer fen, time is integer seconds, instants are UTC. ``local_day`` columns are the
mall-local day a row counts toward (the daily caps and the per-day reports read them).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from mallapp.db import Base, UTCDateTime
from mallapp.domain.points import BigId

VEHICLE_TYPES = ("small", "large", "new_energy", "motorcycle")
GATE_KINDS = ("entrance", "exit")
# Who computes the bill: the car-park system (we read it with query_bill), or the mall (our tariff).
FEE_SOURCES = ("carpark", "mall")
SESSION_STATUSES = ("parked", "left", "closed_stale")
# How the car left: the camera opened (the bill was settled), staff opened the barrier with money
# still due, or we never heard (the clock closed a stale session).
EXIT_KINDS = ("camera", "staff", "unknown")
BAY_SOURCES = ("camera", "qr", "typed")
# A payment: pending (waiting for WeChat Pay), paying (cash taken or none needed; telling the car
# park), paid (the car park took it), failed (refused; points, coupons and cash given back),
# abandoned (never paid; closed, points and coupons given back).
PAYMENT_STATUSES = ("pending", "paying", "paid", "failed", "abandoned")
ACTIVE_PAYMENT = ("pending", "paying", "paid")
PAYERS = ("member", "public")
BENEFIT_KINDS = ("tier", "spend", "points", "coupon")
QUOTA_UNITS = ("hours", "fen")
QUOTA_REASONS = ("bought", "reserved", "returned", "adjusted")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class CarPark(Base):
    __tablename__ = "car_parks"
    __table_args__ = (CheckConstraint(_in("fee_source", FEE_SOURCES), name="fee_source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)  # ours: "P1"
    name: Mapped[str] = mapped_column(String(80))
    # The car-park system's own code for this car park: its notifications carry it as parkCode.
    vendor_park_code: Mapped[str] = mapped_column(String(64), unique=True)
    fee_source: Mapped[str] = mapped_column(String(8), default="carpark")
    # A tariff document (mallapp.domain.parking.tariff.parse_tariff) and the benefit rules
    # (mallapp.domain.parking.rules.parse_rules), both validated before they are stored.
    tariff: Mapped[dict[str, Any]] = mapped_column(JSON)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ParkingLevel(Base):
    __tablename__ = "parking_levels"
    __table_args__ = (UniqueConstraint("car_park_id", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    car_park_id: Mapped[int] = mapped_column(ForeignKey("car_parks.id"), index=True)
    code: Mapped[str] = mapped_column(String(8))  # "B2": the part of a bay code before the dash
    name: Mapped[str] = mapped_column(String(40))
    # The venue's floor number (1 = ground, -1 = first basement), for routes between floors.
    floor: Mapped[int] = mapped_column(SmallInteger)
    spaces: Mapped[int] = mapped_column(Integer)


class ParkingBay(Base):
    __tablename__ = "parking_bays"
    __table_args__ = (UniqueConstraint("car_park_id", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    car_park_id: Mapped[int] = mapped_column(ForeignKey("car_parks.id"))
    level_id: Mapped[int] = mapped_column(ForeignKey("parking_levels.id"), index=True)
    code: Mapped[str] = mapped_column(String(16))  # "B2-C058"
    # On the level's plan, metres (x right, y up); optional until wayfinding (issue 17) needs it.
    x: Mapped[float | None] = mapped_column()
    y: Mapped[float | None] = mapped_column()
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ParkingGate(Base):
    __tablename__ = "parking_gates"
    __table_args__ = (UniqueConstraint("car_park_id", "code"), CheckConstraint(_in("kind", GATE_KINDS), name="kind"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    car_park_id: Mapped[int] = mapped_column(ForeignKey("car_parks.id"), index=True)
    code: Mapped[str] = mapped_column(String(16))  # the car park's gate code: "IN-1", "OUT-1"
    name: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(8))
    level_id: Mapped[int | None] = mapped_column(ForeignKey("parking_levels.id"))


class PlateBinding(Base):
    """A member's plate. A plate is bound to one member at a time (the partial unique index)."""

    __tablename__ = "plate_bindings"
    __table_args__ = (Index("uq_plate_bindings_bound_plate", "plate", unique=True,
                            sqlite_where=text("unbound_at IS NULL"), postgresql_where=text("unbound_at IS NULL")),
                      CheckConstraint(_in("vehicle_type", VEHICLE_TYPES), name="vehicle_type"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    plate: Mapped[str] = mapped_column(String(10))  # normalised: upper case, no separators, "沪AD12345"
    vehicle_type: Mapped[str] = mapped_column(String(16))
    bound_at: Mapped[datetime] = mapped_column(UTCDateTime)
    unbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ParkingSession(Base):
    """One stay of one car, from the entry notification to the exit (or the clock closing it)."""

    __tablename__ = "parking_sessions"
    __table_args__ = (UniqueConstraint("car_park_id", "order_no"),
                      # One open stay per plate per car park.
                      Index("uq_parking_sessions_open_plate", "car_park_id", "plate", unique=True,
                            sqlite_where=text("exited_at IS NULL"), postgresql_where=text("exited_at IS NULL")),
                      Index("ix_parking_sessions_plate_entered_at", "plate", "entered_at"),
                      Index("ix_parking_sessions_entered_at", "entered_at"),
                      CheckConstraint(_in("status", SESSION_STATUSES), name="status"),
                      CheckConstraint("exit_kind IS NULL OR " + _in("exit_kind", EXIT_KINDS), name="exit_kind"),
                      CheckConstraint("bay_source IS NULL OR " + _in("bay_source", BAY_SOURCES), name="bay_source"),
                      CheckConstraint("exited_at IS NULL OR exited_at >= entered_at", name="times"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    car_park_id: Mapped[int] = mapped_column(ForeignKey("car_parks.id"))
    plate: Mapped[str] = mapped_column(String(10))
    vehicle_type: Mapped[str] = mapped_column(String(16), default="small")
    order_no: Mapped[str] = mapped_column(String(64))  # the car park's order number for the stay
    # The plate's member when the car came in (benefits re-read the binding when paying).
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    entry_gate: Mapped[str | None] = mapped_column(String(16))
    exited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exit_gate: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="parked")
    exit_kind: Mapped[str | None] = mapped_column(String(8))
    # At a staff-opened exit: what was still due (for ops' list of unpaid exits).
    unpaid_fen: Mapped[int | None] = mapped_column(BigInteger)
    # The car park's bill as its exit notification reported it.
    gross_fen: Mapped[int | None] = mapped_column(BigInteger)
    # The last payment the car park took: the grace period to the exit runs from it.
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    bay_code: Mapped[str | None] = mapped_column(String(16))
    bay_source: Mapped[str | None] = mapped_column(String(8))
    bay_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ParkingPayment(Base):
    """One attempt to settle a session's bill: benefits first, the rest with WeChat Pay.

    ``order_id`` is ours: the car park keys pay by it and WeChat Pay's ``out_trade_no`` is it, so
    every retry of either is safe. A session has at most one active payment per ``seq`` (the partial
    unique index); a second payment of the same session is only possible after an overstay.
    """

    __tablename__ = "parking_payments"
    __table_args__ = (Index("uq_parking_payments_active_seq", "session_id", "seq", unique=True,
                            sqlite_where=text(_in("status", ACTIVE_PAYMENT)),
                            postgresql_where=text(_in("status", ACTIVE_PAYMENT))),
                      Index("ix_parking_payments_status_created_at", "status", "created_at"),
                      Index("ix_parking_payments_local_day", "local_day"),
                      CheckConstraint(_in("status", PAYMENT_STATUSES), name="status"),
                      CheckConstraint(_in("payer", PAYERS), name="payer"),
                      CheckConstraint("gross_fen >= 0 AND discount_fen >= 0 AND cash_fen >= 0 AND points >= 0 "
                                      "AND refunded_fen >= 0 AND refunded_fen <= cash_fen", name="amounts"),
                      CheckConstraint("discount_fen + cash_fen <= gross_fen", name="adds_up"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("parking_sessions.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    order_id: Mapped[str] = mapped_column(String(32), unique=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), index=True)
    payer: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    gross_fen: Mapped[int] = mapped_column(BigInteger)  # the bill due before benefits
    discount_fen: Mapped[int] = mapped_column(BigInteger)  # what the benefits cover, valued in fen
    cash_fen: Mapped[int] = mapped_column(BigInteger)  # paid with WeChat Pay
    points: Mapped[int] = mapped_column(BigInteger, default=0)  # held from the ledger
    # The itemised breakdown the member saw (and the car park received): [{code, name, seconds|fen, ...}].
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    quoted_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the instant the fee was computed for
    wechat_transaction_id: Mapped[str | None] = mapped_column(String(64))
    carpark_trade_no: Mapped[str | None] = mapped_column(String(64))
    refund_no: Mapped[str | None] = mapped_column(String(64))
    refunded_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    # The fingerprint of the request that created it: the same key with another body is refused (0019).
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # WeChat Pay's answer to the order (JSAPI fields or a code_url): a retry returns it (0019).
    prepay: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    local_day: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # WeChat Pay took the cash
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # paid, failed or abandoned


class ParkingBenefit(Base):
    """One benefit a payment used: the daily and per-visit caps count these (``voided_at`` IS NULL)."""

    __tablename__ = "parking_benefits"
    __table_args__ = (Index("ix_parking_benefits_member_id_local_day", "member_id", "local_day"),
                      CheckConstraint(_in("kind", BENEFIT_KINDS), name="kind"),
                      CheckConstraint("seconds >= 0 AND fen >= 0 AND points >= 0", name="amounts"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("parking_payments.id"), index=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("parking_sessions.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(8))
    seconds: Mapped[int] = mapped_column(Integer, default=0)  # free time given (tier, spend, points, hour coupons)
    fen: Mapped[int] = mapped_column(BigInteger, default=0)  # its value on the bill
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    coupon_id: Mapped[int | None] = mapped_column(ForeignKey("coupons.id"))
    local_day: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ParkingQuota(Base):
    """What a merchant may still give as parking coupons: bought, minus coupons reserved, plus returned."""

    __tablename__ = "parking_quotas"
    __table_args__ = (CheckConstraint("hours >= 0 AND fen >= 0", name="non_negative"),)

    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    hours: Mapped[int] = mapped_column(BigInteger, default=0)
    fen: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ParkingQuotaEntry(Base):
    """The quota's ledger: append-only; ``parking_quotas`` is its running sum per merchant and unit."""

    __tablename__ = "parking_quota_entries"
    __table_args__ = (CheckConstraint(_in("unit", QUOTA_UNITS), name="unit"),
                      CheckConstraint(_in("reason", QUOTA_REASONS), name="reason"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    unit: Mapped[str] = mapped_column(String(8))
    delta: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(10))
    coupon_id: Mapped[int | None] = mapped_column(ForeignKey("coupons.id"), index=True)
    # What the mall charged for a purchase of quota (fen), and who recorded it.
    price_fen: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ParkingReconciliation(Base):
    """One day's payments compared with the car park's record of them."""

    __tablename__ = "parking_reconciliations"
    __table_args__ = (UniqueConstraint("car_park_id", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    car_park_id: Mapped[int] = mapped_column(ForeignKey("car_parks.id"))
    day: Mapped[date] = mapped_column(Date)
    ours: Mapped[int] = mapped_column(Integer)  # our paid payments that day
    theirs: Mapped[int] = mapped_column(Integer)  # the car park's payments that day
    # [{order_id, problem: missing_there|missing_here|amount_differs, ours: {...}, theirs: {...}}]
    mismatches: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime)


# The operations reports (mallapp.domain.parking.reports, migration 0019): the exits of a day range and
# the benefits given on a day range, without the member the caps' index starts with.
Index("ix_parking_sessions_exited_at", ParkingSession.exited_at)
Index("ix_parking_benefits_local_day", ParkingBenefit.local_day)
