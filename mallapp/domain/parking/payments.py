"""Paying a parking bill: benefits first (points held, coupons used), WeChat Pay for the rest, then the car park.

A payment moves through these states (``parking_payments.status``)::

    pending ──cash paid (notify, or the clock's query)──▶ paying ──car park took it──▶ paid
       │                                                    │
       └──never paid (the clock, after pending_timeout)──▶ abandoned     └──car park refused──▶ failed
    (no cash due: created as paying)

Failed and abandoned payments give back what they held: the points through the ledger (a credit of
exactly the points held, idempotent by the order id), the coupons, and the benefit rows are voided
so the caps no longer count them; a failed payment whose cash was taken is refunded. A car park
that does not answer (CarParkUnavailable) leaves the outcome unknown: the payment stays ``paying``
and the clock sends the same order id again, which the car park answers with its first result.

Outside systems (the car park, WeChat Pay) are reached through an :class:`Outside` the caller
passes in, and only between transactions: each step here opens its own short unit of work on
``sessions``, never holding a database transaction across a call out.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mallapp.domain import points
from mallapp.domain.parking import coupons as parking_coupons
from mallapp.domain.parking import plates, quotes
from mallapp.domain.parking.models import ParkingBenefit, ParkingPayment, ParkingSession
from mallapp.errors import (
    AlreadyPaid,
    AmountMismatch,
    BillChanged,
    CarParkUnavailable,
    Conflict,
    Forbidden,
    NotFound,
    OrderReused,
    PlateNotFound,
    RuleViolation,
    SignatureRefused,
)
from mallapp.settings import Settings

__all__ = ["Outside", "PayState", "Receipt", "Request", "create", "get", "paid", "run_due", "settle"]

REFUSALS = (AlreadyPaid, AmountMismatch, BillChanged, OrderReused, PlateNotFound)
UNKNOWN = (CarParkUnavailable, SignatureRefused)


@dataclass(frozen=True)
class Receipt:
    trade_no: str
    paid_at: datetime


@dataclass(frozen=True)
class PayState:
    """WeChat Pay's answer about an order: paid or not, and its transaction."""

    paid: bool
    total_fen: int = 0
    transaction_id: str | None = None
    success_time: datetime | None = None


class Outside(Protocol):
    """The car park and WeChat Pay as a payment needs them (mallapp.adapters.parking_outside builds one)."""

    def bill(self, vendor_park_code: str, plate: str) -> quotes.Bill: ...
    def pay_carpark(self, vendor_park_code: str, *, plate: str, order_no: str, order_id: str, paid_fen: int,
                    items: Sequence[dict[str, Any]]) -> Receipt: ...
    def create_order(self, *, order_id: str, description: str, total_fen: int, openid: str | None,
                     expires_at: datetime) -> dict[str, Any]: ...
    def query_order(self, order_id: str) -> PayState: ...
    def close_order(self, order_id: str) -> None: ...
    def refund(self, *, order_id: str, refund_no: str, refund_fen: int, total_fen: int, reason: str) -> str: ...


@dataclass(frozen=True)
class Request:
    plate: str
    member_id: int | None
    expected_cash_fen: int
    idempotency_key: str
    points_hours: int = 0
    coupon_ids: tuple[int, ...] = ()
    wants_jsapi: bool = False  # a public payer inside the mini-program (a wx.login code was sent)

    def fingerprint(self) -> str:
        body = [plates.normalize(self.plate), self.member_id, self.expected_cash_fen, self.points_hours,
                list(self.coupon_ids), self.wants_jsapi]
        return hashlib.sha256(json.dumps(body, ensure_ascii=False).encode()).hexdigest()


# --- reading ------------------------------------------------------------------------------------------

