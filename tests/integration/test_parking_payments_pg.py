"""Parking payments under concurrency on PostgreSQL: one active payment per stay, points held once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from factories import parked_car_for_pay, race, wide_runtime
from redis import Redis
from sqlalchemy import func, select

from mallapp.adapters.parking_outside import ParkingOutside
from mallapp.domain import members, points
from mallapp.domain.parking import payments
from mallapp.domain.parking.models import ParkingBenefit, ParkingPayment
from mallapp.errors import Conflict
from mallapp.runtime import Runtime
from mallapp.settings import Settings

pytestmark = pytest.mark.postgres

WORKERS = 20
PLATE = "沪A12345"


@pytest.fixture
def backend() -> str:
    return "postgresql"


@pytest.fixture
def rt(settings: Settings, redis_client: Redis, clock, emulator) -> Iterator[Runtime]:
    clock.now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai: the stay is in the day band
    yield from wide_runtime(settings, redis_client, clock, WORKERS)


def _member_with_car(rt) -> int:
    """A member with 6,000 points whose car has been parked 190 minutes (35.00; an hour of points is 10.00)."""
    with rt.sessions.begin() as session:
        member_id = members.sign_in(session, openid="o-racer", unionid=None, now=rt.now())[0].id
        points.credit(session, rt.settings, member_id, 6000, "adjustment", source_ref="setup",
                      idempotency_key="setup:o-racer", now=rt.now())
    parked_car_for_pay(rt, None, PLATE, minutes=190, member_id=member_id, fee_source="mall")
    return member_id


def _pay(rt, member_id: int, key: str) -> dict:
    request = payments.Request(plate=PLATE, member_id=member_id, expected_cash_fen=2500, idempotency_key=key,
                               points_hours=1)
    return payments.create(rt.sessions, rt.settings, ParkingOutside(rt.carpark, lambda: rt.wechatpay), request,
                           now=rt.now())


def test_concurrent_payments_of_one_stay_make_exactly_one_and_hold_points_once(rt):
    member_id = _member_with_car(rt)
    results = race(WORKERS, lambda i: _pay(rt, member_id, f"race-key-{i:03d}"))
    made = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if not isinstance(r, dict)]
    assert len(made) == 1 and made[0]["status"] == "pending", results
    assert all(isinstance(r, Conflict) and r.code == "parking.payment_pending" for r in refused), refused
    with rt.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ParkingPayment)) == 1
        assert session.scalar(select(func.count()).select_from(ParkingBenefit)) == 1
        assert points.balance(session, member_id) == 6000 - 600


def test_concurrent_retries_with_one_key_return_the_same_payment(rt):
    member_id = _member_with_car(rt)
    results = race(WORKERS, lambda i: _pay(rt, member_id, "one-key-for-all"))
    assert all(isinstance(r, dict) for r in results), results
    assert len({r["order_id"] for r in results}) == 1
    assert sum(not r["replayed"] for r in results) == 1
    with rt.sessions() as session:
        assert points.balance(session, member_id) == 6000 - 600
