"""The points ledger and the services that post to it, on SQLite and on PostgreSQL.

Every test here takes ``rt`` (parametrized over both backends); its teardown asserts that
``points.check_invariants`` finds nothing wrong with the ledger the test leaves behind.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from mallapp.domain import checkin, gifts, members, merchants, points, purchases
from mallapp.domain.points import PointsAccount, PointsAllocation, PointsEntry, PointsLot
from mallapp.errors import Conflict, InvalidInput, NotFound, RuleViolation

SHANGHAI_2028 = datetime(2027, 12, 31, 16, 0, tzinfo=UTC)  # 1 Jan 2028 00:00 in Shanghai
SHANGHAI_2029 = datetime(2028, 12, 31, 16, 0, tzinfo=UTC)


# --- helpers ---------------------------------------------------------------------------------------

def new_member(rt, openid: str = "o-ledger-1", birthday: date | None = None) -> int:
    with rt.sessions.begin() as session:
        member, created = members.sign_in(session, openid=openid, unionid=None, now=rt.now())
        assert created
        member.birthday = birthday
        return member.id


def new_merchant(rt, name: str = "Starlight Coffee") -> int:
    with rt.sessions.begin() as session:
        row, _key = merchants.create(session, name, rt.now())
        return row.id


def credit(rt, member_id: int, amount: int, key: str, **kw) -> points.Posted:
    kw.setdefault("source_ref", f"test:{key}")
    with rt.sessions.begin() as session:
        return points.credit(session, rt.settings, member_id, amount, kw.pop("reason", "adjustment"),
                             idempotency_key=key, now=rt.now(), **kw)


def redeem(rt, member_id: int, amount: int, key: str) -> points.Posted:
    with rt.sessions.begin() as session:
        return points.redeem(session, member_id, amount, source_ref="gift:test", idempotency_key=key,
                             now=rt.now())


def account(rt, member_id: int) -> PointsAccount:
    with rt.sessions.begin() as session:
        return session.get(PointsAccount, member_id)


def balance(rt, member_id: int) -> int:
    with rt.sessions.begin() as session:
        return points.balance(session, member_id)


def entries(rt, member_id: int) -> list[tuple[str, int, int]]:
    """(reason, delta, balance_after) of the member's entries, oldest first."""
    with rt.sessions.begin() as session:
        rows = session.execute(select(PointsEntry.reason, PointsEntry.delta, PointsEntry.balance_after)
                               .where(PointsEntry.member_id == member_id).order_by(PointsEntry.id))
        return [tuple(r) for r in rows]


def lots(rt, member_id: int) -> list[PointsLot]:
    with rt.sessions.begin() as session:
        return list(session.scalars(select(PointsLot).where(PointsLot.member_id == member_id)
                                    .order_by(PointsLot.id)))


def count(rt, model, *where) -> int:
    with rt.sessions.begin() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def record(rt, merchant_id: int, member_id: int, receipt_no: str, amount_fen: int,
           occurred_at: datetime | None = None) -> purchases.Recorded:
    with rt.sessions.begin() as session:
        return purchases.record_purchase(session, rt.settings, merchant_id=merchant_id, member_id=member_id,
                                         receipt_no=receipt_no, amount_fen=amount_fen,
                                         occurred_at=occurred_at or rt.now(), now=rt.now())


def refund(rt, merchant_id: int, receipt_no: str, refund_no: str, amount_fen: int) -> purchases.Refunded:
    with rt.sessions.begin() as session:
        return purchases.refund(session, merchant_id=merchant_id, receipt_no=receipt_no, refund_no=refund_no,
                                amount_fen=amount_fen, now=rt.now())


def check_in(rt, member_id: int, at: datetime | None = None, position=None) -> checkin.CheckedIn:
    if at is not None:
        rt.clock.now = at
    with rt.sessions.begin() as session:
        return checkin.check_in(session, rt.settings, member_id, now=rt.now(), position=position)


@pytest.fixture
def member_id(rt) -> int:
    return new_member(rt)


@pytest.fixture
def merchant_id(rt) -> int:
    return new_merchant(rt)


# --- credit and debit ------------------------------------------------------------------------------

def test_credit_posts_an_entry_and_a_lot_expiring_at_the_end_of_next_year_in_mall_time(rt, member_id):
    posted = credit(rt, member_id, 120, "c1", reason="referral", source_ref="referral:7")

    assert not posted.replayed
    entry = posted.entry
    assert (entry.delta, entry.balance_after, entry.reason, entry.source_ref) == (120, 120, "referral", "referral:7")
    assert entry.created_at == rt.now()
    [lot] = lots(rt, member_id)
    assert (lot.entry_id, lot.amount, lot.remaining) == (entry.id, 120, 120)
    # Earned in 2026 (Shanghai): expires when 2028 begins in Shanghai.
    assert lot.expires_at == SHANGHAI_2028
    assert lot.expires_at == points.expiry_for(rt.settings, rt.now())
    assert account(rt, member_id).balance == 120