def view(session: Session, payment: ParkingPayment, *, replayed: bool = False) -> dict[str, Any]:
    stay = session.get(ParkingSession, payment.session_id)
    return {"order_id": payment.order_id, "status": payment.status, "payer": payment.payer,
            "plate": plates.masked(stay.plate) if stay else "", "gross_fen": payment.gross_fen,
            "discount_fen": payment.discount_fen, "cash_fen": payment.cash_fen, "points": payment.points,
            "items": payment.items, "prepay": payment.prepay, "failure_code": payment.failure_code,
            "refunded_fen": payment.refunded_fen, "created_at": payment.created_at, "paid_at": payment.paid_at,
            "settled_at": payment.settled_at, "replayed": replayed}


def get(session: Session, order_id: str) -> dict[str, Any]:
    payment = session.scalar(select(ParkingPayment).where(ParkingPayment.order_id == order_id))
    if payment is None:
        raise NotFound("No such parking payment.", code="parking.payment_not_found")
    return view(session, payment)


def _by_key(session: Session, request: Request) -> dict[str, Any] | None:
    payment = session.scalar(select(ParkingPayment).where(ParkingPayment.idempotency_key == request.idempotency_key))
    if payment is None:
        return None
    if payment.request_hash != request.fingerprint():
        raise Conflict("This idempotency key was used for another payment request.",
                       code="parking.idempotency_mismatch")
    return view(session, payment, replayed=True)


def _lock(session: Session, order_id: str) -> ParkingPayment | None:
    return session.scalar(select(ParkingPayment).where(ParkingPayment.order_id == order_id).with_for_update()
                          .execution_options(populate_existing=True))


# --- creating -----------------------------------------------------------------------------------------

def _next_seq(session: Session, stay: quotes.OpenStay, now: datetime) -> int:
    """The seq of a new payment of the stay; refuse while one is active (pending, paying, or paid within grace)."""
    latest = session.scalar(select(ParkingPayment).where(ParkingPayment.session_id == stay.session_id,
                                                         ParkingPayment.status.in_(("pending", "paying", "paid")))
                            .order_by(ParkingPayment.seq.desc()).limit(1))
    if latest is None:
        return 1
    if latest.status != "paid":
        raise Conflict("A payment for this stay is under way.", code="parking.payment_pending",
                       details={"order_id": latest.order_id})
    if latest.settled_at and now <= latest.settled_at + timedelta(minutes=stay.tariff.grace_minutes):
        raise Conflict("This stay is paid; leave within the grace period.", code="parking.already_paid")
    return latest.seq + 1


def _new_order_id(now: datetime) -> str:
    return f"PK{now:%y%m%d}{secrets.token_hex(10)}"  # unguessable: the public reads a payment by it


def _record(session: Session, settings: Settings, request: Request, quote: quotes.Quote, seq: int,
            now: datetime) -> ParkingPayment:
    result = quote.breakdown
    payment = ParkingPayment(
        session_id=quote.stay.session_id, seq=seq, order_id=_new_order_id(now), member_id=request.member_id,
        payer="member" if request.member_id else "public", status="pending" if result.cash_fen else "paying",
        gross_fen=quote.due_fen, discount_fen=result.discount_fen, cash_fen=result.cash_fen, points=result.points,
        items=[item.as_dict() for item in result.items], quoted_at=now, refunded_fen=0,
        idempotency_key=request.idempotency_key, request_hash=request.fingerprint(),
        local_day=settings.mall.local_day(now), created_at=now)
    session.add(payment)
    session.flush()
    if request.member_id is None:
        return payment
    if result.points:
        points.redeem(session, request.member_id, result.points, source_ref=f"parking:{payment.order_id}",
                      idempotency_key=f"parking:{payment.order_id}:hold", now=now, note="停车缴费 / Parking")
    used = [item.coupon_id for item in result.items if item.coupon_id is not None]
    parking_coupons.use(session, used, member_id=request.member_id, payment_id=payment.id, now=now)
    session.add_all(ParkingBenefit(payment_id=payment.id, session_id=payment.session_id, member_id=request.member_id,
                                   kind=item.kind, seconds=item.seconds, fen=item.value_fen, points=item.points,
                                   coupon_id=item.coupon_id, local_day=payment.local_day, created_at=now)
                    for item in result.items)
    session.flush()
    return payment


