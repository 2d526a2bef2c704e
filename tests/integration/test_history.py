"""The synthetic history generator: rows the app accepts, the behaviours it promises, the same rows from a seed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, text

from mallapp.devtools import demo, history
from mallapp.domain import checkin, member_reports, merchants, points, purchases
from mallapp.domain.checkin import Checkin
from mallapp.domain.members import Member
from mallapp.domain.proximity.history import MallVisit
from mallapp.domain.purchases import Purchase


def _merchants(rt, n=3):
    with rt.sessions.begin() as s:
        return [merchants.create(s, f"Store {i}", rt.now())[0].id for i in range(n)]


def _digest(rt):
    with rt.sessions() as s:
        rows = s.execute(select(Purchase.member_id, Purchase.merchant_id, Purchase.amount_fen, Purchase.occurred_at)
                         .order_by(Purchase.id)).all()
        visits = s.execute(select(MallVisit.member_id, MallVisit.entered_at).order_by(MallVisit.id)).all()
        checkins = s.execute(select(Checkin.member_id, Checkin.day, Checkin.streak).order_by(Checkin.id)).all()
    return rows, visits, checkins


def test_history_writes_exactly_the_purchases_asked_and_keeps_the_ledger_sound(rt):
    ids = _merchants(rt)
    with rt.sessions.begin() as s:
        made = history.generate(s, rt.settings, members=400, purchases=6000, now=rt.now(), seed=7,
                                merchant_ids=ids, with_points=True)
    assert made.members == 400 and made.purchases == 6000
    with rt.sessions.begin() as s:
        assert s.scalar(select(func.count()).select_from(Purchase)) == 6000
        assert s.scalar(select(func.count()).select_from(Member)) == 400
        assert points.check_invariants(s) == []
        # Every purchase earned its points, and the ledger holds them.
        earned = s.scalar(select(func.sum(Purchase.points_earned)))
        credited = s.scalar(select(func.sum(points.PointsEntry.delta)).where(points.PointsEntry.reason == "purchase"))
        assert earned == credited > 0
        assert s.scalar(select(func.max(Purchase.occurred_at))) < rt.now()
        assert s.scalar(select(func.count()).select_from(Purchase).where(
            Purchase.occurred_at < Member.created_at, Purchase.member_id == Member.id)) == 0


def test_history_is_the_same_for_the_same_seed_and_differs_for_another(rt):
    ids = _merchants(rt)
    with rt.sessions.begin() as s:
        history.generate(s, rt.settings, members=200, purchases=2000, now=rt.now(), seed=3, merchant_ids=ids)
    first = _digest(rt)
    with rt.sessions.begin() as s:
        s.execute(text("DELETE FROM checkins"))
        s.execute(text("DELETE FROM mall_visits"))
        s.execute(text("DELETE FROM purchases"))
        s.execute(text("DELETE FROM points_accounts"))
        s.execute(text("DELETE FROM members"))
    with rt.sessions.begin() as s:
        history.generate(s, rt.settings, members=200, purchases=2000, now=rt.now(), seed=3, merchant_ids=ids)
    again = _digest(rt)
    # The member ids moved on (the table's ids are not reused), the rest is the same.
    shift = again[0][0][0] - first[0][0][0]
    assert [(m + shift, *rest) for m, *rest in first[0]] == [tuple(r) for r in again[0]]
    assert [(m + shift, d) for m, d in first[1]] == [tuple(r) for r in again[1]]
    with rt.sessions.begin() as s:
        history.generate(s, rt.settings, members=200, purchases=2000, now=rt.now(), seed=4, merchant_ids=ids)
    with rt.sessions() as s:
        amounts = s.execute(select(Purchase.amount_fen).order_by(Purchase.id)).scalars().all()
    assert amounts[2000:4000] != amounts[:2000]


def test_history_has_the_behaviours_the_articles_describe(rt):
    ids = _merchants(rt)
    with rt.sessions.begin() as s:
        made = history.generate(s, rt.settings, members=3000, purchases=60_000, now=rt.now(), seed=1,
                                merchant_ids=ids)
    now = rt.now()
    with rt.sessions() as s:
        last = dict(s.execute(select(Purchase.member_id, func.max(Purchase.occurred_at)).group_by(Purchase.member_id)).all())
        lost = sum(1 for at in last.values() if at < now - timedelta(days=365))
        big = s.scalar(select(func.count()).select_from(Purchase).where(Purchase.amount_fen == history.ONE_OFF_FEN))
        joined_in_year = s.scalar(select(func.count()).select_from(Member)
                                  .where(Member.created_at >= now - timedelta(days=365)))
        never = s.scalar(select(func.count()).select_from(Member).where(~Member.id.in_(select(Purchase.member_id))))
        visits = s.scalar(select(func.count()).select_from(MallVisit))
        weekend = s.scalar(select(func.count()).select_from(Purchase).where(
            func.strftime("%w", Purchase.occurred_at).in_(["0", "6"]))) if rt.engine.dialect.name == "sqlite" else None
    assert made.behaviours["lost"] > 0 and lost >= made.behaviours["lost"] * 0.9
    assert big == made.behaviours["oneoff"] > 0
    assert joined_in_year >= made.behaviours["new"] + made.behaviours["promo"]
    assert never > made.behaviours["promo"] * 0.4          # most of the promotion's members never buy
    assert visits > 0
    if weekend is not None:  # two days of seven, but busier: more than 2/7 of the purchases
        assert weekend / 60_000 > 2 / 7


def test_generated_members_can_buy_and_check_in_through_the_app(rt, clock):
    ids = _merchants(rt, 1)
    with rt.sessions.begin() as s:
        made = history.generate(s, rt.settings, members=20, purchases=200, now=rt.now(), seed=2, merchant_ids=ids,
                                with_points=True)
    member_id = made.first_member_id
    with rt.sessions.begin() as s:
        recorded = purchases.record_purchase(s, rt.settings, merchant_id=ids[0], member_id=member_id,
                                             receipt_no="till-1", amount_fen=5000, occurred_at=rt.now(), now=rt.now())
        assert not recorded.replayed
        clock.advance(days=1)
        checkin.check_in(s, rt.settings, member_id, now=rt.now())
    # rt's teardown checks the ledger's invariants after these postings too


def test_bulk_load_on_postgresql_puts_the_keys_and_indexes_back(rt):
    if rt.engine.dialect.name != "postgresql":
        return  # bulk applies to PostgreSQL only; SQLite loads with its keys in place
    ids = _merchants(rt)
    catalogue = text("SELECT count(*) FROM pg_indexes WHERE tablename IN ('purchases', 'checkins', 'mall_visits')")
    with rt.sessions() as s:
        before = s.scalar(catalogue)
    with rt.sessions.begin() as s:
        history.generate(s, rt.settings, members=50, purchases=500, now=rt.now(), seed=5, merchant_ids=ids,
                         bulk=True)
    with rt.sessions() as s:
        assert s.scalar(catalogue) == before
        assert s.scalar(text("SELECT count(*) FROM pg_constraint WHERE conrelid = 'purchases'::regclass "
                             "AND contype IN ('f', 'u')")) == 3


def test_the_demo_seeds_its_member_history_once_with_the_months_reports(rt):
    _merchants(rt, 2)
    assert demo.seed_history(rt, members=300) == 300
    assert demo.seed_history(rt, members=300) == 0  # every demo start seeds; the history is made once
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Member).where(Member.openid.like("synth%"))) == 300
        assert member_reports.read(s, "new_members").body["days"]
