"""The nightly segmentation on a real database: a small world of members with purchases, check-ins and mall
visits at controlled dates, run through ``segments.run`` (docs/segments.md states each rule tested here)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from mallapp.domain import merchants, privacy, purchases, segments
from mallapp.domain.checkin import Checkin
from mallapp.domain.members import Member
from mallapp.domain.proximity.history import MallVisit
from mallapp.domain.purchases import Purchase
from mallapp.domain.segments import LifecycleTransition, MemberSnapshot, SegmentRun

TZ = "Asia/Shanghai"
# The run's instant: 03:00 on 10 March 2026 in Shanghai.
NOW = datetime(2026, 3, 9, 19, 0, tzinfo=UTC)
TODAY = date(2026, 3, 10)


def at(day: date, hour: int = 12) -> datetime:
    """Noon (or ``hour``) of a Shanghai day, as a UTC instant."""
    return datetime.combine(day, time(hour)).replace(tzinfo=UTC) - timedelta(hours=8)


class World:
    """Members, purchases, check-ins and mall visits written straight into the tables."""

    def __init__(self, rt: Any) -> None:
        self.rt = rt
        self.receipts = 0
        with rt.sessions.begin() as s:
            self.merchant = merchants.create(s, "Segment Test Store", at(date(2024, 1, 1)))[0].id

    def member(self, name: str, joined: date = date(2024, 1, 1), member_id: int | None = None) -> int:
        with self.rt.sessions.begin() as s:
            self.receipts += 1
            m = Member(id=member_id, openid=f"o-{name}", referral_code=f"T{self.receipts:07d}",
                       created_at=at(joined, 9))
            s.add(m)
            s.flush()
            return m.id

    def buy(self, member_id: int, day: date, yuan: float, refunded_yuan: float = 0, hour: int = 12) -> int:
        self.receipts += 1
        with self.rt.sessions.begin() as s:
            p = Purchase(merchant_id=self.merchant, receipt_no=f"r{self.receipts}", member_id=member_id,
                         amount_fen=int(yuan * 100), refunded_fen=int(refunded_yuan * 100), points_earned=0,
                         birthday_bonus=0, points_reversed=0, occurred_at=at(day, hour), created_at=at(day, hour))
            s.add(p)
            s.flush()
            return p.id

    def buy_monthly(self, member_id: int, yuan: float, months: int = 12, last: date = date(2026, 3, 1)) -> None:
        for k in range(months):
            year, month = divmod(last.year * 12 + last.month - 1 - k, 12)
            self.buy(member_id, date(year, month + 1, 1), yuan)

    def checkin(self, member_id: int, day: date) -> None:
        with self.rt.sessions.begin() as s:
            s.add(Checkin(member_id=member_id, day=day, streak=1, points=5, method="app", created_at=at(day)))

    def mall_visit(self, member_id: int, day: date) -> None:
        with self.rt.sessions.begin() as s:
            s.add(MallVisit(member_id=member_id, entered_at=at(day, 14), exited_at=at(day, 15), dwell_seconds=3600))

    def run(self, now: datetime = NOW, **kw: Any) -> SegmentRun:
        with self.rt.sessions.begin() as s:
            row = segments.run(s, self.rt.settings, now, **kw)
            s.expunge(row)
            return row

    def snapshot(self, member_id: int, month: date = date(2026, 3, 1)) -> MemberSnapshot:
        with self.rt.sessions.begin() as s:
            row = s.get(MemberSnapshot, (member_id, month))
            assert row is not None, f"no snapshot of member {member_id} for {month}"
            s.expunge(row)
            return row

    def transitions(self, member_id: int) -> list[tuple[date, str | None, str, str]]:
        with self.rt.sessions.begin() as s:
            rows = s.execute(select(LifecycleTransition.day, LifecycleTransition.from_state,
                                    LifecycleTransition.to_state, LifecycleTransition.cause)
                             .where(LifecycleTransition.member_id == member_id)
                             .order_by(LifecycleTransition.day, LifecycleTransition.id)).all()
            return [tuple(r) for r in rows]

    def tier(self, member_id: int) -> str | None:
        with self.rt.sessions.begin() as s:
            return s.get(Member, member_id).tier


@pytest.fixture
def world(rt: Any) -> World:
    return World(rt)


def test_facts_count_purchases_net_of_refunds_days_visits_and_gaps(world: World) -> None:
    m = world.member("ada")
    world.buy(m, date(2026, 1, 5), 100)
    world.buy(m, date(2026, 1, 5), 50, hour=15)        # same day: one purchase day
    world.buy(m, date(2026, 2, 4), 200, refunded_yuan=50)
    world.buy(m, date(2026, 3, 6), 80, refunded_yuan=80)  # wholly refunded: does not count
    world.buy(m, date(2024, 6, 1), 999)                # before the window: history only
    world.checkin(m, date(2026, 1, 5))                  # a purchase day already
    world.checkin(m, date(2026, 2, 20))
    world.mall_visit(m, date(2026, 2, 21))
    world.run()
    snap = world.snapshot(m)
    assert (snap.purchases, snap.purchase_days, snap.spend_fen) == (3, 2, 30_000)
    assert snap.visits == 4  # 5 Jan, 4 Feb, 20 Feb, 21 Feb
    assert snap.mean_gap_days == 30.0
    assert snap.window_start == date(2025, 3, 11) and snap.as_of == TODAY
    assert snap.first_purchase_at == at(date(2024, 6, 1)) and snap.last_purchase_at == at(date(2026, 2, 4))


def test_members_with_ids_far_apart_each_get_their_own_facts(world: World) -> None:
    """Ids spread over many of the packed reads' groups (id % 512), written out of order."""
    ids = [world.member(f"m{k}", member_id=5000 + 7919 * k) for k in (3, 0, 4, 1, 2)]
    for m in ids:
        for j in range(m % 5 + 1):
            world.buy(m, date(2026, 1, 1) + timedelta(days=j), (m % 97) + 1)
    world.run()
    for m in ids:
        snap = world.snapshot(m)
        assert (snap.purchase_days, snap.spend_fen) == (m % 5 + 1, (m % 5 + 1) * ((m % 97) + 1) * 100)