def _jsonable(quote: quotes.Quote) -> dict[str, Any]:
    return json.loads(json.dumps(quote.as_dict(), default=lambda value: value.isoformat()))


def create(sessions: sessionmaker[Session], settings: Settings, outside: Outside, request: Request, *,
           now: datetime, openid: str | None = None) -> dict[str, Any]:
    """Create a payment for the plate's open stay (or return the first result of this idempotency key)."""
    with sessions.begin() as session:
        if (replay := _by_key(session, request)) is not None:
            return replay
        stay = quotes.find_open(session, request.plate)  # before asking the car park: a plate not parked is a 404
        if request.member_id is not None and stay.bound_member_id != request.member_id:
            raise Forbidden("This plate is not bound to you.", code="parking.plate_not_yours")
    bill = outside.bill(stay.vendor_park_code, stay.plate) if stay.fee_source == "carpark" else None
    try:
        with sessions.begin() as session:
            locked = session.scalar(select(ParkingSession).where(ParkingSession.id == stay.session_id)
                                    .with_for_update().execution_options(populate_existing=True))
            if locked is None or locked.exited_at is not None:
                raise NotFound("No car with this plate is parked here.", code="parking.no_session")
            if (replay := _by_key(session, request)) is not None:  # a retry that waited for the first's lock
                return replay
            seq = _next_seq(session, stay, now)
            stay = replace(stay, paid_before=seq > 1)  # read under the lock, not before it
            facts = None if request.member_id is None else quotes.facts_of(
                session, settings, request.member_id, stay, now, points_hours=request.points_hours,
                coupon_ids=request.coupon_ids, lock_coupons=True)
            quote = quotes.quote(session, settings, stay, now, bill=bill, facts=facts, member_id=request.member_id)
            if quote.due_fen == 0:
                if seq > 1:
                    raise Conflict("This stay is paid.", code="parking.already_paid")
                raise RuleViolation("Nothing is due for this stay yet.", code="parking.nothing_due")
            if quote.cash_fen != request.expected_cash_fen:
                raise Conflict("The amount changed since the quote; here is the new one.",
                               code="parking.quote_changed", details={"quote": _jsonable(quote)})
            payment = _record(session, settings, request, quote, seq, now)
            order_id, cash = payment.order_id, payment.cash_fen
    except IntegrityError:  # a concurrent payment of the stay won the race past the lock (the partial index)
        raise Conflict("A payment for this stay is under way.", code="parking.payment_pending") from None
    if cash == 0:
        settle(sessions, settings, outside, order_id, now=now)
    else:
        _order(sessions, settings, outside, order_id, stay.plate, cash, openid, now)
    with sessions.begin() as session:
        return get(session, order_id)


def _order(sessions: sessionmaker[Session], settings: Settings, outside: Outside, order_id: str, plate: str,
           cash: int, openid: str | None, now: datetime) -> None:
    """Ask WeChat Pay for the order and keep its answer; a refusal gives back what the payment held."""
    expires = now + timedelta(minutes=settings.parking.pending_timeout_minutes)
    try:
        prepay = outside.create_order(order_id=order_id, description=f"停车费 Parking {plates.masked(plate)}",
                                      total_fen=cash, openid=openid, expires_at=expires)
    except Exception as exc:
        _end(sessions, settings, outside, order_id, "failed", getattr(exc, "code", "wechatpay.unavailable"), now)
        raise
    with sessions.begin() as session:
        payment = _lock(session, order_id)
        if payment is not None:
            payment.prepay = prepay


# --- settling -----------------------------------------------------------------------------------------

def _carpark_items(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"code": item["code"], "name": item["name"], "seconds": item["seconds"],
             "fen": 0 if item["seconds"] else item["fen"]} for item in items]


