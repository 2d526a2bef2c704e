"""Property-based tests of the points ledger: random histories against its invariants and a model.

Hypothesis generates sequences of earnings, redemptions, purchases, (partial) refunds, clock
jumps with expiry, idempotent replays and conflicting reuses of keys. Each sequence runs for a
fresh member on one SQLite database; after every step the database must agree with a small
Python model of the ledger (balance, debt, every lot's remaining points) and
``points.check_invariants`` must find nothing.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select

from mallapp.db import make_engine, make_sessionmaker
from mallapp.domain import members, merchants, points, purchases
from mallapp.domain.points import PointsAccount, PointsEntry, PointsLot
from mallapp.errors import Conflict, RuleViolation
from mallapp.settings import DEMO_SETTINGS_FILE, Settings, load_settings

START = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
HYPOTHESIS = hsettings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Ledger:
    """One SQLite database shared by all examples; each example gets its own member."""

    settings: Settings = field(repr=False)
    sessions: object = field(repr=False)
    merchant_id: int
    serial: Iterator[int] = field(default_factory=itertools.count)

    def new_member(self) -> int:
        with self.sessions.begin() as session:
            member, _ = members.sign_in(session, openid=f"o-prop-{next(self.serial)}", unionid=None, now=START)
            return member.id


@pytest.fixture(scope="module")
def ledger(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    path = tmp_path_factory.mktemp("ledger-properties") / "ledger.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    settings = load_settings({"database_url": url, "var_dir": str(path.parent / "var")}, environ={},
                             overlay=DEMO_SETTINGS_FILE)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        merchant, _ = merchants.create(session, "Property Mart", START)
    yield Ledger(settings, sessions, merchant.id)
    with sessions.begin() as session:
        assert points.check_invariants(session) == []
    engine.dispose()


# --- the model -------------------------------------------------------------------------------------

@dataclass
class MLot:
    order: int
    source: str
    remaining: int
    expires_at: datetime | None
    lapsed: int = 0  # what expiry took from this lot, unspent


@dataclass
class MPurchase:
    receipt_no: str
    amount_fen: int
    points_total: int
    source: str
    refunded_fen: int = 0
    reversed: int = 0
    forgiven: int = 0  # lapsed points that earlier refunds did not take again


@dataclass
class Model:
    """What the ledger should hold, computed the simple way."""

    settings: Settings = field(repr=False)
    lots: list[MLot] = field(default_factory=list)
    debt: int = 0

    @property
    def balance(self) -> int:
        return sum(lot.remaining for lot in self.lots)

    def due(self, now: datetime) -> list[MLot]:
        return [lot for lot in self.lots if lot.remaining and lot.expires_at is not None and lot.expires_at <= now]

    def expire(self, now: datetime) -> int:
        due = self.due(now)
        for lot in due:
            lot.lapsed += lot.remaining
            lot.remaining = 0
        return len(due)

    def lapsed(self, source: str) -> int:
        return sum(lot.lapsed for lot in self.lots if lot.source == source)

    def spendable(self, now: datetime) -> int:
        return self.balance - sum(lot.remaining for lot in self.due(now))

    def _consume(self, amount: int, preferred: list[MLot]) -> None:
        others = sorted((lot for lot in self.lots if lot not in preferred),
                        key=lambda lot: (lot.expires_at is None, lot.expires_at or START, lot.order))
        for lot in [*preferred, *others]:
            take = min(amount, lot.remaining)
            lot.remaining -= take
            amount -= take
        assert amount == 0, "model bug: lots do not cover the balance"

    def credit(self, amount: int, source: str, now: datetime, expires_at: datetime | None | str = "default") -> None:
        self.expire(now)
        if expires_at == "default":
            expires_at = points.expiry_for(self.settings, now)
        lot = MLot(len(self.lots), source, amount, expires_at)
        self.lots.append(lot)
        settle = min(self.debt, amount)
        if settle:
            self.debt -= settle
            self._consume(settle, [lot])

    def debit(self, amount: int, now: datetime) -> bool:
        if self.spendable(now) < amount:
            return False  # refused: the transaction rolls back, its lazy expiry with it
        self.expire(now)
        self._consume(amount, [])
        return True

    def take_back(self, amount: int, source: str, now: datetime) -> None:
        self.expire(now)
        take = min(amount, self.balance)
        self.debt += amount - take
        self._consume(take, [lot for lot in self.lots if lot.source == source and lot.remaining])


# --- operations ------------------------------------------------------------------------------------

# An earning's lot expires by default (end of next year), never, or within days: so a newer lot can
# expire before an older one, and the soonest-expiring-first order is not just the order of earning.
earn = st.tuples(st.just("earn"), st.integers(1, 500), st.one_of(st.just("default"), st.just("never"),
                                                                 st.integers(1, 60)))
redeem = st.tuples(st.just("redeem"), st.integers(1, 300))
spend = st.tuples(st.just("spend"), st.integers(1, 100))  # a share of what the member can spend
purchase = st.tuples(st.just("purchase"), st.integers(1, 800_000))
refund = st.tuples(st.just("refund"), st.integers(0, 99), st.sampled_from(["rest", "part", "part", "over"]),
                   st.integers(1, 99))
# Mostly days; sometimes far enough (earned in 2026, gone when 2028 begins) for lots to expire.
advance = st.tuples(st.just("advance"), st.one_of(st.integers(0, 40), st.integers(200, 800)), st.integers(0, 23))
replay = st.tuples(st.just("replay"), st.integers(0, 99))
reuse = st.tuples(st.just("reuse"), st.integers(0, 99))
ops = st.lists(st.one_of(earn, purchase, purchase, redeem, spend, spend, refund, refund, advance, replay, reuse),
               min_size=3, max_size=30)


class Run:
    """Applies operations to the database and the model side by side."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.sessions = ledger.sessions
        self.settings = ledger.settings
        self.member_id = ledger.new_member()
        self.model = Model(ledger.settings)
        self.now = START
        self.purchases: list[MPurchase] = []
        self.done: list[tuple] = []  # successful postings, to replay: (kind, key, amount, result id)
        self.step = 0

    def key(self, kind: str) -> str:
        self.step += 1
        return f"{kind}:{self.member_id}:{self.step}"

    # each operation -------------------------------------------------------------------------------

    def earn(self, amount: int, expiry: str | int) -> None:
        key = self.key("earn")
        expires_at = {"default": "default", "never": None}.get(expiry) if isinstance(expiry, str) else (
            self.now + timedelta(days=expiry))
        with self.sessions.begin() as session:
            posted = points.credit(session, self.settings, self.member_id, amount, "adjustment",
                                   source_ref=key, idempotency_key=key, now=self.now, expires_at=expires_at)
        assert not posted.replayed and posted.entry.delta == amount
        self.model.credit(amount, key, self.now, expires_at)
        self.done.append(("earn", key, amount, posted.entry.id))

    def redeem(self, amount: int) -> None:
        key = self.key("redeem")
        expected = self.model.debit(amount, self.now)
        try:
            with self.sessions.begin() as session:
                posted = points.redeem(session, self.member_id, amount, source_ref="gift:prop",
                                       idempotency_key=key, now=self.now)
        except RuleViolation as exc:
            assert exc.code == "points.insufficient"
            assert not expected, "refused a redemption the balance covers"
            assert exc.details == {"balance": self.model.spendable(self.now), "required": amount}
            event("redeem refused")
            return
        assert expected, "allowed a redemption the balance does not cover"
        assert posted.entry.delta == -amount and not posted.replayed
        self.done.append(("redeem", key, amount, posted.entry.id))

    def spend(self, pct: int) -> None:
        self.redeem(max(1, self.model.spendable(self.now) * pct // 100))

    def purchase(self, amount_fen: int) -> None:
        receipt_no = self.key("R")
        with self.sessions.begin() as session:
            recorded = purchases.record_purchase(
                session, self.settings, merchant_id=self.ledger.merchant_id, member_id=self.member_id,
                receipt_no=receipt_no, amount_fen=amount_fen, occurred_at=self.now, now=self.now)
        p = recorded.purchase
        assert not recorded.replayed
        assert (p.points_earned, p.birthday_bonus) == (amount_fen // 1000, 0)
        bought = MPurchase(receipt_no, amount_fen, p.points_total, p.source_ref)
        self.purchases.append(bought)
        if bought.points_total:
            self.model.credit(bought.points_total, bought.source, self.now)
        self.done.append(("purchase", receipt_no, amount_fen, p.id))

    def refund(self, index: int, kind: str, pct: int) -> None:
        if not self.purchases:
            return
        p = self.purchases[index % len(self.purchases)]
        rest = p.amount_fen - p.refunded_fen
        amount = {"rest": rest, "part": max(1, rest * pct // 100), "over": rest + 1}[kind]
        if amount == 0:
            return
        refund_no = self.key("F")
        try:
            with self.sessions.begin() as session:
                done = purchases.refund(session, merchant_id=self.ledger.merchant_id, receipt_no=p.receipt_no,
                                        refund_no=refund_no, amount_fen=amount, now=self.now)
        except RuleViolation as exc:
            assert exc.code == "refund.exceeds_purchase"
            assert p.refunded_fen + amount > p.amount_fen
            event("refund refused")
            return
        assert p.refunded_fen + amount <= p.amount_fen
        p.refunded_fen += amount
        due = p.points_total * p.refunded_fen // p.amount_fen - p.reversed
        p.reversed += due
        debt_before = self.model.debt
        forgive = 0
        if due:
            # Points of this purchase that lapsed unused are not taken again, and counted once.
            self.model.expire(self.now)
            forgive = min(due, self.model.lapsed(p.source) - p.forgiven)
            p.forgiven += forgive
        if due - forgive:
            self.model.take_back(due - forgive, p.source, self.now)
        r = done.refund
        assert (r.points_reversed, r.points_lapsed, r.points_owed) == (due, forgive, self.model.debt - debt_before)
        assert r.points_taken + r.points_owed + r.points_lapsed == due
        event("refund owed points" if r.points_owed else "refund took points" if due else "refund took none")
        assert done.purchase.points_reversed == p.reversed
        if p.refunded_fen == p.amount_fen:
            assert p.reversed == p.points_total, "a full refund reverses every point the purchase earned"
        self.done.append(("refund", refund_no, amount, r.id, p.receipt_no))

    def advance(self, days: int, hours: int) -> None:
        self.now += timedelta(days=days, hours=hours)
        expected = self.model.expire(self.now)
        event(f"advance expired {min(expected, 2)}+ lots")
        with self.sessions.begin() as session:
            assert points.expire_due(session, self.now, member_id=self.member_id) == expected
        with self.sessions.begin() as session:
            assert points.expire_due(session, self.now, member_id=self.member_id) == 0

    def replay(self, index: int) -> None:
        """Posting anything again with its key answers with the first result and changes nothing."""
        if not self.done:
            return
        kind, key, amount, first_id, *rest = self.done[index % len(self.done)]
        with self.sessions.begin() as session:
            if kind == "earn":
                again = points.credit(session, self.settings, self.member_id, amount, "adjustment",
                                      source_ref=key, idempotency_key=key, now=self.now)
                result_id = again.entry.id
            elif kind == "redeem":
                again = points.redeem(session, self.member_id, amount, source_ref="gift:prop",
                                      idempotency_key=key, now=self.now)
                result_id = again.entry.id
            elif kind == "purchase":
                again = purchases.record_purchase(
                    session, self.settings, merchant_id=self.ledger.merchant_id, member_id=self.member_id,
                    receipt_no=key, amount_fen=amount, occurred_at=self.now, now=self.now)
                result_id = again.purchase.id
            else:
                again = purchases.refund(session, merchant_id=self.ledger.merchant_id, receipt_no=rest[0],
                                         refund_no=key, amount_fen=amount, now=self.now)
                result_id = again.refund.id
        assert again.replayed and result_id == first_id
        event(f"replayed {kind}")

    def reuse(self, index: int) -> None:
        """A key reused for a different amount is a conflict and changes nothing."""
        if not self.done:
            return
        kind, key, amount, _first_id, *rest = self.done[index % len(self.done)]
        codes = {"earn": "points.idempotency_mismatch", "redeem": "points.idempotency_mismatch",
                 "purchase": "purchase.receipt_conflict", "refund": "refund.number_conflict"}
        with pytest.raises(Conflict) as err, self.sessions.begin() as session:
            if kind == "earn":
                points.credit(session, self.settings, self.member_id, amount + 1, "adjustment",
                              source_ref=key, idempotency_key=key, now=self.now)
            elif kind == "redeem":
                points.redeem(session, self.member_id, amount + 1, source_ref="gift:prop",
                              idempotency_key=key, now=self.now)
            elif kind == "purchase":
                purchases.record_purchase(
                    session, self.settings, merchant_id=self.ledger.merchant_id, member_id=self.member_id,
                    receipt_no=key, amount_fen=amount + 1, occurred_at=self.now, now=self.now)
            else:
                purchases.refund(session, merchant_id=self.ledger.merchant_id, receipt_no=rest[0],
                                 refund_no=key, amount_fen=amount + 1, now=self.now)
        assert err.value.code == codes[kind]

    # after every operation ------------------------------------------------------------------------

    def verify(self) -> None:
        with self.sessions.begin() as session:
            account = session.get(PointsAccount, self.member_id)
            remaining = list(session.scalars(select(PointsLot.remaining)
                                             .where(PointsLot.member_id == self.member_id)
                                             .order_by(PointsLot.id)))
            lowest = session.scalar(select(func.min(PointsEntry.balance_after))
                                    .where(PointsEntry.member_id == self.member_id))
            problems = points.check_invariants(session, self.member_id)
        assert problems == []
        assert account.balance >= 0 and (lowest is None or lowest >= 0)
        assert account.balance == self.model.balance
        assert account.debt == self.model.debt
        assert remaining == [lot.remaining for lot in self.model.lots]


@HYPOTHESIS
@given(history=ops)
def test_random_histories_keep_the_invariants_and_match_the_model(ledger, history):
    run = Run(ledger)
    for name, *args in history:
        getattr(run, name)(*args)
        run.verify()


@HYPOTHESIS
@given(amount_fen=st.integers(1, 5_000_000),
       cuts=st.lists(st.integers(1, 10_000), min_size=1, max_size=8),
       spent_pct=st.integers(0, 100),
       birthday=st.booleans())
def test_partial_refunds_always_reverse_exactly_the_points_earned(ledger, amount_fen, cuts, spent_pct, birthday):
    member_id = ledger.new_member()
    with ledger.sessions.begin() as session:
        if birthday:
            members.get(session, member_id).birthday = START.astimezone(ledger.settings.mall.tz).date()
        recorded = purchases.record_purchase(
            session, ledger.settings, merchant_id=ledger.merchant_id, member_id=member_id,
            receipt_no=f"RP-{member_id}", amount_fen=amount_fen, occurred_at=START, now=START)
        earned = recorded.purchase.points_total
        spent = earned * spent_pct // 100
        if spent:
            points.redeem(session, member_id, spent, source_ref="gift:prop", idempotency_key=f"spend:{member_id}",
                          now=START)
    # Split the amount at random proportions; the last part takes what is left.
    total_cuts = sum(cuts)
    parts = [amount_fen * c // total_cuts for c in cuts[:-1]]
    parts = [p for p in parts if p > 0]
    parts.append(amount_fen - sum(parts))
    taken = owed = 0
    for i, part in enumerate(parts):
        with ledger.sessions.begin() as session:
            done = purchases.refund(session, merchant_id=ledger.merchant_id, receipt_no=f"RP-{member_id}",
                                    refund_no=f"RF-{member_id}-{i}", amount_fen=part, now=START)
        assert done.refund.points_reversed >= 0
        taken += done.refund.points_taken
        owed += done.refund.points_owed
    with ledger.sessions.begin() as session:
        account = session.get(PointsAccount, member_id)
        assert points.check_invariants(session, member_id) == []
    assert done.purchase.refunded_fen == amount_fen
    assert done.purchase.points_reversed == taken + owed == earned
    # What was not spent is taken back now; what was spent is owed.
    assert (taken, owed) == (earned - spent, spent)
    assert (account.balance, account.debt) == (0, spent)
