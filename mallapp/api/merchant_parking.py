"""Parking-coupon quota: merchants see and buy theirs and see what their parking coupons did; ops see every
merchant's and adjust one (docs/parking.md, "Parking coupons")."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal

from flask import Blueprint, request
from pydantic import Field, model_validator
from sqlalchemy.orm import object_session

from mallapp.api.core import (
    REPLAY,
    Body,
    Out,
    Printable,
    Query,
    current_merchant_id,
    current_ops,
    operation,
    runtime,
    transaction,
)
from mallapp.domain.deals import Deal
from mallapp.domain.parking import merchant_coupons, quota
from mallapp.domain.parking.models import ParkingQuotaEntry
from mallapp.errors import InvalidInput

merchant_bp = Blueprint("merchant_parking", __name__, url_prefix="/api/v1/merchant/parking")
ops_bp = Blueprint("ops_parking_quota", __name__, url_prefix="/api/v1/ops")

Unit = Literal["hours", "fen"]  # parking.models.QUOTA_UNITS
_EARLIEST, _LATEST = date(2000, 1, 1), date(2999, 12, 30)


# --- shapes ----------------------------------------------------------------------------------------

class ParkingQuotaNote(Out):
    """A parking deal's coupons against its merchant's parking quota (a warning, not a refusal)."""

    unit: Literal["hours", "fen"]
    per_coupon: int = Field(description="what one coupon reserves from the quota when claimed or issued")
    balance: int = Field(description="the merchant's quota now, in unit")
    covers: int = Field(description="how many more coupons the quota covers")
    unclaimed: int = Field(description="coupons of the deal not yet claimed (quota - claimed)")
    short: bool = Field(description="true when the quota covers fewer coupons than remain to claim: claims beyond "
                                    "it are refused with parking.quota_exhausted until the merchant buys more")


class BalanceOut(Out):
    hours: int = Field(description="hours of free parking the merchant's parking_hours coupons may still reserve")
    fen: int = Field(description="fen the merchant's parking_amount coupons may still reserve")


class EntryOut(Out):
    id: int
    unit: Unit
    delta: int = Field(description="+ bought, adjusted up or returned; - reserved by a coupon or adjusted down")
    reason: Literal["bought", "reserved", "returned", "adjusted"]
    coupon_id: int | None
    price_fen: int | None = Field(description="what the mall charged for a purchase")
    note: str | None
    created_at: datetime


class QuotaOut(Out):
    merchant_id: int
    balance: BalanceOut
    entries: list[EntryOut] = Field(description="the latest 20, newest first")


class PurchaseIn(Body):
    unit: Unit = Field(description="hours (for parking_hours coupons) or fen (for parking_amount coupons)")
    amount: int = Field(ge=1, le=100_000_000, description="hours: 1-100000; fen: 1-100000000")

    @model_validator(mode="after")
    def _bounded(self) -> PurchaseIn:
        if self.amount > quota.MAX_PURCHASE[self.unit]:
            raise ValueError(f"buy at most {quota.MAX_PURCHASE[self.unit]} {self.unit} at once")
        return self


class PurchaseOut(Out):
    entry: EntryOut
    balance: BalanceOut
    replayed: bool = Field(description="true when this Idempotency-Key had bought before; nothing changed")


class UsageQuery(Query):
    from_: date | None = Field(default=None, alias="from", description="first mall-local day; default: 29 days "
                                                                       "before to")
    to: date | None = Field(default=None, description="last mall-local day (inclusive); default: today")


class UsageDayOut(Out):
    day: date
    claimed: int = Field(description="coupons claimed or issued")
    claimed_hours: int
    claimed_fen: int
    used: int = Field(description="coupons used in parking payments (not voided)")
    used_seconds: int = Field(description="free parking they gave")
    used_fen: int = Field(description="their value on the parking bills")
    expired: int = Field(description="coupons that expired unused")
    expired_hours: int
    expired_fen: int
    returned_hours: int = Field(description="quota returned from expired coupons")
    returned_fen: int


class UsageTotalsOut(Out):
    claimed: int = 0
    claimed_hours: int = 0
    claimed_fen: int = 0
    used: int = 0
    used_seconds: int = 0
    used_fen: int = 0
    expired: int = 0
    expired_hours: int = 0
    expired_fen: int = 0
    returned_hours: int = 0
    returned_fen: int = 0


class UsageOut(Out):
    merchant_id: int
    first_day: date = Field(description="the range's first mall-local day (from)")
    last_day: date = Field(description="its last (to)")
    days: list[UsageDayOut] = Field(description="every day of the range, oldest first")
    totals: UsageTotalsOut


class MerchantQuotaOut(Out):
    merchant_id: int
    name: str
    active: bool
    balance: BalanceOut


class AllQuotasOut(Out):
    merchants: list[MerchantQuotaOut] = Field(description="by merchant id")


class AdjustIn(Body):
    unit: Unit
    delta: int = Field(ge=-100_000_000, le=100_000_000, description="added (or, negative, taken); never below zero")
    reason: Printable(180) = Field(description="why: kept on the entry with the ops user's name")


class AdjustOut(Out):
    entry: EntryOut
    balance: BalanceOut
    replayed: bool = Field(description="true when this Idempotency-Key had adjusted before; nothing changed")


def quota_note(deal: Deal) -> ParkingQuotaNote | None:
    """A parking deal's coupons against its merchant's quota (in the deal's session); None for other deals."""
    spend, session = quota.cost(deal), object_session(deal)
    if spend is None or session is None:
        return None
    unit, amount = spend
    have = getattr(quota.balance(session, deal.merchant_id), unit)
    unclaimed = deal.quota - deal.claimed
    return ParkingQuotaNote(unit=unit, per_coupon=amount, balance=have, covers=have // amount, unclaimed=unclaimed,
                            short=have // amount < unclaimed)


def _entry(entry: ParkingQuotaEntry) -> EntryOut:
    return EntryOut(id=entry.id, unit=entry.unit, delta=entry.delta, reason=entry.reason, coupon_id=entry.coupon_id,
                    price_fen=entry.price_fen, note=entry.note, created_at=entry.created_at)


def _balance(have: quota.Balance) -> BalanceOut:
    return BalanceOut(hours=have.hours, fen=have.fen)


# --- merchants -------------------------------------------------------------------------------------

@operation(merchant_bp, "/quota", "GET", summary="This merchant's parking-coupon quota and its latest entries",
           auth="merchant", response=QuotaOut)
def get_quota() -> QuotaOut:
    merchant_id = current_merchant_id()
    with transaction() as session:
        return QuotaOut(merchant_id=merchant_id, balance=_balance(quota.balance(session, merchant_id)),
                        entries=[_entry(e) for e in quota.entries(session, merchant_id)])


def _idempotency_key() -> str:
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > 64:
        raise InvalidInput("send an Idempotency-Key header (1 to 64 characters)",
                           code="request.idempotency_key_required")
    return key


@operation(merchant_bp, "/quota/purchases", "POST",
           summary="Buy parking-coupon quota, hours or fen (send an Idempotency-Key)", auth="merchant_manager",
           body=PurchaseIn, response=PurchaseOut, status=201, also=REPLAY,
           headers={"Idempotency-Key": "required; a retry with the same key returns the first purchase"},
           errors=("request.idempotency_key_required", "parking.quota_key_reused"))
def buy_quota(body: PurchaseIn):
    key = _idempotency_key()
    rt = runtime()
    with transaction() as session:
        bought = quota.buy(session, rt.settings, current_merchant_id(), unit=body.unit, amount=body.amount,
                           idempotency_key=key, now=rt.now())
        out = PurchaseOut(entry=_entry(bought.entry), balance=_balance(bought.balance), replayed=bought.replayed)
    return out, 200 if bought.replayed else 201


@operation(merchant_bp, "/usage", "GET",
           summary="What this merchant's parking coupons did per mall-local day: claimed, used, expired, returned",
           auth="merchant_manager", query=UsageQuery, response=UsageOut, errors=("parking.invalid_range",))
def get_usage(query: UsageQuery) -> UsageOut:
    rt = runtime()
    last = query.to or rt.settings.mall.local_day(rt.now())
    first = query.from_ or last - timedelta(days=29)
    # Far-off years would overflow when the mall's days are turned into UTC instants.
    plausible = all(_EARLIEST <= day <= _LATEST for day in (first, last))
    if not plausible or first > last or (last - first).days >= merchant_coupons.MAX_DAYS:
        raise InvalidInput(f"from must not be after to, the range at most {merchant_coupons.MAX_DAYS} days, "
                           "between the years 2000 and 2999",
                           code="parking.invalid_range", details={"from": first.isoformat(), "to": last.isoformat()})
    merchant_id = current_merchant_id()
    with transaction() as session:
        report = merchant_coupons.usage(session, rt.settings, merchant_id, first, last, rt.now())
    return UsageOut(merchant_id=merchant_id, first_day=first, last_day=last,
                    days=[UsageDayOut(**vars(d)) for d in report.days],
                    totals=UsageTotalsOut(**merchant_coupons.totals(report)))


# --- ops -------------------------------------------------------------------------------------------

@operation(ops_bp, "/parking/quotas", "GET", summary="Every merchant's parking-coupon quota", auth="ops",
           response=AllQuotasOut)
def all_quotas() -> AllQuotasOut:
    with transaction() as session:
        return AllQuotasOut(merchants=[MerchantQuotaOut(merchant_id=m.id, name=m.name, active=m.active,
                                                        balance=_balance(b)) for m, b in quota.balances(session)])


@operation(ops_bp, "/merchants/<int:merchant_id>/parking-quota", "POST",
           summary="Adjust a merchant's parking-coupon quota, with a reason (send an Idempotency-Key)",
           auth="ops_admin", body=AdjustIn, response=AdjustOut, status=201, also=REPLAY,
           headers={"Idempotency-Key": "required; a retry with the same key returns the first adjustment"},
           errors=("ops.admin_required", "merchant.not_found", "parking.quota_exhausted",
                   "request.idempotency_key_required", "parking.quota_key_reused"))
def adjust_quota(merchant_id: int, body: AdjustIn):
    key = _idempotency_key()
    rt = runtime()
    with transaction() as session:
        done = quota.adjust(session, merchant_id, unit=body.unit, delta=body.delta, reason=body.reason,
                            by=current_ops().username, idempotency_key=key, now=rt.now())
        out = AdjustOut(entry=_entry(done.entry), balance=_balance(done.balance), replayed=done.replayed)
    return out, 200 if done.replayed else 201
