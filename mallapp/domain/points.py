"""The points ledger: integer points, append-only entries, expiring lots.

Every change of a member's points is one ``PointsEntry`` (never updated, never deleted; the
database refuses both). Credits open a ``PointsLot`` that expires; debits consume lots, the
soonest-expiring first, and record which lots they took in ``PointsAllocation``. The member's
``PointsAccount`` row carries the balance and is the lock that serializes a member's changes.

Invariants (``check_invariants`` verifies them):
  balance == sum(entries.delta) == last entry's balance_after >= 0
  balance == sum(lots.remaining) over the member's lots
  each lot: amount - sum(allocations) == remaining; each debit: sum(allocations) == -delta

Every posting carries an idempotency key: posting the same key again returns the first entry
and changes nothing, so any caller may retry.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    bindparam,
    case,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime, insert_or_nothing
from mallapp.errors import Conflict, InvalidInput, RuleViolation
from mallapp.settings import Settings

Reason = Literal["checkin", "purchase", "birthday_bonus", "birthday_gift", "referral", "redemption", "expiry",
                 "reversal", "adjustment", "coupon", "campaign"]
REASONS: tuple[str, ...] = Reason.__args__  # type: ignore[attr-defined]
BigId = BigInteger().with_variant(Integer, "sqlite")  # SQLite only auto-increments INTEGER keys


class PointsAccount(Base):
    __tablename__ = "points_accounts"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_not_negative"),
                      CheckConstraint("debt >= 0", name="debt_not_negative"))

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    # Points a refund could not take back because they were already spent; future credits settle it.
    debt: Mapped[int] = mapped_column(BigInteger, default=0)
    # No open lot of this member expires before this instant (NULL: none expires). A lower bound,
    # so credits can skip looking for due lots; whoever finds it passed recomputes it.
    expiry_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PointsEntry(Base):
    __tablename__ = "points_entries"
    __table_args__ = (CheckConstraint("delta <> 0", name="delta_not_zero"),
                      CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
                      Index("ix_points_entries_member_id_id", "member_id", "id"),
                      # The ops dashboard sums a day's points issued and redeemed (mallapp.domain.dashboard).
                      Index("ix_points_entries_created_at", "created_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    delta: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(16))
    source_ref: Mapped[str] = mapped_column(String(80), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PointsLot(Base):
    __tablename__ = "points_lots"
    __table_args__ = (CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_in_range"),
                      Index("ix_points_lots_member_open", "member_id", "remaining", "expires_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("points_entries.id"), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class PointsAllocation(Base):
    __tablename__ = "points_allocations"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    debit_entry_id: Mapped[int] = mapped_column(ForeignKey("points_entries.id"), index=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("points_lots.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)


@dataclass(frozen=True)
class Posted:
    """The outcome of a posting; ``replayed`` is true when the idempotency key was seen before."""

    entry: PointsEntry
    replayed: bool = False
    # The member's balance once this posting (and anything it settled) is applied.
    balance: int = 0


# --- rules -----------------------------------------------------------------------------------------

def purchase_points(settings: Settings, amount_fen: int, tier: str | None) -> int:
    """Points a purchase earns before any birthday bonus: 1 per fen_per_point, times the tier's rate."""
    base = amount_fen // settings.points.fen_per_point
    return base * settings.points.tier_multipliers_pct.get(tier or "", 100) // 100


def birthday_bonus(settings: Settings, earned: int) -> int:
    """Extra points on the member's birthday (the doubling's second half by default)."""
    return earned * (settings.points.birthday_multiplier_pct - 100) // 100


def expiry_for(settings: Settings, earned_at: datetime) -> datetime | None:
    """When points earned at ``earned_at`` expire: the end of a calendar year in the mall's zone."""
    if settings.points.expiry_policy == "never":
        return None
    tz = settings.mall.tz
    year = earned_at.astimezone(tz).year + settings.points.expiry_years_after + 1
    return datetime(year, 1, 1, tzinfo=tz)


# --- postings --------------------------------------------------------------------------------------

def open_account(session: Session, member_id: int) -> None:
    session.add(PointsAccount(member_id=member_id, balance=0, debt=0))
    session.flush()


