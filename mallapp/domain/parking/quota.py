"""Merchants' parking-coupon quota: the hours and fen a merchant bought, which its parking coupons spend.

``parking_quota_entries`` is an append-only ledger and ``parking_quotas`` its running sum per merchant
(one column per unit), both written here only, in the caller's transaction, under a lock on the
merchant's ``parking_quotas`` row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite writers queue):

- **bought**: the merchant buys hours (at ``[parking] quota_price_fen_per_hour``) or fen (at face
  value); its idempotency key makes a retry return the first purchase;
- **adjusted**: ops correct the balance, with a reason; never below zero;
- **reserved**: a parking coupon claimed or issued (mallapp.domain.coupons) takes its value at once, so
  the coupons members hold never exceed what the merchant bought; refused when the quota falls short
  (``parking.quota_exhausted``, nothing changes);
- **returned**: a coupon that expired unused gives its value back, once (its entry's key), and only if
  it was reserved.

So the row always equals the sum of its entries (:func:`check_invariants`) and is never negative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from mallapp.db import get_or_404, insert_many_or_nothing
from mallapp.domain.benefits import PARKING_KINDS
from mallapp.domain.deals import Deal
from mallapp.domain.merchants import Merchant
from mallapp.domain.parking.models import QUOTA_UNITS, ParkingQuota, ParkingQuotaEntry
from mallapp.errors import Conflict, InvalidInput
from mallapp.settings import Settings

# The quota unit each parking benefit spends.
UNIT_OF = {"parking_hours": "hours", "parking_amount": "fen"}
MAX_PURCHASE = {"hours": 100_000, "fen": 100_000_000}


@dataclass(frozen=True)
class Balance:
    merchant_id: int
    hours: int
    fen: int


@dataclass(frozen=True)
class QuotaChange:
    """A purchase or an adjustment: its ledger entry, the balance after it, and whether it was a retry."""

    entry: ParkingQuotaEntry
    balance: Balance
    replayed: bool


def cost(deal: Deal) -> tuple[str, int] | None:
    """What one coupon of ``deal`` takes from its merchant's quota: (unit, amount); None for a non-parking deal."""
    if deal.benefit_kind not in PARKING_KINDS or not deal.benefit_value:
        return None
    return UNIT_OF[deal.benefit_kind], deal.benefit_value


def purchase_key(merchant_id: int, key: str) -> str:
    return f"buy:{merchant_id}:{key}"


def reserved_key(coupon_id: int) -> str:
    return f"coupon:{coupon_id}:reserved"


def returned_key(coupon_id: int) -> str:
    return f"coupon:{coupon_id}:returned"


# --- the row and the ledger ------------------------------------------------------------------------

def lock(session: Session, merchant_id: int, now: datetime) -> ParkingQuota:
    """The merchant's quota row, locked for this transaction (created empty on first use)."""
    query = (select(ParkingQuota).where(ParkingQuota.merchant_id == merchant_id).with_for_update()
             .execution_options(populate_existing=True))
    row = session.scalar(query)
    if row is None:
        # Two first uses at once: the primary key lets one insert; both then lock the same row.
        insert_many_or_nothing(session, ParkingQuota, [dict(merchant_id=merchant_id, hours=0, fen=0, updated_at=now)],
                               ["merchant_id"], ("merchant_id",))
        row = session.scalar(query)
        assert row is not None
    return row


def _post(session: Session, row: ParkingQuota, unit: str, delta: int, reason: str, now: datetime, *,
          coupon_id: int | None = None, price_fen: int | None = None, note: str | None = None,
          key: str | None = None) -> ParkingQuotaEntry:
    """Move the locked row by ``delta`` of ``unit`` and write the entry that says why."""
    balance = getattr(row, unit) + delta
    if balance < 0:
        raise Conflict(f"the merchant's parking quota is {getattr(row, unit)} {unit}: not enough for {-delta}",
                       code="parking.quota_exhausted",
                       details={"unit": unit, "balance": getattr(row, unit), "needed": -delta})
    setattr(row, unit, balance)
    row.updated_at = now
    entry = ParkingQuotaEntry(merchant_id=row.merchant_id, unit=unit, delta=delta, reason=reason, coupon_id=coupon_id,
                              price_fen=price_fen, note=note, idempotency_key=key, created_at=now)
    session.add(entry)
    session.flush()
    return entry