def test_credit_accepts_an_explicit_expiry_or_none_for_never(rt, member_id):
    soon = rt.now() + timedelta(days=30)
    credit(rt, member_id, 10, "c-soon", expires_at=soon)
    credit(rt, member_id, 20, "c-never", expires_at=None)

    assert [(lot.amount, lot.expires_at) for lot in lots(rt, member_id)] == [(10, soon), (20, None)]


@pytest.mark.parametrize("settings_overrides", [{"points": {"expiry_policy": "never"}}])
def test_credit_lot_never_expires_when_policy_is_never(rt, member_id):
    credit(rt, member_id, 10, "c1")
    [lot] = lots(rt, member_id)
    assert lot.expires_at is None


def test_debit_consumes_the_soonest_expiring_lots_first(rt, member_id):
    credit(rt, member_id, 100, "c-2026")                       # expires 2028
    rt.clock.now = datetime(2027, 2, 1, 4, 0, tzinfo=UTC)
    credit(rt, member_id, 100, "c-2027")                       # expires 2029
    credit(rt, member_id, 100, "c-forever", expires_at=None)   # never expires: spent last
    credit(rt, member_id, 100, "c-soon", expires_at=rt.now() + timedelta(days=10))  # newest, expires first

    redeem(rt, member_id, 150, "r1")
    assert [lot.remaining for lot in lots(rt, member_id)] == [50, 100, 100, 0]
    redeem(rt, member_id, 120, "r2")
    assert [lot.remaining for lot in lots(rt, member_id)] == [0, 30, 100, 0]
    redeem(rt, member_id, 100, "r3")
    assert [lot.remaining for lot in lots(rt, member_id)] == [0, 0, 30, 0]

    with rt.sessions.begin() as session:
        r1 = session.scalar(select(PointsEntry.id).where(PointsEntry.idempotency_key == "r1"))
        allocated = session.execute(select(PointsAllocation.lot_id, PointsAllocation.amount)
                                    .where(PointsAllocation.debit_entry_id == r1).order_by(PointsAllocation.id))
        by_lot = [(lot_id, amount) for lot_id, amount in allocated]
    lot_ids = [lot.id for lot in lots(rt, member_id)]
    assert by_lot == [(lot_ids[3], 100), (lot_ids[0], 50)]
    assert balance(rt, member_id) == 30


def test_redeem_rejects_overdraft_with_points_insufficient_and_changes_nothing(rt, member_id):
    credit(rt, member_id, 40, "c1")
    before_entries, before_lots = entries(rt, member_id), [lot.remaining for lot in lots(rt, member_id)]

    with pytest.raises(RuleViolation) as err, rt.sessions.begin() as session:
        points.redeem(session, member_id, 41, source_ref="gift:x", idempotency_key="r1", now=rt.now())

    assert err.value.code == "points.insufficient"
    assert err.value.details == {"balance": 40, "required": 41}
    assert entries(rt, member_id) == before_entries
    assert [lot.remaining for lot in lots(rt, member_id)] == before_lots
    assert balance(rt, member_id) == 40
    # The refused key was never posted: it can be used once the member has the points.
    assert redeem(rt, member_id, 40, "r1").replayed is False
    assert balance(rt, member_id) == 0


def test_redeem_from_an_empty_account_is_refused(rt, member_id):
    with pytest.raises(RuleViolation) as err, rt.sessions.begin() as session:
        points.redeem(session, member_id, 1, source_ref="gift:x", idempotency_key="r1", now=rt.now())
    assert err.value.code == "points.insufficient"
    assert entries(rt, member_id) == []


def test_replaying_an_idempotency_key_returns_the_first_entry_and_adds_nothing(rt, member_id):
    first_credit = credit(rt, member_id, 100, "c1")
    first_debit = redeem(rt, member_id, 30, "r1")
    snapshot = entries(rt, member_id)

    again_credit = credit(rt, member_id, 100, "c1")
    again_debit = redeem(rt, member_id, 30, "r1")

    assert again_credit.replayed and again_debit.replayed
    assert again_credit.entry.id == first_credit.entry.id
    assert again_debit.entry.id == first_debit.entry.id
    assert again_debit.entry.balance_after == 70
    assert entries(rt, member_id) == snapshot
    assert len(lots(rt, member_id)) == 1
    assert balance(rt, member_id) == 70


@pytest.mark.parametrize("retry", [
    pytest.param(lambda rt, mid: credit(rt, mid, 101, "c1"), id="credit-other-amount"),
    pytest.param(lambda rt, mid: credit(rt, mid, 100, "c1", reason="checkin"), id="credit-other-reason"),
    pytest.param(lambda rt, mid: redeem(rt, mid, 100, "c1"), id="debit-same-key-as-credit"),
    pytest.param(lambda rt, mid: redeem(rt, mid, 31, "r1"), id="debit-other-amount"),
    pytest.param(lambda rt, mid: credit(rt, new_member(rt, "o-other"), 100, "c1"), id="other-member"),
])
def test_idempotency_key_reused_for_a_different_posting_is_a_conflict(rt, member_id, retry):
    credit(rt, member_id, 100, "c1")
    redeem(rt, member_id, 30, "r1")
    snapshot = entries(rt, member_id)

    with pytest.raises(Conflict) as err:
        retry(rt, member_id)

    assert err.value.code == "points.idempotency_mismatch"
    assert entries(rt, member_id) == snapshot