def _lock_account(session: Session, member_id: int) -> PointsAccount:
    # populate_existing: the lock is held now, so overwrite any stale copy the session kept.
    account = session.scalar(
        select(PointsAccount).where(PointsAccount.member_id == member_id).with_for_update()
        .execution_options(populate_existing=True)
    )
    if account is None:
        raise InvalidInput("member has no points account", code="points.no_account")
    return account


def _replay(session: Session, key: str, member_id: int, delta: int | None, reason: str) -> Posted | None:
    entry = session.scalar(select(PointsEntry).where(PointsEntry.idempotency_key == key))
    if entry is None:
        return None
    if entry.member_id != member_id or entry.reason != reason or (delta is not None and entry.delta != delta):
        raise Conflict("this idempotency key was used for a different posting", code="points.idempotency_mismatch")
    return Posted(entry, replayed=True)


def _append(session: Session, account: PointsAccount, delta: int, reason: str, source_ref: str,
            key: str, now: datetime, note: str | None) -> PointsEntry:
    account.balance += delta
    entry = PointsEntry(member_id=account.member_id, delta=delta, balance_after=account.balance,
                        reason=reason, source_ref=source_ref, idempotency_key=key, note=note, created_at=now)
    session.add(entry)
    session.flush()
    return entry


def _check_positive(points: int) -> None:
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise InvalidInput("points must be a positive integer", code="points.invalid_amount")


def credit(session: Session, settings: Settings, member_id: int, points: int, reason: Reason, *,
           source_ref: str, idempotency_key: str, now: datetime, note: str | None = None,
           expires_at: datetime | None | Literal["default"] = "default") -> Posted:
    """Add points as a new lot; a debt left by an earlier refund is settled from it first."""
    _check_positive(points)
    expires = expiry_for(settings, now) if expires_at == "default" else expires_at
    return (_credit_fast(session, member_id, points, reason, source_ref, idempotency_key, now, note, expires)
            or _credit_full(session, member_id, points, reason, source_ref, idempotency_key, now, note, expires))


def _account_statements() -> tuple[Any, Any, Any]:
    account = PointsAccount.__table__
    hint = account.c.expiry_check_at
    expires = bindparam("expires", type_=UTCDateTime())
    add = (update(account)
           .where(account.c.member_id == bindparam("member"), account.c.debt == 0,
                  hint.is_(None) | (hint > bindparam("now", type_=UTCDateTime())))
           .values(balance=account.c.balance + bindparam("points"),
                   expiry_check_at=case((expires.is_(None), hint),
                                        (hint.is_(None) | (hint > expires), expires), else_=hint))
           .returning(account.c.balance))
    add_anyway = (update(account).where(account.c.member_id == bindparam("member"))
                  .values(balance=account.c.balance + bindparam("points")))
    return add, add_anyway, insert(PointsLot.__table__)


# Built once: the credit's hot path runs these on every check-in and purchase.
_ADD_TO_ACCOUNT, _ADD_TO_ACCOUNT_ANYWAY, _INSERT_LOT = _account_statements()


def _credit_fast(session: Session, member_id: int, points: int, reason: str, source_ref: str, key: str,
                 now: datetime, note: str | None, expires: datetime | None) -> Posted | None:
    """The common credit in three statements, or None when the member needs the full path.

    One UPDATE takes the account's row lock and adds the points, but only when no lot may be due
    and no debt is owed; the entry's unique idempotency key then tells a first posting from a retry.
    """
    session.flush()  # Core statements below bypass the unit of work: nothing may be pending
    balance = session.execute(_ADD_TO_ACCOUNT, {"member": member_id, "points": points, "now": now,
                                                "expires": expires}).scalar()
    if balance is None:
        return None
    values = dict(member_id=member_id, delta=points, balance_after=balance, reason=reason, source_ref=source_ref,
                  idempotency_key=key, note=note, created_at=now)
    entry_id = insert_or_nothing(session, PointsEntry, values, ["idempotency_key"])
    if entry_id is None:  # a retry: give the points back and answer with the first posting
        session.execute(_ADD_TO_ACCOUNT_ANYWAY, {"member": member_id, "points": -points})
        replay = _replay(session, key, member_id, points, reason)
        if replay is None:  # ON CONFLICT only yields to a committed (or our own) entry
            raise RuntimeError(f"idempotency key {key!r} conflicted but no entry holds it")
        return replace(replay, balance=balance - points)
    session.execute(_INSERT_LOT, {"member_id": member_id, "entry_id": entry_id, "amount": points,
                                  "remaining": points, "expires_at": expires})
    return Posted(PointsEntry(id=entry_id, **values), balance=balance)