def test_visit_sources_are_configurable(world: World, rt: Any) -> None:
    m = world.member("ada")
    world.buy(m, date(2026, 1, 5), 100)
    world.checkin(m, date(2026, 2, 20))
    world.mall_visit(m, date(2026, 2, 21))
    rt.settings = rt.settings.model_copy(update={"segments": rt.settings.segments.model_copy(
        update={"visit_sources": ("purchase",)})})
    world.run()
    assert world.snapshot(m).visits == 1


def test_t_tiers_split_at_the_medians_of_members_with_a_purchase(world: World) -> None:
    often_much, rare_much, often_little, rare_little = (world.member(n) for n in ("t1", "t2", "t3", "t4"))
    idle = world.member("idle")
    for k in range(6):
        world.buy(often_much, date(2026, 2, 1 + k), 1000)
        world.buy(often_little, date(2026, 2, 1 + k), 10)
    world.buy(rare_much, date(2026, 2, 1), 5000)
    world.buy(rare_little, date(2026, 2, 1), 20)
    run = world.run()
    tiers = {m: world.snapshot(m).t_tier for m in (often_much, rare_much, often_little, rare_little, idle)}
    assert tiers == {often_much: "T1", rare_much: "T2", often_little: "T3", rare_little: "T4", idle: None}
    assert run.parameters["t_split"] == {"mode": "medians", "visits_over": 3.5, "spend_over_fen": 253_000.0}