def _balance(row: ParkingQuota) -> Balance:
    return Balance(row.merchant_id, row.hours, row.fen)


# --- merchants and ops -----------------------------------------------------------------------------

def buy(session: Session, settings: Settings, merchant_id: int, *, unit: str, amount: int, idempotency_key: str,
        now: datetime) -> QuotaChange:
    """The merchant buys ``amount`` hours or fen of quota; the same key again returns the first purchase."""
    if unit not in QUOTA_UNITS or not 0 < amount <= MAX_PURCHASE.get(unit, 0):
        raise InvalidInput("buy hours (1-100000) or fen (1-100000000) of parking quota", code="request.invalid")
    row = lock(session, merchant_id, now)  # the lock also orders two retries of one key
    key = purchase_key(merchant_id, idempotency_key)
    first = session.scalar(select(ParkingQuotaEntry).where(ParkingQuotaEntry.idempotency_key == key))
    if first is not None:
        if (first.unit, first.delta) != (unit, amount):
            raise Conflict("this idempotency key was used for another purchase", code="parking.quota_key_reused",
                           details={"unit": first.unit, "amount": first.delta})
        return QuotaChange(first, _balance(row), replayed=True)
    price = amount * settings.parking.quota_price_fen_per_hour if unit == "hours" else amount
    entry = _post(session, row, unit, amount, "bought", now, price_fen=price, key=key)
    return QuotaChange(entry, _balance(row), replayed=False)


def adjust_key(merchant_id: int, key: str) -> str:
    return f"adjust:{merchant_id}:{key}"


def adjust(session: Session, merchant_id: int, *, unit: str, delta: int, reason: str, by: str, idempotency_key: str,
           now: datetime) -> QuotaChange:
    """Ops add to or take from a merchant's quota, with a reason; never below zero. The same key again
    returns the first adjustment (a double submit adds nothing); with another unit or amount it is refused."""
    get_or_404(session, Merchant, merchant_id, code="merchant.not_found", what="merchant")
    if unit not in QUOTA_UNITS or delta == 0:
        raise InvalidInput("adjust hours or fen by a non-zero amount", code="request.invalid")
    row = lock(session, merchant_id, now)  # the lock also orders two retries of one key
    key = adjust_key(merchant_id, idempotency_key)
    first = session.scalar(select(ParkingQuotaEntry).where(ParkingQuotaEntry.idempotency_key == key))
    if first is not None:
        if (first.unit, first.delta) != (unit, delta):
            raise Conflict("this idempotency key was used for another adjustment", code="parking.quota_key_reused",
                           details={"unit": first.unit, "amount": first.delta})
        return QuotaChange(first, _balance(row), replayed=True)
    entry = _post(session, row, unit, delta, "adjusted", now, note=f"{by}: {reason}"[:200], key=key)
    return QuotaChange(entry, _balance(row), replayed=False)


def balance(session: Session, merchant_id: int) -> Balance:
    row = session.get(ParkingQuota, merchant_id)
    return Balance(merchant_id, 0, 0) if row is None else _balance(row)


def balances(session: Session) -> list[tuple[Merchant, Balance]]:
    """Every merchant with its quota (zero when it never bought any), by merchant id."""
    rows = session.execute(select(Merchant, ParkingQuota).outerjoin(ParkingQuota,
                                                                    ParkingQuota.merchant_id == Merchant.id)
                           .order_by(Merchant.id))
    return [(m, Balance(m.id, 0, 0) if q is None else _balance(q)) for m, q in rows]


def entries(session: Session, merchant_id: int, limit: int = 20) -> list[ParkingQuotaEntry]:
    """The merchant's latest quota entries, newest first."""
    return list(session.scalars(select(ParkingQuotaEntry).where(ParkingQuotaEntry.merchant_id == merchant_id)
                                .order_by(ParkingQuotaEntry.id.desc()).limit(limit)))


# --- coupons ---------------------------------------------------------------------------------------