def _credit_full(session: Session, member_id: int, points: int, reason: str, source_ref: str, key: str,
                 now: datetime, note: str | None, expires: datetime | None) -> Posted:
    account = _lock_account(session, member_id)
    replay = _replay(session, key, member_id, points, reason)
    if replay:
        return replace(replay, balance=account.balance)
    _expire_member(session, account, now)
    entry = _append(session, account, points, reason, source_ref, key, now, note)
    lot = PointsLot(member_id=member_id, entry_id=entry.id, amount=points, remaining=points, expires_at=expires)
    session.add(lot)
    if expires is not None and (account.expiry_check_at is None or account.expiry_check_at > expires):
        account.expiry_check_at = expires
    session.flush()
    if account.debt:
        settle = min(account.debt, points)
        account.debt -= settle
        _consume(session, account, settle, "reversal", source_ref, f"{key}:settle", now,
                 "settles points a refund could not take back", lots=[lot])
    return Posted(entry, balance=account.balance)


def debit(session: Session, member_id: int, points: int, reason: Reason, *, source_ref: str,
          idempotency_key: str, now: datetime, note: str | None = None) -> Posted:
    """Take points, the soonest-expiring lots first; never below zero."""
    _check_positive(points)
    account = _lock_account(session, member_id)
    replay = _replay(session, idempotency_key, member_id, -points, reason)
    if replay:
        return replace(replay, balance=account.balance)
    _expire_member(session, account, now)
    if account.balance < points:
        raise RuleViolation(f"not enough points: {account.balance} available, {points} needed",
                            code="points.insufficient",
                            details={"balance": account.balance, "required": points})
    entry = _consume(session, account, points, reason, source_ref, idempotency_key, now, note)
    return Posted(entry, balance=account.balance)


def redeem(session: Session, member_id: int, points: int, *, source_ref: str, idempotency_key: str,
           now: datetime, note: str | None = None) -> Posted:
    """Spend points on something (a gift, parking, a coupon); retry-safe by idempotency key."""
    return debit(session, member_id, points, "redemption", source_ref=source_ref,
                 idempotency_key=idempotency_key, now=now, note=note)


def take_back(session: Session, member_id: int, points: int, *, source_ref: str, idempotency_key: str,
              now: datetime, note: str | None = None) -> tuple[Posted | None, int]:
    """Reverse earned points, from the source's own lots first; return (entry, unrecovered).

    What the member has already spent cannot be taken now: it is recorded as debt that the
    member's next credits settle, so the balance never goes below zero.

    When nothing at all can be taken no entry is posted, so the key cannot detect a retry: the
    caller must be idempotent itself (a refund claims its refund row first).
    """
    _check_positive(points)
    account = _lock_account(session, member_id)
    replay = _replay(session, idempotency_key, member_id, None, "reversal")
    if replay:
        return replace(replay, balance=account.balance), points + replay.entry.delta
    _expire_member(session, account, now)
    own = list(session.scalars(
        select(PointsLot).join(PointsEntry, PointsEntry.id == PointsLot.entry_id)
        .where(PointsEntry.source_ref == source_ref, PointsLot.remaining > 0).order_by(PointsLot.id)
    ))
    take = min(points, account.balance)
    unrecovered = points - take
    account.debt += unrecovered
    if take == 0:
        return None, unrecovered
    entry = _consume(session, account, take, "reversal", source_ref, idempotency_key, now, note, lots=own)
    return Posted(entry, balance=account.balance), unrecovered