def test_one_off_large_purchase_does_not_outrank_steady_spenders(world: World) -> None:
    """The issue's scenario: one 100,000-yuan purchase against members spending steadily across the year."""
    one_off = world.member("oneoff")
    world.buy(one_off, date(2025, 11, 20), 100_000)
    steady = [world.member(f"steady{k}") for k in range(3)]
    for k, m in enumerate(steady):
        world.buy_monthly(m, 1500 + 100 * k)   # 18,000 to 20,400 yuan a year
    small = [world.member(f"small{k}") for k in range(96)]
    for k, m in enumerate(small):
        world.buy(m, date(2026, 1, 10), 100 + k)
    world.run()
    one = world.snapshot(one_off)
    assert one.spend_fen == 10_000_000
    assert one.scored_spend_fen == 50_000  # the floor: a single purchase has no other purchases to be capped by
    for m in steady:
        snap = world.snapshot(m)
        assert snap.scored_spend_fen == snap.spend_fen > one.scored_spend_fen
    # 100 members with a purchase: 1 vip, 4 major (top 5), 15 ordinary (top 20).
    assert world.snapshot(steady[2]).pyramid == "vip"
    assert {world.snapshot(m).pyramid for m in steady[:2]} == {"major"}
    assert one.pyramid == "major"  # still above the members who spent 100 to 195 yuan once


def test_pyramid_ties_at_a_boundary_share_the_better_level(world: World) -> None:
    ms = [world.member(f"m{k}") for k in range(10)]
    for m in ms[:3]:
        world.buy(m, date(2026, 2, 1), 500)   # three equal top spenders: all vip (ceil(10 x 1%) = 1 place)
    for k, m in enumerate(ms[3:]):
        world.buy(m, date(2026, 2, 1), 100 + k)
    run = world.run()
    assert [world.snapshot(m).pyramid for m in ms[:3]] == ["vip"] * 3
    assert {world.snapshot(m).pyramid for m in ms[3:]} == {"small"}
    assert run.parameters["pyramid"]["min_scored_spend_fen"]["vip"] == 50_000
    assert run.counts["pyramid"] == {"vip": 3, "major": 0, "ordinary": 0, "small": 7}


def test_rfm_scores_and_segments(world: World) -> None:
    champion, gone = world.member("champ"), world.member("gone")
    others = [world.member(f"o{k}") for k in range(8)]
    for k in range(10):
        world.buy(champion, date(2026, 3, 1) - timedelta(days=10 * k), 900)
        world.buy(gone, date(2025, 6, 1) - timedelta(days=7 * k), 900)
    for k, m in enumerate(others):
        world.buy(m, date(2025, 9, 1) + timedelta(days=20 * k), 50)
    run = world.run()
    c, g = world.snapshot(champion), world.snapshot(gone)
    assert (c.rfm_r, c.rfm_f, c.rfm_m, c.rfm_segment) == (5, 5, 5, "champions")
    assert (g.rfm_r, g.rfm_f, g.rfm_m, g.rfm_segment) == (1, 5, 5, "cant_lose_them")
    assert set(run.parameters["rfm_edges"]) == {"recency_days", "purchase_days", "scored_spend_fen"}
    assert sum(run.counts["rfm_segment"].values()) == 10