@pytest.mark.parametrize("amount", [0, -5, True, 2.5])
def test_postings_refuse_amounts_that_are_not_positive_integers(rt, member_id, amount):
    with pytest.raises(InvalidInput) as err:
        credit(rt, member_id, amount, "c1")
    assert err.value.code == "points.invalid_amount"
    with pytest.raises(InvalidInput) as err:
        redeem(rt, member_id, amount, "r1")
    assert err.value.code == "points.invalid_amount"


def test_posting_to_a_member_without_account_is_refused(rt):
    with pytest.raises(InvalidInput) as err:
        credit(rt, 424242, 10, "c1")
    assert err.value.code == "points.no_account"


# --- expiry ----------------------------------------------------------------------------------------

def test_expire_due_posts_an_expiry_entry_for_exactly_the_remaining_amount_once(rt, member_id):
    credit(rt, member_id, 100, "c1")
    redeem(rt, member_id, 30, "r1")

    rt.clock.now = SHANGHAI_2028 - timedelta(seconds=1)
    with rt.sessions.begin() as session:
        assert points.expire_due(session, rt.now()) == 0
    assert balance(rt, member_id) == 70

    rt.clock.now = SHANGHAI_2028
    with rt.sessions.begin() as session:
        assert points.expire_due(session, rt.now()) == 1
    assert entries(rt, member_id)[-1] == ("expiry", -70, 0)
    [lot] = lots(rt, member_id)
    assert lot.remaining == 0

    rt.clock.advance(days=400)
    with rt.sessions.begin() as session:
        assert points.expire_due(session, rt.now()) == 0
        assert points.expire_due(session, rt.now(), member_id=member_id) == 0
    assert [e[0] for e in entries(rt, member_id)] == ["adjustment", "redemption", "expiry"]
    assert balance(rt, member_id) == 0


def test_expire_due_expires_only_due_lots_per_member_and_respects_limit(rt, member_id):
    b, c = new_member(rt, "o-b"), new_member(rt, "o-c")
    credit(rt, member_id, 10, "a-2026")
    credit(rt, b, 20, "b-2026")
    credit(rt, c, 30, "c-2026")
    rt.clock.now = datetime(2027, 6, 1, tzinfo=UTC)
    credit(rt, member_id, 5, "a-2027")

    rt.clock.now = SHANGHAI_2028
    with rt.sessions.begin() as session:
        assert points.expire_due(session, rt.now(), member_id=member_id) == 1
    assert [balance(rt, m) for m in (member_id, b, c)] == [5, 20, 30]
    with rt.sessions.begin() as session:
        assert points.expire_due(session, rt.now(), limit=1) == 1
    assert sorted([balance(rt, b), balance(rt, c)]) in ([0, 30], [0, 20])
    with rt.sessions.begin() as session:
        assert points.expire_due(session, rt.now(), limit=1) == 1
        assert points.expire_due(session, rt.now(), limit=1) == 0
    assert [balance(rt, m) for m in (member_id, b, c)] == [5, 0, 0]

    rt.clock.now = SHANGHAI_2029
    with rt.sessions.begin() as session:
        assert points.expire_due(session, rt.now()) == 1
    assert balance(rt, member_id) == 0


def test_debit_expires_due_lots_lazily_before_checking_the_balance(rt, member_id):
    credit(rt, member_id, 100, "c-2026")
    credit(rt, member_id, 50, "c-never", expires_at=None)
    rt.clock.now = SHANGHAI_2028 + timedelta(days=1)

    # 150 are on the account, but 100 of them are past due: only 50 can be spent.
    with pytest.raises(RuleViolation) as err:
        redeem(rt, member_id, 60, "r1")
    assert err.value.details == {"balance": 50, "required": 60}
    assert balance(rt, member_id) == 150  # the refused transaction rolled its expiry back too

    redeem(rt, member_id, 50, "r2")
    assert entries(rt, member_id) == [("adjustment", 100, 100), ("adjustment", 50, 150),
                                      ("expiry", -100, 50), ("redemption", -50, 0)]


def test_credit_expires_due_lots_lazily_before_adding(rt, member_id):
    credit(rt, member_id, 100, "c-2026")
    rt.clock.now = SHANGHAI_2028
    credit(rt, member_id, 7, "c-2028")

    assert entries(rt, member_id) == [("adjustment", 100, 100), ("expiry", -100, 0), ("adjustment", 7, 7)]
    with rt.sessions.begin() as session:
        assert points.expire_due(session, rt.now()) == 0