def _open_lots(session: Session, member_id: int, now: datetime) -> list[PointsLot]:
    return list(session.scalars(
        select(PointsLot)
        .where(PointsLot.member_id == member_id, PointsLot.remaining > 0,
               (PointsLot.expires_at.is_(None)) | (PointsLot.expires_at > now))
        .order_by(PointsLot.expires_at.is_(None), PointsLot.expires_at, PointsLot.id)
    ))


def _consume(session: Session, account: PointsAccount, points: int, reason: str, source_ref: str,
             key: str, now: datetime, note: str | None, lots: list[PointsLot] | None = None) -> PointsEntry:
    entry = _append(session, account, -points, reason, source_ref, key, now, note)
    preferred = lots or []
    seen = {lot.id for lot in preferred}
    left = points
    for lot in [*preferred, *(lot for lot in _open_lots(session, account.member_id, now) if lot.id not in seen)]:
        if left == 0:
            break
        take = min(left, lot.remaining)
        if take == 0:
            continue
        lot.remaining -= take
        left -= take
        session.add(PointsAllocation(debit_entry_id=entry.id, lot_id=lot.id, amount=take))
    if left:  # the balance said yes but the lots say no: the ledger is corrupt, stop here
        raise RuntimeError(f"points lots of member {account.member_id} do not cover the balance")
    session.flush()
    return entry


# --- expiry ----------------------------------------------------------------------------------------

def _expire_member(session: Session, account: PointsAccount, now: datetime) -> int:
    if account.expiry_check_at is None or account.expiry_check_at > now:
        return 0  # nothing can be due
    due = list(session.scalars(
        select(PointsLot).where(PointsLot.member_id == account.member_id, PointsLot.remaining > 0,
                                PointsLot.expires_at <= now).order_by(PointsLot.id)
    ))
    for lot in due:
        amount = lot.remaining
        entry = _append(session, account, -amount, "expiry", f"lot:{lot.id}", f"expiry:lot:{lot.id}", now,
                        None)
        lot.remaining = 0
        session.add(PointsAllocation(debit_entry_id=entry.id, lot_id=lot.id, amount=amount))
    session.flush()
    account.expiry_check_at = session.scalar(
        select(func.min(PointsLot.expires_at))
        .where(PointsLot.member_id == account.member_id, PointsLot.remaining > 0))
    return len(due)


def expire_due(session: Session, now: datetime, member_id: int | None = None, limit: int = 1000) -> int:
    """Expire the lots due by ``now`` (one member's, or up to ``limit`` members'); return lots expired."""
    query = (select(PointsLot.member_id).where(PointsLot.remaining > 0, PointsLot.expires_at <= now)
             .distinct().limit(limit))
    if member_id is not None:
        query = query.where(PointsLot.member_id == member_id)
    expired = 0
    for mid in list(session.scalars(query)):
        expired += _expire_member(session, _lock_account(session, mid), now)
    return expired


# --- reading ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Expiring:
    points: int
    expires_at: datetime


def balance(session: Session, member_id: int) -> int:
    return owed_and_balance(session, member_id)[1]


def owed_and_balance(session: Session, member_id: int) -> tuple[int, int]:
    """The member's (debt, balance), read from the database (never from a cached object)."""
    row = session.execute(select(PointsAccount.debt, PointsAccount.balance)
                          .where(PointsAccount.member_id == member_id)).first()
    return (row[0], row[1]) if row else (0, 0)


def expiring_soon(session: Session, settings: Settings, member_id: int, now: datetime) -> list[Expiring]:
    """Points that expire within the configured window, grouped by expiry instant."""
    horizon = now + timedelta(days=settings.points.expiring_soon_days)
    rows = session.execute(
        select(PointsLot.expires_at, func.sum(PointsLot.remaining))
        .where(PointsLot.member_id == member_id, PointsLot.remaining > 0,
               PointsLot.expires_at > now, PointsLot.expires_at <= horizon)
        .group_by(PointsLot.expires_at).order_by(PointsLot.expires_at)
    )
    return [Expiring(int(total), at) for at, total in rows]