def test_lifecycle_new_active_weakening_lost_reactivated_with_causes(world: World) -> None:
    newcomer = world.member("new", joined=date(2026, 3, 1))
    buyer = world.member("buyer", joined=date(2026, 3, 1))
    world.buy(buyer, date(2026, 3, 2), 100)
    never = world.member("never", joined=date(2025, 1, 1))
    lapsed = world.member("lapsed")
    world.buy(lapsed, date(2025, 1, 5), 300)
    regular = world.member("regular")
    for k in range(6):   # every 10 days, last on 1 Feb: 37 days > 2 x 10 by 10 March
        world.buy(regular, date(2026, 2, 1) - timedelta(days=10 * k), 100)
    world.run()
    assert world.transitions(newcomer) == [(TODAY, None, "new", "joined")]
    assert world.transitions(buyer) == [(TODAY, None, "active", "purchase")]
    assert world.transitions(never) == [(TODAY, None, "lost", "never_bought")]
    assert world.transitions(lapsed) == [(TODAY, None, "lost", "no_recent_purchase")]
    assert world.transitions(regular) == [(TODAY, None, "weakening", "overdue")]

    # The next days: the newcomer buys (new -> active), the regular and the lapsed buy again (-> reactivated).
    day2 = TODAY + timedelta(days=1)
    world.buy(newcomer, TODAY, 50, hour=18)
    world.buy(regular, TODAY, 100, hour=18)
    world.buy(lapsed, TODAY, 100, hour=18)
    world.buy(never, TODAY, 100, hour=18)
    world.run(NOW + timedelta(days=1))
    assert world.transitions(never)[-1] == (day2, "lost", "reactivated", "first_purchase")
    assert world.transitions(newcomer)[-1] == (day2, "new", "active", "first_purchase")
    assert world.transitions(regular)[-1] == (day2, "weakening", "reactivated", "bought_again")
    assert world.transitions(lapsed)[-1] == (day2, "lost", "reactivated", "bought_again")
    assert world.snapshot(regular).lifecycle == "reactivated"

    # reactivated_days (30) later, without a weakening cause: active again.
    for k in range(1, 4):
        world.buy(regular, TODAY + timedelta(days=10 * k), 100)
    later = NOW + timedelta(days=31)
    world.run(later)
    assert world.transitions(regular)[-1] == (TODAY + timedelta(days=31), "reactivated", "active", "settled")


def test_lifecycle_weakening_on_a_t_tier_drop_against_the_previous_month(world: World) -> None:
    m = world.member("drop")
    others = [world.member(f"o{k}") for k in range(4)]
    for k in range(8):   # often and much in February
        world.buy(m, date(2026, 2, 13) + timedelta(days=2 * k), 1000)
    for k, o in enumerate(others):
        world.buy(o, date(2026, 2, 10), 10 + k)
        world.buy(o, date(2026, 3, 3), 10 + k)
    world.run(datetime(2026, 2, 27, 19, 0, tzinfo=UTC))   # 28 Feb: T1
    assert world.snapshot(m, date(2026, 2, 1)).t_tier == "T1"
    with world.rt.sessions.begin() as s:   # the big purchases are refunded: spend falls to little
        for p in s.scalars(select(Purchase).where(Purchase.member_id == m)):
            p.refunded_fen = p.amount_fen - 100
    world.run()
    assert world.snapshot(m).t_tier == "T3"
    assert world.transitions(m)[-1] == (TODAY, "active", "weakening", "t_tier_drop")
    assert world.snapshot(m, date(2026, 2, 1)).t_tier == "T1"   # February's snapshot stays as it was


def test_a_rerun_the_same_day_gives_identical_rows(world: World) -> None:
    ms = [world.member(f"m{k}") for k in range(12)]
    for k, m in enumerate(ms):
        for j in range(k % 4 + 1):
            world.buy(m, date(2025, 12, 1) + timedelta(days=13 * j + k), 100 * (k + 1))
        world.checkin(m, date(2026, 2, 1 + k))
    world.run()

    def rows() -> tuple[list[Any], list[Any], list[Any]]:
        with world.rt.sessions.begin() as s:
            snaps = [tuple(getattr(r, c.key) for c in MemberSnapshot.__table__.columns if c.key != "computed_at")
                     for r in s.scalars(select(MemberSnapshot).order_by(MemberSnapshot.member_id))]
            trans = [tuple(getattr(r, c.key) for c in LifecycleTransition.__table__.columns)
                     for r in s.scalars(select(LifecycleTransition).order_by(LifecycleTransition.id))]
            tiers = list(s.execute(select(Member.id, Member.tier).order_by(Member.id)))
            return snaps, trans, tiers

    first = rows()
    second_run = world.run(NOW + timedelta(hours=3))
    assert rows() == first
    assert second_run.status == "done" and second_run.members == 12


def test_month_over_month_snapshots_are_kept(world: World) -> None:
    m = world.member("ada")
    world.buy(m, date(2026, 1, 20), 100)
    world.run(datetime(2026, 1, 30, 19, 0, tzinfo=UTC))
    world.buy(m, date(2026, 2, 20), 100)
    world.run(datetime(2026, 2, 27, 19, 0, tzinfo=UTC))
    world.run()
    assert [world.snapshot(m, date(2026, k, 1)).purchases for k in (1, 2, 3)] == [1, 2, 2]