def test_expiring_soon_lists_points_due_within_the_window(rt, member_id):
    credit(rt, member_id, 100, "c1")
    credit(rt, member_id, 5, "c2", expires_at=None)
    with rt.sessions.begin() as session:
        assert points.expiring_soon(session, rt.settings, member_id, rt.now()) == []
    rt.clock.now = SHANGHAI_2028 - timedelta(days=30)
    with rt.sessions.begin() as session:
        assert points.expiring_soon(session, rt.settings, member_id, rt.now()) == [
            points.Expiring(100, SHANGHAI_2028)]


# --- take back and debt ----------------------------------------------------------------------------

def test_take_back_takes_from_the_sources_own_lots_first(rt, member_id):
    credit(rt, member_id, 100, "own", source_ref="purchase:1", expires_at=None)  # expires last
    credit(rt, member_id, 100, "other", source_ref="checkin:1")

    with rt.sessions.begin() as session:
        posted, owed = points.take_back(session, member_id, 60, source_ref="purchase:1",
                                        idempotency_key="tb1", now=rt.now())

    assert owed == 0
    assert (posted.entry.reason, posted.entry.delta, posted.entry.source_ref) == ("reversal", -60, "purchase:1")
    assert [lot.remaining for lot in lots(rt, member_id)] == [40, 100]
    assert account(rt, member_id).debt == 0


def test_take_back_falls_back_to_other_lots_then_records_debt_the_next_credit_settles(rt, member_id):
    credit(rt, member_id, 100, "own", source_ref="purchase:1")
    credit(rt, member_id, 30, "other", source_ref="checkin:1")
    redeem(rt, member_id, 110, "r1")  # the purchase's lot first (same expiry, older), then 10 of the other
    assert [lot.remaining for lot in lots(rt, member_id)] == [0, 20]

    with rt.sessions.begin() as session:
        posted, owed = points.take_back(session, member_id, 100, source_ref="purchase:1",
                                        idempotency_key="tb1", now=rt.now())
    assert (posted.entry.delta, owed) == (-20, 80)
    assert (account(rt, member_id).balance, account(rt, member_id).debt) == (0, 80)

    # A replay answers with the first result and owes nothing more.
    with rt.sessions.begin() as session:
        again, owed_again = points.take_back(session, member_id, 100, source_ref="purchase:1",
                                             idempotency_key="tb1", now=rt.now())
    assert again.replayed and again.entry.id == posted.entry.id and owed_again == 80
    assert account(rt, member_id).debt == 80

    assert credit(rt, member_id, 50, "c2").balance == 0  # the balance after the settlement
    assert (account(rt, member_id).balance, account(rt, member_id).debt) == (0, 30)
    assert credit(rt, member_id, 50, "c3").balance == 20
    assert (account(rt, member_id).balance, account(rt, member_id).debt) == (20, 0)
    assert entries(rt, member_id)[-4:] == [("adjustment", 50, 50), ("reversal", -50, 0),
                                           ("adjustment", 50, 50), ("reversal", -30, 20)]
    # The settlement consumed the new lots, and a later credit is untouched by the cleared debt.
    credit(rt, member_id, 5, "c4")
    assert [lot.remaining for lot in lots(rt, member_id)] == [0, 0, 0, 20, 5]


def test_take_back_with_nothing_left_records_it_all_as_debt(rt, member_id):
    credit(rt, member_id, 10, "own", source_ref="purchase:1")
    redeem(rt, member_id, 10, "r1")

    with rt.sessions.begin() as session:
        posted, owed = points.take_back(session, member_id, 10, source_ref="purchase:1",
                                        idempotency_key="tb1", now=rt.now())
    assert (posted, owed) == (None, 10)
    assert account(rt, member_id).debt == 10
    assert entries(rt, member_id) == [("adjustment", 10, 10), ("redemption", -10, 0)]


# --- purchases -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("amount_fen", "earned"), [(999, 0), (1000, 1), (123_456, 123), (1_000_000, 1000)])
def test_purchase_awards_one_point_per_ten_yuan_rounded_down(rt, member_id, merchant_id, amount_fen, earned):
    recorded = record(rt, merchant_id, member_id, "R-1", amount_fen)

    assert not recorded.replayed
    p = recorded.purchase
    assert (p.amount_fen, p.points_earned, p.birthday_bonus, p.refunded_fen) == (amount_fen, earned, 0, 0)
    assert balance(rt, member_id) == earned
    assert entries(rt, member_id) == ([("purchase", earned, earned)] if earned else [])
    assert count(rt, purchases.Purchase) == 1