def history(session: Session, member_id: int, *, before_id: int | None, limit: int) -> list[PointsEntry]:
    """Entries newest first; page with ``before_id`` (the last id of the previous page)."""
    query = select(PointsEntry).where(PointsEntry.member_id == member_id)
    if before_id is not None:
        query = query.where(PointsEntry.id < before_id)
    return list(session.scalars(query.order_by(PointsEntry.id.desc()).limit(limit)))


def lapsed_from(session: Session, source_ref: str) -> int:
    """Points that the lots credited for ``source_ref`` lost to expiry, unspent."""
    lot_entry = PointsEntry.__table__.alias("lot_entry")
    debit_entry = PointsEntry.__table__.alias("debit_entry")
    # int(): PostgreSQL sums bigints as numeric, and the ledger takes integers only.
    return int(session.scalar(
        select(func.coalesce(func.sum(PointsAllocation.amount), 0))
        .join(PointsLot, PointsLot.id == PointsAllocation.lot_id)
        .join(lot_entry, lot_entry.c.id == PointsLot.entry_id)
        .join(debit_entry, debit_entry.c.id == PointsAllocation.debit_entry_id)
        .where(lot_entry.c.source_ref == source_ref, debit_entry.c.reason == "expiry")
    ) or 0)


def check_invariants(session: Session, member_id: int | None = None) -> list[str]:
    """Return every way the ledger breaks its invariants (an empty list when it is sound)."""
    problems: list[str] = []
    accounts = select(PointsAccount)
    if member_id is not None:
        accounts = accounts.where(PointsAccount.member_id == member_id)
    for account in session.scalars(accounts):
        mid = account.member_id
        entries = list(session.execute(
            select(PointsEntry.id, PointsEntry.delta, PointsEntry.balance_after)
            .where(PointsEntry.member_id == mid).order_by(PointsEntry.id)))
        running = 0
        for entry_id, delta, after in entries:
            running += delta
            if after != running:
                problems.append(f"member {mid}: entry {entry_id} balance_after {after} != running sum {running}")
            if running < 0:
                problems.append(f"member {mid}: balance negative ({running}) after entry {entry_id}")
        if account.balance != running:
            problems.append(f"member {mid}: account balance {account.balance} != sum of entries {running}")
        lots_total = session.scalar(select(func.coalesce(func.sum(PointsLot.remaining), 0))
                                    .where(PointsLot.member_id == mid))
        if lots_total != account.balance:
            problems.append(f"member {mid}: lots hold {lots_total} but balance is {account.balance}")
        first_expiry = session.scalar(select(func.min(PointsLot.expires_at))
                                      .where(PointsLot.member_id == mid, PointsLot.remaining > 0))
        if first_expiry is not None and (account.expiry_check_at is None or account.expiry_check_at > first_expiry):
            problems.append(f"member {mid}: expiry_check_at {account.expiry_check_at} is after a lot's expiry "
                            f"{first_expiry}")
    lot_rows = select(PointsLot.id, PointsLot.amount, PointsLot.remaining,
                      func.coalesce(select(func.sum(PointsAllocation.amount))
                                    .where(PointsAllocation.lot_id == PointsLot.id).scalar_subquery(), 0))
    if member_id is not None:
        lot_rows = lot_rows.where(PointsLot.member_id == member_id)
    for lot_id, amount, remaining, allocated in session.execute(lot_rows):
        if amount - allocated != remaining:
            problems.append(f"lot {lot_id}: amount {amount} - allocated {allocated} != remaining {remaining}")
    debit_rows = (select(PointsEntry.id, PointsEntry.delta,
                         func.coalesce(select(func.sum(PointsAllocation.amount))
                                       .where(PointsAllocation.debit_entry_id == PointsEntry.id)
                                       .scalar_subquery(), 0))
                  .where(PointsEntry.delta < 0))
    if member_id is not None:
        debit_rows = debit_rows.where(PointsEntry.member_id == member_id)
    for entry_id, delta, allocated in session.execute(debit_rows):
        if allocated != -delta:
            problems.append(f"entry {entry_id}: debit {-delta} allocated {allocated}")
    return problems