def test_erased_members_are_skipped(world: World) -> None:
    kept, erased = world.member("kept"), world.member("gone")
    world.buy(kept, date(2026, 2, 1), 100)
    world.buy(erased, date(2026, 2, 1), 100)
    with world.rt.sessions.begin() as s:
        privacy.erase(s, erased, NOW)
    run = world.run()
    assert run.members == 1
    with world.rt.sessions.begin() as s:
        assert s.get(MemberSnapshot, (erased, date(2026, 3, 1))) is None
        assert s.scalars(select(LifecycleTransition).where(LifecycleTransition.member_id == erased)).all() == []
        assert s.get(Member, erased).tier is None


def test_lifetime_value_figures_are_stored_and_never_nan(world: World) -> None:
    rng = np.random.default_rng(14)
    ms = [world.member(f"m{k}") for k in range(60)]
    for m in ms:   # each member buys at their own rate until they drop out (half of them) at a random time
        rate, start = rng.gamma(2.0, 1 / 30), int(rng.integers(0, 200))
        end = start + int(rng.integers(20, 200)) if rng.random() < 0.5 else 433
        day = start
        while day < end:
            world.buy(m, date(2025, 1, 1) + timedelta(days=day), float(rng.integers(50, 500)))
            day += 1 + int(rng.exponential(1 / rate))
    run = world.run()
    assert run.parameters["bgnbd"] is not None, run.parameters["clv_errors"]
    assert set(run.parameters["bgnbd"]) == {"r", "alpha", "a", "b", "log_likelihood"}
    assert run.parameters["gamma_gamma"] is not None, run.parameters["clv_errors"]
    assert run.parameters["spend_model"] == "gamma_gamma"
    with world.rt.sessions.begin() as s:
        snaps = s.scalars(select(MemberSnapshot)).all()
        assert len(snaps) == 60
        for snap in snaps:
            assert 0 <= snap.p_alive <= 1
            assert snap.expected_purchases_30 <= snap.expected_purchases_90 <= snap.expected_purchases_365
            assert isinstance(snap.clv_fen, int) and snap.clv_fen >= 0
            assert snap.expected_spend_fen > 0
            # The default (next_due_min_purchase_days = 0): BG/NBD's expectation, when at least one purchase a year.
            if snap.expected_purchases_365 >= 1:
                assert snap.next_purchase_due == TODAY + timedelta(days=int(np.ceil(365 / snap.expected_purchases_365)))
            else:
                assert snap.next_purchase_due is None


def test_amounts_gamma_gamma_cannot_model_still_give_a_lifetime_value_from_shrunk_means(world: World) -> None:
    rng = np.random.default_rng(15)
    ms = [world.member(f"m{k}") for k in range(60)]
    for m in ms:   # as above, but every basket is 100 yuan: Gamma-Gamma cannot tell spread from noise
        rate, start = rng.gamma(2.0, 1 / 30), int(rng.integers(0, 200))
        end = start + int(rng.integers(20, 200)) if rng.random() < 0.5 else 433
        day = start
        while day < end:
            world.buy(m, date(2025, 1, 1) + timedelta(days=day), 100)
            day += 1 + int(rng.exponential(1 / rate))
    run = world.run()
    assert run.parameters["bgnbd"] is not None and run.parameters["gamma_gamma"] is None
    assert [e["model"] for e in run.parameters["clv_errors"]] == ["gamma_gamma"]
    assert run.parameters["spend_model"] == "shrunk_mean"
    with world.rt.sessions.begin() as s:
        snaps = s.scalars(select(MemberSnapshot)).all()
    assert len(snaps) == 60
    # Everyone's own mean and the overall mean are 100 yuan, so everyone's expected spend is 100 yuan, and the
    # lifetime value is the discounted purchases BG/NBD expects times 10,000 fen.
    assert {snap.expected_spend_fen for snap in snaps} == {10_000}
    for snap in snaps:
        assert snap.clv_fen is not None and snap.clv_fen >= 0
        assert snap.clv_fen <= 10_000 * snap.expected_purchases_365 + 1


