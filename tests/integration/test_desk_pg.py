"""The service desk on PostgreSQL: concurrent adjustments and hand-overs, and searches that read indexes.

Races: real threads, each in its own transaction, released together; assertions are about outcomes
(what succeeded, what the ledger holds), never about timing. Plans: the search's query for each key is
explained with sequential scans priced out, and must then read an index, not the members table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from factories import race_in_transactions, wide_runtime
from redis import Redis
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from mallapp.domain import desk, gifts, members, ops, points
from mallapp.domain.desk import PointsAdjustment
from mallapp.errors import Conflict, RuleViolation
from mallapp.runtime import Runtime
from mallapp.settings import Settings

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("cheap_password_hashing")]

WORKERS = 30


@pytest.fixture
def backend() -> str:
    return "postgresql"


@pytest.fixture
def rt(settings: Settings, redis_client: Redis, clock) -> Iterator[Runtime]:
    """A runtime whose pool lets every worker hold a connection at once; the ledger is checked after."""
    yield from wide_runtime(settings, redis_client, clock, WORKERS)


@pytest.fixture
def desk_user(rt) -> int:
    with rt.sessions.begin() as session:
        return ops.create_user(session, "desk-1", "desk", "a long enough passphrase", rt.now()).id


def _member(rt, credit: int = 0, openid: str = "o-desk") -> int:
    with rt.sessions.begin() as session:
        member, _ = members.sign_in(session, openid=openid, unionid=None, now=rt.now())
        if credit:
            points.credit(session, rt.settings, member.id, credit, "adjustment", source_ref="setup",
                          idempotency_key=f"setup:{openid}", now=rt.now())
        return member.id


def test_concurrent_desk_debits_never_overdraw(rt, desk_user):
    member_id = _member(rt, credit=1000)

    def debit(session, i: int):
        return desk.adjust_points(session, rt.settings, member_id, ops_user_id=desk_user, delta=-100,
                                  reason="race", idempotency_key=f"debit-{i}", now=rt.now())

    results = race_in_transactions(rt, WORKERS, debit)
    refused = [r for r in results if isinstance(r, RuleViolation)]
    assert {r.code for r in refused} == {"points.insufficient"}
    assert (WORKERS - len(refused), len(refused)) == (10, WORKERS - 10)
    with rt.sessions.begin() as session:
        assert points.balance(session, member_id) == 0
        assert session.query(PointsAdjustment).count() == 10


def test_concurrent_adjustments_with_one_key_post_once(rt, desk_user):
    member_id = _member(rt)

    def credit(session, i: int):
        done = desk.adjust_points(session, rt.settings, member_id, ops_user_id=desk_user, delta=250,
                                  reason="goodwill", idempotency_key="one-tap", now=rt.now())
        return done.adjustment.id, done.replayed

    results = race_in_transactions(rt, WORKERS, credit)
    assert [r for r in results if isinstance(r, Exception)] == []
    assert len({adjustment_id for adjustment_id, _ in results}) == 1
    assert Counter(replayed for _, replayed in results) == {True: WORKERS - 1, False: 1}
    with rt.sessions.begin() as session:
        assert points.balance(session, member_id) == 250


def test_concurrent_hand_overs_hand_a_gift_over_once(rt, desk_user):
    member_id = _member(rt, credit=1000)
    with rt.sessions.begin() as session:
        redemption, _ = gifts.redeem_gift(session, rt.settings, member_id, gift_code="coffee", quantity=1,
                                          idempotency_key="g", now=rt.now())
        code = redemption.pickup_code

    def hand_over(session, i: int):
        return gifts.hand_over(session, code, ops_user_id=desk_user, request_id=f"desk-{i}", now=rt.now())[1]

    results = race_in_transactions(rt, WORKERS, hand_over)
    refused = [r for r in results if isinstance(r, Conflict)]
    assert {r.code for r in refused} == {"gift.already_handed_over"}
    assert (len(refused), results.count(False)) == (WORKERS - 1, 1)


# --- plans -----------------------------------------------------------------------------------------

def _plan(rt, q: str) -> str:
    """The plan of the search's own query for ``q``, with sequential scans priced out."""
    captured: list[Any] = []
    with rt.sessions.begin() as session:
        real = session.scalars

        def capture(statement, *args, **kwargs):
            captured.append(statement)
            return real(statement, *args, **kwargs)

        session.scalars = capture  # type: ignore[method-assign]
        desk.search(session, q, limit=20)
        sql = str(captured[0].compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
        session.execute(text("SET LOCAL enable_seqscan = off"))
        return "\n".join(row[0] for row in session.execute(text(f"EXPLAIN {sql}")))


@pytest.mark.parametrize("q", ["8000", "13800138000", "Lovelace", "ABCDEFGH", "123456"])
def test_each_search_key_reads_an_index_not_the_members_table(rt, q):
    member_id = _member(rt)
    with rt.sessions.begin() as session:
        member = members.get(session, member_id)
        members.set_phone(session, member, country_code="86", pure_number="13800138000")
        member.nickname = "Ada Lovelace"
        # A crowd with statistics, as a mall has: on a near-empty table the planner may rightly walk the primary
        # key, whatever indexes exist, so the plan would say nothing about them.
        session.execute(text(
            "INSERT INTO members (openid, referral_code, nickname, phone, phone_last4, gender, created_at) "
            "SELECT 'o-crowd-' || i, 'C' || lpad(to_hex(i), 7, '0'), 'shopper ' || md5(i::text), "
            "'+86139' || lpad(i::text, 8, '0'), right(lpad(i::text, 8, '0'), 4), 'unknown', now() "
            "FROM generate_series(1, 20000) AS i"))
    with rt.sessions.begin() as session:
        session.execute(text("ANALYZE members"))
    plan = _plan(rt, q)
    assert "Seq Scan on members" not in plan and "Index Cond" in plan, plan