def coupons_left(session: Session, deal: Deal, now: datetime) -> int | None:
    """How many more coupons of ``deal`` its merchant's quota covers, locking the quota for this transaction;
    None for a non-parking deal (no quota bounds it)."""
    spend = cost(deal)
    if spend is None:
        return None
    unit, amount = spend
    return getattr(lock(session, deal.merchant_id, now), unit) // amount


def ensure(session: Session, deal: Deal, now: datetime) -> None:
    """Refuse (``parking.quota_exhausted``) unless the quota covers one more coupon of ``deal``; lock it."""
    left = coupons_left(session, deal, now)
    if left == 0:
        unit, amount = cost(deal) or ("", 0)
        have = balance(session, deal.merchant_id)
        raise Conflict("the merchant's parking-coupon quota is used up: no more coupons of this deal for now",
                       code="parking.quota_exhausted",
                       details={"unit": unit, "balance": getattr(have, unit), "needed": amount})


def reserve(session: Session, deal: Deal, coupon_id: int, now: datetime) -> ParkingQuotaEntry | None:
    """Take one coupon's value from the merchant's quota (a parking deal's new coupon); None for other deals."""
    spend = cost(deal)
    if spend is None:
        return None
    unit, amount = spend
    return _post(session, lock(session, deal.merchant_id, now), unit, -amount, "reserved", now, coupon_id=coupon_id,
                 key=reserved_key(coupon_id))


def return_coupons(session: Session, merchant_id: int, coupon_ids: Sequence[int], now: datetime) -> int:
    """Return what each of the merchant's coupons reserved, once per coupon; how many were returned.

    A coupon that reserved nothing (made before quotas) or was returned before is skipped. One lock, one
    move of the row and one insert for the lot (the clock returns a batch at a time).
    """
    if not coupon_ids:
        return 0
    row = lock(session, merchant_id, now)
    reserved = session.execute(select(ParkingQuotaEntry.coupon_id, ParkingQuotaEntry.unit, ParkingQuotaEntry.delta)
                               .where(ParkingQuotaEntry.merchant_id == merchant_id,
                                      ParkingQuotaEntry.coupon_id.in_(coupon_ids),
                                      ParkingQuotaEntry.reason == "reserved")).all()
    returned = set(session.scalars(select(ParkingQuotaEntry.coupon_id)
                                   .where(ParkingQuotaEntry.coupon_id.in_(coupon_ids),
                                          ParkingQuotaEntry.reason == "returned")))
    due = sorted((r for r in reserved if r.coupon_id not in returned), key=lambda r: r.coupon_id)
    if not due:
        return 0
    for unit in QUOTA_UNITS:
        setattr(row, unit, getattr(row, unit) - sum(r.delta for r in due if r.unit == unit))
    row.updated_at = now
    session.execute(insert(ParkingQuotaEntry), [
        dict(merchant_id=merchant_id, unit=r.unit, delta=-r.delta, reason="returned", coupon_id=r.coupon_id,
             price_fen=None, note=None, idempotency_key=returned_key(r.coupon_id), created_at=now) for r in due])
    session.flush()
    return len(due)


# --- checks ----------------------------------------------------------------------------------------

def check_invariants(session: Session) -> list[str]:
    """Every way the quota breaks its invariants: a row unequal to the sum of its entries, or negative."""
    sums: dict[tuple[int, str], int] = {
        (m, u): int(total) for m, u, total in session.execute(
            select(ParkingQuotaEntry.merchant_id, ParkingQuotaEntry.unit, func.sum(ParkingQuotaEntry.delta))
            .group_by(ParkingQuotaEntry.merchant_id, ParkingQuotaEntry.unit))}
    problems = []
    rows = {row.merchant_id: row for row in session.scalars(select(ParkingQuota))}
    for merchant_id in sorted({m for m, _ in sums} | set(rows)):
        row = rows.get(merchant_id)
        for unit in QUOTA_UNITS:
            held = 0 if row is None else getattr(row, unit)
            if held != sums.get((merchant_id, unit), 0):
                problems.append(f"merchant {merchant_id}: {unit} is {held}, its entries sum to "
                                f"{sums.get((merchant_id, unit), 0)}")
            if held < 0:
                problems.append(f"merchant {merchant_id}: {unit} is negative ({held})")
    return problems