def test_next_purchase_due_from_the_own_gap_when_configured_or_without_bgnbd(world: World, rt: Any) -> None:
    m = world.member("regular")
    for day in (date(2026, 1, 24), date(2026, 2, 5), date(2026, 2, 17), date(2026, 3, 1)):   # every 12 days
        world.buy(m, day, 100)
    run = world.run()   # the default, but one member: no BG/NBD, so the own gap (4 purchase days >= 3)
    assert world.snapshot(m).next_purchase_due == date(2026, 3, 13)
    assert run.parameters["next_due"] == {"min_purchase_days": 0}
    for k, due in ((3, date(2026, 3, 13)), (5, None)):   # 5: too few purchase days, and no BG/NBD to fall back on
        rt.settings = rt.settings.model_copy(update={"segments": rt.settings.segments.model_copy(
            update={"next_due_min_purchase_days": k})})
        world.run()
        assert world.snapshot(m).next_purchase_due == due, k


def test_a_fit_that_cannot_be_made_stores_no_lifetime_value(world: World) -> None:
    m = world.member("only")
    world.buy(m, date(2026, 2, 1), 100)   # no repeat buyer anywhere: BG/NBD cannot be fitted
    run = world.run()
    snap = world.snapshot(m)
    assert snap.p_alive is None and snap.clv_fen is None
    assert run.parameters["bgnbd"] is None
    assert run.parameters["clv_errors"][0]["code"] == "segments.too_few_repeat_buyers"


def test_members_tier_follows_the_pyramid_and_a_purchase_earns_at_its_rate(world: World, rt: Any) -> None:
    rt.settings = rt.settings.model_copy(update={"points": rt.settings.points.model_copy(
        update={"tier_multipliers_pct": {"vip": 200}})})
    top = world.member("top")
    world.buy(top, date(2026, 2, 1), 1000)
    rest = [world.member(f"r{k}") for k in range(5)]
    for k, m in enumerate(rest):
        world.buy(m, date(2026, 2, 1), 10 + k)
    world.run()
    # 6 buyers: 1 vip, no major (ceil(6 x 5%) = 1 place, taken), 1 ordinary (ceil(6 x 20%) = 2), 4 small.
    assert [world.tier(m) for m in (top, *rest)] == ["vip", "small", "small", "small", "small", "ordinary"]
    with rt.sessions.begin() as s:
        from mallapp.domain import points
        points.open_account(s, top)
        recorded = purchases.record_purchase(s, rt.settings, merchant_id=world.merchant, member_id=top,
                                             receipt_no="after-run", amount_fen=10_000, occurred_at=NOW, now=NOW)
        assert recorded.purchase.points_earned == 20   # 100 yuan: 10 points, doubled for vip


def test_tier_view_t_tier_and_none(world: World, rt: Any) -> None:
    m = world.member("ada")
    world.buy(m, date(2026, 2, 1), 100)
    rt.settings = rt.settings.model_copy(update={"segments": rt.settings.segments.model_copy(
        update={"tier_view": "t_tier"})})
    world.run()
    assert world.tier(m) == "T4"
    rt.settings = rt.settings.model_copy(update={"segments": rt.settings.segments.model_copy(
        update={"tier_view": "none"})})
    world.run()
    assert world.tier(m) is None


def test_run_rows_record_status_parameters_and_counts(world: World) -> None:
    world.buy(world.member("ada"), date(2026, 2, 1), 100)
    run = world.run(trigger="cli")
    assert (run.status, run.trigger, run.month, run.as_of, run.members) == ("done", "cli", date(2026, 3, 1), TODAY, 1)
    assert run.counts["lifecycle"]["active"] == 1 and run.counts["transitions"] == 1