@pytest.mark.parametrize(("occurred_at", "bonus"), [
    pytest.param(datetime(2026, 3, 10, 16, 30, tzinfo=UTC), 50, id="00:30-local-on-the-birthday"),
    pytest.param(datetime(2026, 3, 11, 15, 30, tzinfo=UTC), 50, id="23:30-local-on-the-birthday"),
    pytest.param(datetime(2026, 3, 10, 15, 30, tzinfo=UTC), 0, id="23:30-local-the-day-before"),
    pytest.param(datetime(2026, 3, 11, 16, 30, tzinfo=UTC), 0, id="00:30-local-the-day-after"),
])
def test_purchase_on_the_birthday_in_mall_time_earns_a_separate_birthday_bonus(rt, merchant_id, occurred_at,
                                                                               bonus):
    member_id = new_member(rt, birthday=date(1990, 3, 11))
    rt.clock.now = occurred_at + timedelta(minutes=1)

    recorded = record(rt, merchant_id, member_id, "R-bday", 500_00, occurred_at=occurred_at)

    assert (recorded.purchase.points_earned, recorded.purchase.birthday_bonus) == (50, bonus)
    expected = [("purchase", 50, 50)] + ([("birthday_bonus", bonus, 50 + bonus)] if bonus else [])
    assert entries(rt, member_id) == expected
    assert len(lots(rt, member_id)) == len(expected)


def test_purchase_retried_with_the_same_receipt_is_replayed_and_awards_nothing(rt, member_id, merchant_id):
    first = record(rt, merchant_id, member_id, "R-1", 250_00)
    rt.clock.advance(minutes=5)
    again = record(rt, merchant_id, member_id, "R-1", 250_00)

    assert (first.replayed, again.replayed) == (False, True)
    assert again.purchase.id == first.purchase.id
    assert balance(rt, member_id) == 25
    assert entries(rt, member_id) == [("purchase", 25, 25)]
    assert count(rt, purchases.Purchase) == 1


@pytest.mark.parametrize("change", ["amount", "member"])
def test_purchase_receipt_reused_for_a_different_amount_or_member_is_a_conflict(rt, member_id, merchant_id,
                                                                                change):
    record(rt, merchant_id, member_id, "R-1", 250_00)
    other = new_member(rt, "o-other")

    with pytest.raises(Conflict) as err:
        if change == "amount":
            record(rt, merchant_id, member_id, "R-1", 260_00)
        else:
            record(rt, merchant_id, other, "R-1", 250_00)

    assert err.value.code == "purchase.receipt_conflict"
    assert err.value.details == {"receipt_no": "R-1", "amount_fen": 250_00}
    assert (balance(rt, member_id), balance(rt, other)) == (25, 0)
    assert count(rt, purchases.Purchase) == 1


def test_the_same_receipt_number_at_two_merchants_is_two_purchases(rt, member_id, merchant_id):
    second = new_merchant(rt, "Moonlight Noodles")
    a = record(rt, merchant_id, member_id, "0001", 100_00)
    b = record(rt, second, member_id, "0001", 100_00)

    assert a.purchase.id != b.purchase.id and not b.replayed
    assert balance(rt, member_id) == 20


# --- refunds ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("amount_fen", "parts", "expected"), [
    pytest.param(1_000_000, [333_333, 333_333, 333_334], [333, 333, 334], id="thirds-of-1000-points"),
    pytest.param(1_000_000, [1, 1, 999_998], [0, 0, 1000], id="tiny-parts-first"),
    pytest.param(999_999, [333_333, 333_333, 333_333], [333, 333, 333], id="999-points"),
    pytest.param(30_000, [4285] * 6 + [4290], [4, 4, 4, 5, 4, 4, 5], id="seven-parts-of-30-points"),
    pytest.param(123_456, [50_000, 50_000, 23_456], [49, 50, 24], id="uneven"),
])
def test_partial_refunds_add_up_to_exactly_the_full_reversal(rt, member_id, merchant_id, amount_fen, parts,
                                                              expected):
    earned = record(rt, merchant_id, member_id, "R-1", amount_fen).purchase.points_total
    reversed_ = []
    for i, part in enumerate(parts):
        done = refund(rt, merchant_id, "R-1", f"F-{i}", part)
        assert not done.replayed
        assert done.refund.points_taken + done.refund.points_owed == done.refund.points_reversed
        reversed_.append(done.refund.points_reversed)

    assert reversed_ == expected
    assert sum(reversed_) == earned
    assert done.purchase.refunded_fen == amount_fen
    assert done.purchase.points_reversed == earned
    assert balance(rt, member_id) == 0
    assert account(rt, member_id).debt == 0
    assert count(rt, purchases.Refund) == len(parts)


def test_refund_of_a_birthday_purchase_reverses_the_bonus_too(rt, merchant_id):
    member_id = new_member(rt, birthday=date(1988, 3, 10))
    record(rt, merchant_id, member_id, "R-1", 100_000)  # 100 + 100 birthday bonus
    done = refund(rt, merchant_id, "R-1", "F-1", 50_000)
    assert done.refund.points_reversed == 100
    done = refund(rt, merchant_id, "R-1", "F-2", 50_000)
    assert done.refund.points_reversed == 100
    assert balance(rt, member_id) == 0


