"""The car-park system, as the rest of mallapp sees it: one interface, one module per vendor.

The car park (Keytop, Jieshun and others) owns the barriers, the plate cameras and the bill. Every
vendor's open API has the same shape, which :class:`CarPark` names; a vendor module (today
:mod:`mallapp.adapters.carpark_open`) turns it into signed HTTP calls and maps the vendor's error
codes onto the errors below. Money is integer fen, time is integer seconds, instants are aware UTC.

Errors (:mod:`mallapp.errors` classes, re-exported here; codes stable)::

    NotFound     PlateNotFound      carpark.plate_not_found   the plate is not in the car park
    Conflict     AlreadyPaid        carpark.already_paid      nothing is due on this bill
                 OrderReused        carpark.order_reused      our order id was used for another payment
                 BillChanged        carpark.bill_changed      the bill's order number is no longer current
    RuleViolation AmountMismatch    carpark.amount_mismatch   the items and the amount do not settle the bill
    UpstreamError SignatureRefused  carpark.signature_refused the car park refused our signature, clock or nonce
                 CarParkUnavailable carpark.unavailable       timeout, refused connection, 5xx, garbled answer
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mallapp.errors import (
    AlreadyPaid,
    AmountMismatch,
    BillChanged,
    CarParkUnavailable,
    InvalidInput,
    OrderReused,
    PlateNotFound,
    SignatureRefused,
)

__all__ = [
    "AlreadyPaid", "AmountMismatch", "Bay", "Bill", "BillChanged", "CarPark", "CarParkUnavailable",
    "Item", "LevelSpaces", "OrderReused", "Payment", "PaymentRecord", "PlateNotFound", "SignatureRefused",
]


@dataclass(frozen=True)
class Bill:
    """What the car park says a plate owes right now."""

    plate: str
    order_no: str          # the car park's number for this stay; a payment names it
    entered_at: datetime
    gross_fen: int         # the tariff for the whole stay so far
    discount_fen: int      # discounts already applied (money, and time valued by the tariff)
    paid_fen: int          # paid so far
    due_fen: int           # what leaving now would cost: gross - discount - paid, never negative


@dataclass(frozen=True)
class Item:
    """One line of a payment: a discount in fen or in seconds of parking, or the cash paid."""

    code: str              # ours, stable: "tier", "points", "spend", "coupon:<id>", "wechatpay"
    name: str              # what the car park shows on its receipt and screens
    fen: int = 0
    seconds: int = 0

    def __post_init__(self) -> None:
        if self.fen < 0 or self.seconds < 0 or (self.fen > 0) == (self.seconds > 0):
            raise InvalidInput("A car-park item is either an amount in fen or a time in seconds, positive.",
                               code="carpark.item_invalid", details={"code": self.code})
        if not self.code or not self.name:
            raise InvalidInput("A car-park item needs a code and a name.", code="carpark.item_invalid")


@dataclass(frozen=True)
class Payment:
    """The car park's record of one payment, the same every time our order id is sent again."""

    order_id: str          # ours
    order_no: str          # the stay it paid
    trade_no: str          # the car park's receipt number
    paid_fen: int          # cash taken
    discount_fen: int      # what the discount items were worth
    due_fen: int           # left to pay after it (0 when it settled the bill)
    paid_at: datetime


@dataclass(frozen=True)
class PaymentRecord:
    """One payment the car park took, as its day's list of payments reports it (reconciliation)."""

    order_id: str          # ours (outTradeNo)
    order_no: str          # the stay it paid
    trade_no: str          # the car park's receipt number
    paid_fen: int          # cash taken
    discount_fen: int      # what the discount items were worth
    paid_at: datetime


@dataclass(frozen=True)
class Bay:
    """Where a bay camera last saw a plate."""

    plate: str
    level: str             # "B2"
    bay: str               # "B2-C058"
    seen_at: datetime


@dataclass(frozen=True)
class LevelSpaces:
    level: str
    total: int
    free: int


class CarPark(Protocol):
    """A car-park system, whatever its vendor."""

    def query_bill(self, plate: str) -> Bill:
        """Return the plate's current bill; PlateNotFound when the car is not in the car park."""
        ...

    def pay(self, *, plate: str, order_no: str, order_id: str, paid_fen: int,
            items: Sequence[Item] = ()) -> Payment:
        """Pay ``paid_fen`` and apply the discount ``items`` to the bill ``order_no``.

        Idempotent by ``order_id``: the same call again returns the first Payment; the same order id
        with a different amount or items is OrderReused. A bill with nothing due is AlreadyPaid.
        """
        ...

    def locate(self, plate: str) -> Bay | None:
        """Return the bay a camera saw the plate in, None when no camera saw it; PlateNotFound when gone."""
        ...

    def free_spaces(self) -> list[LevelSpaces]:
        """Return the free and total spaces per level."""
        ...

    def payments(self, start: datetime, end: datetime) -> list[PaymentRecord]:
        """Return the payments the car park took with ``start <= paid_at < end`` (all pages), oldest first."""
        ...