def settle(sessions: sessionmaker[Session], settings: Settings, outside: Outside, order_id: str, *,
           now: datetime) -> str:
    """Tell the car park about a ``paying`` payment; return its status afterwards."""
    with sessions.begin() as session:
        payment = session.scalar(select(ParkingPayment).where(ParkingPayment.order_id == order_id))
        if payment is None or payment.status != "paying":
            return payment.status if payment else "missing"
        stay = session.get(ParkingSession, payment.session_id)
        park = quotes.park_of(session, stay.car_park_id)
        call = dict(plate=stay.plate, order_no=stay.order_no, order_id=order_id, paid_fen=payment.cash_fen,
                    items=_carpark_items(payment.items))
    try:
        receipt = outside.pay_carpark(park.vendor_park_code, **call)
    except UNKNOWN:
        return "paying"  # the outcome is unknown: the clock sends the same order id again
    except REFUSALS as refused:
        return _end(sessions, settings, outside, order_id, "failed", refused.code, now)
    with sessions.begin() as session:
        payment = _lock(session, order_id)
        if payment is None or payment.status != "paying":
            return payment.status if payment else "missing"
        payment.status, payment.carpark_trade_no, payment.settled_at = "paid", receipt.trade_no, now
        session.execute(update(ParkingSession).where(ParkingSession.id == payment.session_id).values(paid_at=now))
        return "paid"


def _held_expiry(session: Session, order_id: str) -> datetime | None:
    """When the points a payment held would have expired: the latest of the lots they came from."""
    rows = session.execute(
        select(points.PointsLot.expires_at)
        .join(points.PointsAllocation, points.PointsAllocation.lot_id == points.PointsLot.id)
        .join(points.PointsEntry, points.PointsEntry.id == points.PointsAllocation.debit_entry_id)
        .where(points.PointsEntry.idempotency_key == f"parking:{order_id}:hold")).scalars().all()
    return None if not rows or any(at is None for at in rows) else max(rows)


def give_back(session: Session, settings: Settings, payment: ParkingPayment, now: datetime) -> None:
    """Return the points and coupons a payment held and void its benefit rows. Safe to repeat."""
    if payment.member_id is not None and payment.points:
        points.credit(session, settings, payment.member_id, payment.points, "reversal",
                      source_ref=f"parking:{payment.order_id}", idempotency_key=f"parking:{payment.order_id}:give-back",
                      now=now, note="停车缴费未完成，积分退回 / Parking payment not completed: points returned", expires_at=_held_expiry(session, payment.order_id))
    parking_coupons.give_back(session, payment.id, now)
    session.execute(update(ParkingBenefit).where(ParkingBenefit.payment_id == payment.id,
                                                 ParkingBenefit.voided_at.is_(None)).values(voided_at=now))


def _end(sessions: sessionmaker[Session], settings: Settings, outside: Outside, order_id: str, status: str,
         code: str | None, now: datetime) -> str:
    """Fail or abandon an unfinished payment: give back what it held; refund cash already taken."""
    with sessions.begin() as session:
        payment = _lock(session, order_id)
        if payment is None or payment.status not in ("pending", "paying"):
            return payment.status if payment else "missing"
        payment.status, payment.failure_code, payment.settled_at = status, code, now
        give_back(session, settings, payment, now)
    _refund(sessions, outside, order_id)
    return status


def _refund(sessions: sessionmaker[Session], outside: Outside, order_id: str) -> None:
    """Refund the cash of an ended payment that WeChat Pay took; the clock retries one that did not go through."""
    with sessions.begin() as session:
        payment = _lock(session, order_id)
        if (payment is None or payment.status not in ("failed", "abandoned") or payment.paid_at is None
                or payment.refunded_fen >= payment.cash_fen):
            return
        payment.refund_no = payment.refund_no or f"R{order_id}"
        call = dict(order_id=order_id, refund_no=payment.refund_no, refund_fen=payment.cash_fen,
                    total_fen=payment.cash_fen, reason="停车场未接受 / car park refused the payment")
    try:
        status = outside.refund(**call)
    except Exception:  # noqa: BLE001 (the clock retries; nothing is lost)
        return
    # PROCESSING: the money is on its way; it counts once WeChat Pay says SUCCESS (the refund notification,
    # or the clock asking again with the same refund number).
    if status == "SUCCESS":
        _mark_refunded(sessions, ParkingPayment.order_id == order_id)