@pytest.mark.parametrize("parts", [[100_001], [60_000, 40_001], [100_000, 1]])
def test_refund_over_the_purchase_amount_is_refused(rt, member_id, merchant_id, parts):
    record(rt, merchant_id, member_id, "R-1", 100_000)
    *ok, too_much = parts
    for i, part in enumerate(ok):
        refund(rt, merchant_id, "R-1", f"F-{i}", part)
    before = (balance(rt, member_id), entries(rt, member_id))

    with pytest.raises(RuleViolation) as err:
        refund(rt, merchant_id, "R-1", "F-over", too_much)

    assert err.value.code == "refund.exceeds_purchase"
    assert err.value.details == {"refundable_fen": 100_000 - sum(ok)}
    assert (balance(rt, member_id), entries(rt, member_id)) == before
    assert count(rt, purchases.Refund) == len(ok)


def test_refund_number_replay_returns_the_first_refund(rt, member_id, merchant_id):
    record(rt, merchant_id, member_id, "R-1", 100_000)
    first = refund(rt, merchant_id, "R-1", "F-1", 40_000)
    again = refund(rt, merchant_id, "R-1", "F-1", 40_000)

    assert (first.replayed, again.replayed) == (False, True)
    assert again.refund.id == first.refund.id
    assert again.purchase.refunded_fen == 40_000
    assert balance(rt, member_id) == 60
    assert count(rt, purchases.Refund) == 1
    assert [e[0] for e in entries(rt, member_id)] == ["purchase", "reversal"]


@pytest.mark.parametrize("reuse", ["other-amount", "other-receipt"])
def test_refund_number_reused_for_a_different_refund_is_a_conflict(rt, member_id, merchant_id, reuse):
    record(rt, merchant_id, member_id, "R-1", 100_000)
    record(rt, merchant_id, member_id, "R-2", 100_000)
    refund(rt, merchant_id, "R-1", "F-1", 40_000)

    with pytest.raises(Conflict) as err:
        if reuse == "other-amount":
            refund(rt, merchant_id, "R-1", "F-1", 30_000)
        else:
            refund(rt, merchant_id, "R-2", "F-1", 40_000)

    assert err.value.code == "refund.number_conflict"
    assert balance(rt, member_id) == 160


def test_refund_of_another_merchants_receipt_is_not_found(rt, member_id, merchant_id):
    other = new_merchant(rt, "Moonlight Noodles")
    record(rt, merchant_id, member_id, "R-1", 100_000)

    with pytest.raises(NotFound) as err:
        refund(rt, other, "R-1", "F-1", 100_000)

    assert err.value.code == "purchase.not_found"
    assert balance(rt, member_id) == 100
    with rt.sessions.begin() as session:
        assert purchases.find(session, other, "R-1") is None


def test_refund_after_the_points_were_spent_owes_them_and_the_next_purchase_settles(rt, member_id, merchant_id):
    record(rt, merchant_id, member_id, "R-1", 300_000)   # 300 points
    with rt.sessions.begin() as session:
        gifts.redeem_gift(session, rt.settings, member_id, gift_code="tote", quantity=1,
                          idempotency_key="g1", now=rt.now())  # 200 spent, 100 left

    done = refund(rt, merchant_id, "R-1", "F-1", 300_000)
    r = done.refund
    assert (r.points_reversed, r.points_taken, r.points_owed) == (300, 100, 200)
    assert (account(rt, member_id).balance, account(rt, member_id).debt) == (0, 200)

    record(rt, merchant_id, member_id, "R-2", 250_000)   # 250 points: 200 settle the debt
    assert (account(rt, member_id).balance, account(rt, member_id).debt) == (50, 0)
    assert entries(rt, member_id)[-2:] == [("purchase", 250, 250), ("reversal", -200, 50)]


def test_refund_of_a_purchase_below_one_point_takes_nothing(rt, member_id, merchant_id):
    record(rt, merchant_id, member_id, "R-1", 999)
    done = refund(rt, merchant_id, "R-1", "F-1", 999)
    assert (done.refund.points_reversed, done.refund.points_taken, done.refund.points_owed) == (0, 0, 0)
    assert entries(rt, member_id) == []


# --- gifts -----------------------------------------------------------------------------------------

def test_gift_redemption_spends_the_gifts_points_and_issues_a_pickup_code(rt, member_id):
    credit(rt, member_id, 500, "c1")
    with rt.sessions.begin() as session:
        redemption, replayed = gifts.redeem_gift(session, rt.settings, member_id, gift_code="coffee", quantity=2,
                                                 idempotency_key="k1", now=rt.now())

    assert replayed is False
    assert (redemption.gift_code, redemption.quantity, redemption.points) == ("coffee", 2, 240)
    assert len(redemption.pickup_code) == 10
    assert balance(rt, member_id) == 260
    assert entries(rt, member_id)[-1] == ("redemption", -240, 260)


