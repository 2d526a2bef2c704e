"""Ops accounts on PostgreSQL: a create retried at once makes one merchant, and two admins demoting each other
at once cannot leave the mall without an admin. Real threads, each in its own transaction, released together;
the assertions are about outcomes, never timing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from factories import race_in_transactions, wide_runtime
from redis import Redis
from sqlalchemy import func, select

from mallapp.domain import merchants, ops
from mallapp.errors import Conflict
from mallapp.runtime import Runtime
from mallapp.settings import Settings

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("cheap_password_hashing")]

WORKERS = 8


@pytest.fixture
def backend() -> str:
    return "postgresql"


@pytest.fixture
def rt(settings: Settings, redis_client: Redis, clock) -> Iterator[Runtime]:
    yield from wide_runtime(settings, redis_client, clock, WORKERS)


def test_the_same_create_sent_at_once_makes_one_merchant_and_one_key(rt):
    results = race_in_transactions(rt, WORKERS, lambda s, _i: merchants.create_once(s, "茶语小馆", rt.now(), "onboard-1"))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(r.replayed for r in results) == [False] + [True] * (WORKERS - 1)
    assert len({r.merchant.id for r in results}) == 1
    assert [r.api_key is not None for r in results if not r.replayed] == [True]
    with rt.sessions.begin() as s:
        assert s.scalar(select(func.count()).select_from(merchants.Merchant)) == 1


def test_two_admins_demoting_each_other_at_once_leave_one_admin(rt):
    with rt.sessions.begin() as s:
        ids = [ops.create_user(s, f"admin-{i}", "admin", "a long passphrase", rt.now()).id for i in range(2)]
    results = race_in_transactions(rt, 2, lambda s, i: ops.change_user(s, ids[1 - i], role="viewer").role)
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "str"], results
    assert [r.code for r in results if isinstance(r, Conflict)] == ["ops.last_admin"]
    with rt.sessions.begin() as s:
        assert s.scalar(select(func.count()).select_from(ops.OpsUser).where(ops.OpsUser.role == "admin")) == 1