def _mark_refunded(sessions: sessionmaker[Session], which: Any) -> int:
    with sessions.begin() as session:
        return session.execute(update(ParkingPayment).where(which, ParkingPayment.status.in_(("failed", "abandoned")))
                               .values(refunded_fen=ParkingPayment.cash_fen)).rowcount


def refunded(sessions: sessionmaker[Session], refund_no: str) -> bool:
    """WeChat Pay's notification that a refund reached the payer: the payment's cash counts as refunded."""
    return _mark_refunded(sessions, ParkingPayment.refund_no == refund_no) > 0


def paid(sessions: sessionmaker[Session], settings: Settings, outside: Outside, order_id: str, state: PayState, *,
         now: datetime) -> str:
    """WeChat Pay took the cash (its notification, or the clock's query): settle with the car park."""
    with sessions.begin() as session:
        payment = _lock(session, order_id)
        if payment is None:
            raise NotFound("No such parking payment.", code="parking.payment_not_found")
        mismatch = state.total_fen != payment.cash_fen
        if payment.paid_at is None:
            payment.paid_at = state.success_time or now
            payment.wechat_transaction_id = state.transaction_id
            if payment.status == "pending" and not mismatch:
                payment.status = "paying"
        status = payment.status
    if status == "pending":  # WeChat Pay took another amount than the payment's cash: never settle it
        return _end(sessions, settings, outside, order_id, "failed", "wechatpay.amount_mismatch", now)
    if status in ("failed", "abandoned"):  # paid after it ended: give the money back
        _refund(sessions, outside, order_id)
        return status
    return settle(sessions, settings, outside, order_id, now=now)


# --- the clock ----------------------------------------------------------------------------------------

def _abandon_or_settle(sessions: sessionmaker[Session], settings: Settings, outside: Outside, order_id: str,
                       now: datetime) -> None:
    try:
        state = outside.query_order(order_id)
    except NotFound:
        state = PayState(paid=False)
    if state.paid:
        paid(sessions, settings, outside, order_id, state, now=now)
        return
    outside.close_order(order_id)
    _end(sessions, settings, outside, order_id, "abandoned", "wechatpay.not_paid", now)


def run_due(sessions: sessionmaker[Session], settings: Settings, outside: Outside, now: datetime,
            limit: int = 200) -> int:
    """The clock: close or settle stale pending payments, resend paying ones, retry refunds. Returns how many."""
    stale = now - timedelta(minutes=settings.parking.pending_timeout_minutes)
    with sessions.begin() as session:
        pending = session.scalars(select(ParkingPayment.order_id).where(
            ParkingPayment.status == "pending", ParkingPayment.created_at <= stale).limit(limit)).all()
        paying = session.scalars(select(ParkingPayment.order_id).where(
            ParkingPayment.status == "paying", ParkingPayment.created_at <= now - timedelta(minutes=1))
            .limit(limit)).all()
        refunds = session.scalars(select(ParkingPayment.order_id).where(
            ParkingPayment.status.in_(("failed", "abandoned")), ParkingPayment.paid_at.is_not(None),
            ParkingPayment.refunded_fen < ParkingPayment.cash_fen).limit(limit)).all()
    done = 0
    for order_id in pending:
        try:
            _abandon_or_settle(sessions, settings, outside, order_id, now)
            done += 1
        except UNKNOWN + (Conflict,):
            continue
        except Exception as exc:  # noqa: BLE001 (WeChat Pay unreachable: the next run tries again)
            if getattr(exc, "code", "").startswith("wechatpay."):
                continue
            raise
    for order_id in paying:
        done += settle(sessions, settings, outside, order_id, now=now) != "paying"
    for order_id in refunds:
        _refund(sessions, outside, order_id)
        done += 1
    return done