def test_gift_redemption_replay_returns_the_first_redemption(rt, member_id):
    credit(rt, member_id, 500, "c1")
    results = []
    for _ in range(2):
        with rt.sessions.begin() as session:
            results.append(gifts.redeem_gift(session, rt.settings, member_id, gift_code="umbrella", quantity=1,
                                             idempotency_key="k1", now=rt.now()))
    (first, replayed1), (again, replayed2) = results

    assert (replayed1, replayed2) == (False, True)
    assert (again.id, again.pickup_code) == (first.id, first.pickup_code)
    assert balance(rt, member_id) == 200
    assert count(rt, gifts.GiftRedemption) == 1


@pytest.mark.parametrize(("gift_code", "quantity"), [("umbrella", 2), ("tote", 1)])
def test_gift_idempotency_key_reused_for_another_redemption_is_a_conflict(rt, member_id, gift_code, quantity):
    credit(rt, member_id, 1000, "c1")
    with rt.sessions.begin() as session:
        gifts.redeem_gift(session, rt.settings, member_id, gift_code="umbrella", quantity=1,
                          idempotency_key="k1", now=rt.now())

    with pytest.raises(Conflict) as err, rt.sessions.begin() as session:
        gifts.redeem_gift(session, rt.settings, member_id, gift_code=gift_code, quantity=quantity,
                          idempotency_key="k1", now=rt.now())

    assert err.value.code == "points.idempotency_mismatch"
    assert balance(rt, member_id) == 700


def test_redeeming_an_unknown_gift_is_not_found_and_spends_nothing(rt, member_id):
    credit(rt, member_id, 1000, "c1")
    with pytest.raises(NotFound) as err, rt.sessions.begin() as session:
        gifts.redeem_gift(session, rt.settings, member_id, gift_code="yacht", quantity=1,
                          idempotency_key="k1", now=rt.now())
    assert err.value.code == "gift.not_found"
    assert balance(rt, member_id) == 1000
    assert count(rt, gifts.GiftRedemption) == 0


def test_gift_redemption_beyond_the_balance_is_refused(rt, member_id):
    credit(rt, member_id, 299, "c1")
    with pytest.raises(RuleViolation) as err, rt.sessions.begin() as session:
        gifts.redeem_gift(session, rt.settings, member_id, gift_code="umbrella", quantity=1,
                          idempotency_key="k1", now=rt.now())
    assert err.value.code == "points.insufficient"
    assert balance(rt, member_id) == 299
    assert count(rt, gifts.GiftRedemption) == 0


# --- check-in --------------------------------------------------------------------------------------

def test_check_in_days_are_calendar_days_in_shanghai(rt, member_id):
    # 15:59 UTC is 23:59 in Shanghai; 16:01 UTC is already the next day there.
    late = check_in(rt, member_id, at=datetime(2026, 3, 10, 15, 59, tzinfo=UTC))
    early = check_in(rt, member_id, at=datetime(2026, 3, 10, 16, 1, tzinfo=UTC))

    assert (late.day, late.streak) == (date(2026, 3, 10), 1)
    assert (early.day, early.streak) == (date(2026, 3, 11), 2)
    assert balance(rt, member_id) == 10

    # 15:58 UTC on 11 March is still 11 March in Shanghai: already checked in.
    with pytest.raises(Conflict):
        check_in(rt, member_id, at=datetime(2026, 3, 11, 15, 58, tzinfo=UTC))
    with rt.sessions.begin() as session:
        today = checkin.today_checkin(session, rt.settings, member_id, rt.now())
    assert today is not None and today.day == date(2026, 3, 11)


def test_second_check_in_the_same_day_is_a_conflict_and_awards_nothing(rt, member_id):
    first = check_in(rt, member_id)
    assert (first.points, first.streak) == (5, 1)
    rt.clock.advance(hours=5)

    with pytest.raises(Conflict) as err:
        check_in(rt, member_id)

    assert err.value.code == "checkin.already_today"
    assert balance(rt, member_id) == 5
    assert entries(rt, member_id) == [("checkin", 5, 5)]
    assert count(rt, checkin.Checkin) == 1


def test_seventh_consecutive_day_earns_the_streak_bonus(rt, member_id):
    awards = []
    for _ in range(8):
        done = check_in(rt, member_id)
        awards.append((done.streak, done.points))
        rt.clock.advance(days=1, hours=1)  # the time of day drifts; the local day is what counts

    assert awards == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5), (6, 5), (7, 25), (8, 5)]
    assert balance(rt, member_id) == 8 * 5 + 20


def test_thirtieth_consecutive_day_earns_its_bonus(rt, member_id):
    for _ in range(30):
        done = check_in(rt, member_id)
        rt.clock.advance(days=1)
    assert (done.streak, done.points) == (30, 105)
    assert balance(rt, member_id) == 30 * 5 + 20 + 100


def test_streak_resets_after_a_missed_day(rt, member_id):
    for _ in range(3):
        check_in(rt, member_id)
        rt.clock.advance(days=1)
    rt.clock.advance(days=1)  # a day without a check-in

    done = check_in(rt, member_id)
    assert (done.streak, done.points) == (1, 5)
    rt.clock.advance(days=1)
    assert check_in(rt, member_id).streak == 2


def test_streak_counts_local_days_across_the_utc_midnight_gap(rt, member_id):
    # 23:59 one local day, then 00:01 two local days later: a day was missed although only 24h passed.
    check_in(rt, member_id, at=datetime(2026, 3, 10, 15, 59, tzinfo=UTC))
    done = check_in(rt, member_id, at=datetime(2026, 3, 11, 16, 1, tzinfo=UTC))
    assert (done.day, done.streak) == (date(2026, 3, 12), 1)


LOCATION_REQUIRED = {"mall": {"checkin_requires_location": True}}
IN_THE_MALL = checkin.Position(31.2310, 121.4740)       # about 70 m from the configured point
ACROSS_TOWN = checkin.Position(31.2404, 121.4737)       # about 1.1 km north


@pytest.mark.parametrize("settings_overrides", [LOCATION_REQUIRED])
def test_check_in_without_location_is_refused_when_the_mall_requires_it(rt, member_id):
    with pytest.raises(InvalidInput) as err:
        check_in(rt, member_id)
    assert err.value.code == "checkin.location_required"
    assert count(rt, checkin.Checkin) == 0 and balance(rt, member_id) == 0


@pytest.mark.parametrize("settings_overrides", [LOCATION_REQUIRED])
def test_check_in_too_far_from_the_mall_is_refused(rt, member_id):
    with pytest.raises(RuleViolation) as err:
        check_in(rt, member_id, position=ACROSS_TOWN)
    assert err.value.code == "checkin.too_far"
    assert err.value.details["radius_m"] == 300.0
    assert 1000 < err.value.details["distance_m"] < 1200
    assert count(rt, checkin.Checkin) == 0 and balance(rt, member_id) == 0


@pytest.mark.parametrize("settings_overrides", [LOCATION_REQUIRED])
def test_check_in_inside_the_radius_is_accepted_when_location_is_required(rt, member_id):
    done = check_in(rt, member_id, position=IN_THE_MALL)
    assert done.points == 5 and balance(rt, member_id) == 5


def test_check_in_ignores_location_when_the_mall_does_not_require_it(rt, member_id):
    done = check_in(rt, member_id, position=ACROSS_TOWN)
    assert done.points == 5


# --- the database guards the ledger ----------------------------------------------------------------

@pytest.mark.parametrize("statement", [
    "UPDATE points_entries SET delta = 1000, balance_after = 1000 WHERE id = :id",
    "UPDATE points_entries SET note = 'edited' WHERE id = :id",
    "DELETE FROM points_entries WHERE id = :id",
    "DELETE FROM points_entries",
])
def test_points_entries_refuse_raw_update_and_delete(rt, member_id, statement):
    entry_id = credit(rt, member_id, 10, "c1").entry.id

    with pytest.raises(DBAPIError, match="append-only"), rt.sessions.begin() as session:
        session.execute(text(statement), {"id": entry_id})

    assert entries(rt, member_id) == [("adjustment", 10, 10)]


@pytest.mark.parametrize(("corruption", "expected"), [
    ("UPDATE points_lots SET remaining = remaining - 1 WHERE member_id = :mid",
     ["lots hold 19 but balance is 20", "amount 20 - allocated 0 != remaining 19"]),
    ("UPDATE points_accounts SET balance = balance + 5 WHERE member_id = :mid",
     ["account balance 25 != sum of entries 20", "lots hold 20 but balance is 25"]),
    ("INSERT INTO points_allocations (debit_entry_id, lot_id, amount) "
     "SELECT e.id, l.id, 3 FROM points_entries e, points_lots l WHERE e.member_id = :mid AND l.member_id = :mid",
     ["amount 20 - allocated 3 != remaining 20"]),
])
def test_check_invariants_reports_a_corrupted_ledger(rt, member_id, corruption, expected):
    credit(rt, member_id, 20, "c1")
    sound = new_member(rt, "o-sound")
    credit(rt, sound, 7, "c2")

    with rt.sessions() as session:
        assert points.check_invariants(session) == []
        session.execute(text(corruption), {"mid": member_id})
        problems = points.check_invariants(session)
        mine = points.check_invariants(session, member_id)
        others = points.check_invariants(session, sound)
        session.rollback()  # leave the ledger as it was, so the fixture's own check passes
    for fragment in expected:
        assert any(fragment in p for p in problems), (fragment, problems)
        assert any(fragment in p for p in mine), (fragment, mine)
    assert others == []
    with rt.sessions.begin() as session:
        assert points.check_invariants(session) == []


def test_check_invariants_reports_a_debit_whose_allocations_do_not_match(rt, member_id):
    credit(rt, member_id, 20, "c1")
    debit_id = redeem(rt, member_id, 5, "r1").entry.id
    with rt.sessions() as session:
        session.execute(text("UPDATE points_allocations SET amount = 4 WHERE debit_entry_id = :id"),
                        {"id": debit_id})
        problems = points.check_invariants(session)
        session.rollback()
    assert any(f"entry {debit_id}: debit 5 allocated 4" in p for p in problems), problems
