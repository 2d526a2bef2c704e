"""Campaigns: audience rules and the live count, roles, the control group, once per member, timings, offers, report."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from factories import api_error, drain_sends, inbox_texts, reads_english
from sqlalchemy import func, select

from mallapp.domain import campaigns, members, merchants, sends, venue_admin
from mallapp.domain.campaigns import audience as audiences
from mallapp.domain.campaigns.stats import newcombe
from mallapp.domain.coupons import Coupon
from mallapp.domain.follows import Follow
from mallapp.domain.notifications import Notification
from mallapp.domain.points import PointsEntry
from mallapp.domain.purchases import Purchase
from mallapp.domain.segments import LifecycleTransition, MemberSnapshot

OPS = "/api/v1/ops/campaigns"
MONTH, OLDER = date(2026, 3, 1), date(2025, 12, 1)  # the conftest clock: 10:00 on 10 March 2026, mall time
TODAY = date(2026, 3, 10)
MESSAGE = {"kind": "message", "title": "春季会员日", "body": "本周末全场双倍积分", "title_en": "Spring member day",
           "body_en": "Double points all weekend"}


# --- building a small mall ------------------------------------------------------------------------

def add_members(rt, n: int, prefix: str = "o-c") -> list[int]:
    with rt.sessions.begin() as s:
        return [members.sign_in(s, openid=f"{prefix}-{i}", unionid=None, now=rt.now())[0].id for i in range(n)]


def snapshot(s, member_id: int, now: datetime, month: date = MONTH, **over: Any) -> None:
    values: dict[str, Any] = dict(
        member_id=member_id, month=month, as_of=TODAY, window_start=TODAY - timedelta(days=365), purchases=1,
        purchase_days=1, spend_fen=10_000, scored_spend_fen=10_000, visits=1, mean_gap_days=None,
        first_purchase_at=None, last_purchase_at=None, t_tier=None, pyramid=None, rfm_r=None, rfm_f=None,
        rfm_m=None, rfm_segment=None, lifecycle="active", p_alive=None, expected_purchases_30=None,
        expected_purchases_90=None, expected_purchases_365=None, expected_spend_fen=None, clv_fen=None,
        next_purchase_due=None, computed_at=now)
    values.update(over)
    s.add(MemberSnapshot(**values))


_receipts = iter(range(1, 10**9))


def purchase(s, merchant_id: int, member_id: int, amount_fen: int, at: datetime, refunded_fen: int = 0) -> None:
    s.add(Purchase(merchant_id=merchant_id, receipt_no=f"R-{next(_receipts)}", member_id=member_id,
                   amount_fen=amount_fen, refunded_fen=refunded_fen, points_earned=0, birthday_bonus=0,
                   points_reversed=0, occurred_at=at, created_at=at))


@pytest.fixture
def mall(rt, merchant) -> dict[str, Any]:
    """Two stores (food by the conftest merchant, fashion by another) and six members with segments."""
    now = rt.now()
    with rt.sessions.begin() as s:
        other, _key = merchants.create(s, "Silk Road Fashion", now)
        food = venue_admin.create_store(s, name="Noodle House", floor=1, x=0, y=0, merchant_id=merchant["id"],
                                        category="dining", now=now).id
        fashion = venue_admin.create_store(s, name="Silk Road", floor=2, x=0, y=0, merchant_id=other.id,
                                           category="fashion", now=now).id
    m = add_members(rt, 6, "o-mall")
    with rt.sessions.begin() as s:
        snapshot(s, m[0], now, t_tier="T1", pyramid="vip", rfm_segment="champions", p_alive=0.9,
                 last_purchase_at=now - timedelta(days=5))
        snapshot(s, m[1], now, t_tier="T2", pyramid="major", rfm_segment="loyal", lifecycle="weakening", p_alive=0.5,
                 last_purchase_at=now - timedelta(days=40))
        snapshot(s, m[1], now, month=OLDER, t_tier="T3")
        snapshot(s, m[2], now, lifecycle="lost", p_alive=0.05, last_purchase_at=now - timedelta(days=400))
        snapshot(s, m[2], now, month=OLDER, t_tier="T1")
        snapshot(s, m[3], now, t_tier="T4", pyramid="small", rfm_segment="hibernating", lifecycle="new")
        snapshot(s, m[5], now, t_tier="T1", pyramid="vip")
        purchase(s, merchant["id"], m[0], 5_000, now - timedelta(days=5))
        purchase(s, other.id, m[1], 8_000, now - timedelta(days=40))
        purchase(s, merchant["id"], m[2], 3_000, now - timedelta(days=400))
        s.add(Follow(member_id=m[0], store_id=fashion, created_at=now))
        s.get_one(members.Member, m[5]).openid = f"erased:{m[5]}"  # erased: matches nothing
    return {"members": m, "food": food, "fashion": fashion, "merchant": merchant, "other": other.id}


def create(client, headers, **over: Any) -> dict[str, Any]:
    body = {"name": "Spring member day", "steps": [{"offer": MESSAGE}], "timing": "now", **over}
    reply = client.post(OPS, json=body, headers=headers)
    assert reply.status_code == 201, reply.get_json()
    return reply.get_json()


def launch(client, headers, campaign_id: int) -> dict[str, Any]:
    reply = client.post(f"{OPS}/{campaign_id}/launch", headers=headers)
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()


def campaign_messages(rt, campaign_id: int) -> dict[int, int]:
    """Member -> how many inbox items of this campaign they hold."""
    with rt.sessions() as s:
        return dict(s.execute(select(Notification.member_id, func.count())
                              .where(Notification.key.like(f"campaign:{campaign_id}:%"))
                              .group_by(Notification.member_id)).all())


def arms(rt, campaign_id: int) -> dict[str, set[int]]:
    with rt.sessions() as s:
        rows = s.execute(select(campaigns.Assignment.arm, campaigns.Assignment.member_id)
                         .where(campaigns.Assignment.campaign_id == campaign_id)).all()
    out: dict[str, set[int]] = {"treated": set(), "control": set()}
    for arm, member_id in rows:
        out[arm].add(member_id)
    return out


def tick(rt) -> int:
    return campaigns.tick(rt.sessions, rt.redis, rt.settings, rt.now())


# --- the audience ---------------------------------------------------------------------------------

RULES = [
    ({}, {0, 1, 2, 3, 4}),
    ({"t_tiers": ["T1", "T2"]}, {0, 1}),
    ({"last_t_tiers": ["T1"]}, {0, 2}),  # m2 is lost now, and was T1 before
    ({"pyramid": ["vip"]}, {0}),
    ({"rfm_segments": ["loyal", "hibernating"]}, {1, 3}),
    ({"lifecycle": ["lost"]}, {2}),
    ({"p_alive_min": 0.4, "p_alive_max": 0.95}, {0, 1}),
    ({"p_alive_max": 0.1}, {2}),
    ({"days_since_purchase_min": 30}, {1, 2}),
    ({"days_since_purchase_max": 10}, {0}),
    ({"bought_at_stores": ["food"]}, {0}),  # m2 bought there too, 400 days ago
    ({"bought_at_stores": ["food"], "bought_within_days": 500}, {0, 2}),
    ({"bought_in_categories": ["fashion"]}, {1}),
    ({"follows_stores": ["fashion"]}, {0}),
    ({"lifecycle": ["active"], "follows_stores": ["fashion"]}, {0}),
    ({"lifecycle": ["weakening"], "follows_stores": ["fashion"]}, set()),
]


@pytest.mark.parametrize(("rules", "expected"), RULES, ids=lambda v: str(v))
def test_each_audience_rule_selects_its_members_and_the_live_count_agrees(client, rt, mall, ops_marketing, rules,
                                                                         expected):
    rules = {k: [mall[v] for v in vs] if k in ("bought_at_stores", "follows_stores") else vs
             for k, vs in rules.items()}
    reply = client.post(f"{OPS}/audience-count", json=rules, headers=ops_marketing["headers"])
    assert reply.status_code == 200, reply.get_json()
    assert reply.get_json() == {"members": len(expected), "segments_month": MONTH.isoformat()}
    with rt.sessions() as s:
        found = set(s.scalars(audiences.query(s, audiences.Audience.from_dict(rules), rt.now())))
    assert found == {mall["members"][i] for i in expected}


def test_contradictory_or_unknown_audience_rules_are_refused(client, mall, ops_marketing):
    headers = ops_marketing["headers"]
    api_error(client.post(f"{OPS}/audience-count", json={"p_alive_min": 0.8, "p_alive_max": 0.2}, headers=headers),
              "campaign.invalid_audience")
    api_error(client.post(OPS, json={"name": "x", "steps": [{"offer": MESSAGE}], "timing": "now",
                                     "audience": {"follows_stores": [999_999]}}, headers=headers),
              "campaign.invalid_audience")
    api_error(client.post(f"{OPS}/audience-count", json={"tier": ["T1"]}, headers=headers), "request.invalid")


# --- who may do what ------------------------------------------------------------------------------

def test_only_marketing_and_admins_build_launch_and_cancel_and_every_ops_user_reads(
        client, mall, ops_marketing, ops_admin, ops_viewer, ops_desk, shoppers):
    made = create(client, ops_marketing["headers"])
    assert made["status"] == "draft" and made["control_pct"] == 10 and made["window_days"] == 30
    for refused in (ops_viewer, ops_desk):
        headers = refused["headers"]
        api_error(client.post(OPS, json={"name": "x", "steps": [{"offer": MESSAGE}], "timing": "now"},
                              headers=headers), "ops.marketing_required")
        api_error(client.post(f"{OPS}/audience-count", json={}, headers=headers), "ops.marketing_required")
        api_error(client.post(f"{OPS}/{made['id']}/launch", headers=headers), "ops.marketing_required")
        api_error(client.post(f"{OPS}/{made['id']}/cancel", headers=headers), "ops.marketing_required")
        assert client.get(OPS, headers=headers).get_json()["campaigns"][0]["id"] == made["id"]
        assert client.get(f"{OPS}/{made['id']}", headers=headers).status_code == 200
        assert client.get(f"{OPS}/{made['id']}/report", headers=headers).status_code == 200
    api_error(client.get(OPS, headers=shoppers["ada"]["headers"]), "auth.wrong_caller")
    api_error(client.get(f"{OPS}/{made['id']}/report"), "auth.required")
    api_error(client.get(f"{OPS}/999999", headers=ops_viewer["headers"]), "campaign.not_found")
    assert launch(client, ops_admin["headers"], made["id"])["status"] == "running"
    api_error(client.post(f"{OPS}/{made['id']}/launch", headers=ops_marketing["headers"]), "campaign.invalid_state")


# --- delivery: the control group, once per member, off the request --------------------------------

def test_a_campaign_takes_its_texts_in_both_languages_and_english_readers_get_the_chinese_where_none_was_written(
        client, rt, ops_marketing):
    chinese, english = add_members(rt, 2, "o-lang")
    reads_english(rt, english)
    offer = {"kind": "message", "title": {"zh-CN": "周末惊喜", "en": "A weekend surprise"},
             "body": {"zh-CN": "本周末到店领取小礼品"}}
    made = create(client, ops_marketing["headers"], steps=[{"offer": offer}], control_pct=0)
    assert made["steps"][0]["offer"].items() >= {"title": "周末惊喜", "title_en": "A weekend surprise",
                                                 "body": "本周末到店领取小礼品", "body_en": None}.items()
    launch(client, ops_marketing["headers"], made["id"])
    drain_sends(rt)
    assert inbox_texts(rt, chinese) == [("周末惊喜", "本周末到店领取小礼品")]
    assert inbox_texts(rt, english) == [("A weekend surprise", "本周末到店领取小礼品")]  # no English body: the zh-CN
    both = {"kind": "message", "title": {"zh-CN": "周末惊喜", "en": "A weekend surprise"}, "title_en": "Twice"}
    refused = client.post(OPS, json={"name": "x", "steps": [{"offer": both}], "timing": "now"},
                          headers=ops_marketing["headers"])
    assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "request.invalid"


@pytest.fixture
def crowd(rt) -> list[int]:
    return add_members(rt, 80, "o-crowd")


def test_a_campaign_reaches_each_treated_member_once_and_never_its_control(client, rt, crowd, ops_marketing):
    english = set(crowd[::2])
    for member_id in english:
        reads_english(rt, member_id)
    made = create(client, ops_marketing["headers"], control_pct=25)
    launch(client, ops_marketing["headers"], made["id"])
    assert campaign_messages(rt, made["id"]) == {}  # nobody is messaged inside the request
    drain_sends(rt)
    drawn = arms(rt, made["id"])
    assert drawn["treated"] | drawn["control"] == set(crowd) and not drawn["treated"] & drawn["control"]
    assert 5 <= len(drawn["control"]) <= 40  # 25% of 80 is 20; the draw is the campaign's own
    assert campaign_messages(rt, made["id"]) == {m: 1 for m in drawn["treated"]}
    with rt.sessions() as s:
        assert sends.fanout_done(s, "campaign", made["id"])
        texts = {row.member_id: (row.title, row.body) for row in s.execute(
            select(Notification.member_id, Notification.title, Notification.body)
            .where(Notification.key == f"campaign:{made['id']}:0"))}
        # Each member reads the ops' words in their own language: zh-CN by default, English when chosen.
        assert {m: texts[m] for m in drawn["treated"]} == {
            m: ("Spring member day", "Double points all weekend") if m in english else ("春季会员日", "本周末全场双倍积分")
            for m in drawn["treated"]}
        assert drawn["treated"] & english and drawn["treated"] - english

    # Everything delivered again (a lost acknowledgement, a replayed dead letter): nobody hears twice,
    # and the draw is the same.
    sends.enqueue_fanout(rt.redis, "campaign", made["id"])
    sends.enqueue_batches(rt.redis, "campaign", made["id"], sorted(crowd), 7)
    drain_sends(rt)
    assert arms(rt, made["id"]) == drawn
    assert campaign_messages(rt, made["id"]) == {m: 1 for m in drawn["treated"]}
    with rt.sessions() as s:
        ours = {c["campaign_id"]: c for c in campaigns.received(s, min(drawn["treated"]))}[made["id"]]
        assert (ours["arm"], ours["steps_delivered"], ours["steps"]) == ("treated", 1, 1)
        control = {c["campaign_id"]: c for c in campaigns.received(s, min(drawn["control"]))}[made["id"]]
        assert (control["arm"], control["steps_delivered"], control["last_sent_at"]) == ("control", 0, None)
    # The service desk's record of a member lists the campaigns they were drawn into, either arm.
    for arm in ("treated", "control"):
        record = client.get(f"/api/v1/ops/members/{min(drawn[arm])}", headers=ops_marketing["headers"]).get_json()
        assert [(c["campaign_id"], c["arm"]) for c in record["campaigns"]] == [(made["id"], arm)]


def test_the_same_audience_drawn_again_keeps_its_arms(rt):
    ids = list(range(1, 2001))
    assert [campaigns.draw(99, m, 10) for m in ids] == [campaigns.draw(99, m, 10) for m in ids]


def test_a_cancelled_campaign_delivers_nothing_more(client, rt, crowd, ops_marketing):
    made = create(client, ops_marketing["headers"])
    launch(client, ops_marketing["headers"], made["id"])
    cancelled = client.post(f"{OPS}/{made['id']}/cancel", headers=ops_marketing["headers"]).get_json()
    assert cancelled["status"] == "cancelled"
    drain_sends(rt)
    assert campaign_messages(rt, made["id"]) == {}
    api_error(client.post(f"{OPS}/{made['id']}/cancel", headers=ops_marketing["headers"]), "campaign.invalid_state")


def test_points_are_credited_once_and_coupons_within_the_deals_quota(client, rt, crowd, ops_marketing, ops_admin,
                                                                     merchant):
    with rt.sessions.begin() as s:
        store = venue_admin.create_store(s, name="Tea Corner", floor=1, x=0, y=0, merchant_id=merchant["id"],
                                         now=rt.now()).id
    now = rt.now()
    deal = client.post("/api/v1/merchant/deals", headers=merchant["headers"], json={
        "title": "Jasmine tea, 5 yuan off", "store_id": store, "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=10)).isoformat(), "quota": 10,
        "benefit": {"kind": "amount_off", "amount_fen": 500}}).get_json()["id"]
    client.post(f"/api/v1/merchant/deals/{deal}/submit", headers=merchant["headers"])
    client.post(f"/api/v1/ops/deals/{deal}/approve", headers=ops_admin["headers"])
    gift = create(client, ops_marketing["headers"], steps=[{"offer": {**MESSAGE, "kind": "points", "points": 50}}])
    coupon = create(client, ops_marketing["headers"], steps=[{"offer": {**MESSAGE, "kind": "coupon", "deal_id": deal,
                                                                        "coupon_valid_days": 3}}])
    for made in (gift, coupon):
        launch(client, ops_marketing["headers"], made["id"])
    drain_sends(rt)
    sends.enqueue_batches(rt.redis, "campaign", gift["id"], crowd)
    drain_sends(rt)
    gifted, treated = arms(rt, gift["id"])["treated"], arms(rt, coupon["id"])["treated"]
    with rt.sessions() as s:
        credited = dict(s.execute(select(PointsEntry.member_id, func.sum(PointsEntry.delta))
                                  .where(PointsEntry.reason == "campaign").group_by(PointsEntry.member_id)).all())
        held = list(s.scalars(select(Coupon).where(Coupon.deal_id == deal)))
    assert credited == {m: 50 for m in gifted}
    assert len(held) == 10 and {c.member_id for c in held} <= treated  # the quota bounds the gift
    assert all(c.valid_until == now + timedelta(days=3) for c in held)
    api_error(client.post(OPS, headers=ops_marketing["headers"], json={
        "name": "x", "timing": "now", "steps": [{"offer": {**MESSAGE, "kind": "coupon", "deal_id": 999_999}}]}),
        "campaign.deal_not_live")
    api_error(client.post(OPS, headers=ops_marketing["headers"], json={
        "name": "x", "timing": "now", "steps": [{"offer": {**MESSAGE, "kind": "points"}}]}), "campaign.invalid_offer")


# --- timings --------------------------------------------------------------------------------------

def test_a_campaign_timed_at_a_date_waits_for_the_clock(client, rt, clock, crowd, ops_marketing):
    start_at = clock.now + timedelta(hours=2)
    made = create(client, ops_marketing["headers"], timing="at", start_at=start_at.isoformat(), control_pct=0)
    assert launch(client, ops_marketing["headers"], made["id"])["status"] == "scheduled"
    tick(rt)
    drain_sends(rt)
    assert campaign_messages(rt, made["id"]) == {}
    clock.advance(hours=2)
    tick(rt)
    assert client.get(f"{OPS}/{made['id']}", headers=ops_marketing["headers"]).get_json()["status"] == "running"
    drain_sends(rt)
    assert campaign_messages(rt, made["id"]) == {m: 1 for m in crowd}
    api_error(client.post(OPS, headers=ops_marketing["headers"], json={
        "name": "x", "timing": "at", "steps": [{"offer": MESSAGE}]}), "campaign.invalid_timing")


def transition(s, member_id: int, day: date, to_state: str, now: datetime, from_state: str | None = "active") -> None:
    s.add(LifecycleTransition(member_id=member_id, day=day, from_state=from_state, to_state=to_state,
                              cause="test", created_at=now))


def test_lost_t1_and_t2_members_get_the_win_back_as_they_are_lost(client, rt, clock, mall, ops_marketing):
    m = mall["members"]
    made = create(client, ops_marketing["headers"], timing="lifecycle", lifecycle_state="lost", control_pct=0,
                  audience={"last_t_tiers": ["T1", "T2"]})
    launch(client, ops_marketing["headers"], made["id"])
    with rt.sessions.begin() as s:
        transition(s, m[3], TODAY, "lost", rt.now())  # a lost T4: not this campaign's
        transition(s, m[0], TODAY - timedelta(days=3), "lost", rt.now())  # lost before the launch
    tick(rt)
    drain_sends(rt)
    assert campaign_messages(rt, made["id"]) == {}
    clock.advance(days=1)
    with rt.sessions.begin() as s:
        transition(s, m[2], TODAY + timedelta(days=1), "lost", rt.now(), from_state="weakening")
    tick(rt)
    drain_sends(rt)
    tick(rt)
    drain_sends(rt)
    assert campaign_messages(rt, made["id"]) == {m[2]: 1}
    clock.advance(days=40)  # reactivated, and lost again: a member gets a campaign once
    with rt.sessions.begin() as s:
        transition(s, m[2], TODAY + timedelta(days=41), "lost", rt.now(), from_state="reactivated")
    tick(rt)
    drain_sends(rt)
    assert campaign_messages(rt, made["id"]) == {m[2]: 1}


def test_new_members_get_the_first_month_sequence_step_by_step(client, rt, clock, ops_marketing):
    newcomer, = add_members(rt, 1, "o-new")
    steps = [{"after_days": 0, "offer": {**MESSAGE, "title": "欢迎"}},
             {"after_days": 7, "offer": {**MESSAGE, "kind": "points", "points": 20, "title": "第二周"}}]
    made = create(client, ops_marketing["headers"], timing="lifecycle", lifecycle_state="new", steps=steps,
                  control_pct=0, window_days=10)
    launch(client, ops_marketing["headers"], made["id"])
    with rt.sessions.begin() as s:
        transition(s, newcomer, TODAY, "new", rt.now(), from_state=None)
    tick(rt)
    drain_sends(rt)
    clock.advance(days=6)
    tick(rt)
    drain_sends(rt)
    assert campaign_messages(rt, made["id"]) == {newcomer: 1}
    clock.advance(days=1)
    tick(rt)
    drain_sends(rt)
    assert campaign_messages(rt, made["id"]) == {newcomer: 2}
    with rt.sessions() as s:
        [received] = campaigns.received(s, newcomer)
    assert received["steps_delivered"] == 2
    clock.advance(days=3)  # the member's window is over, but a triggered campaign runs until it ends
    tick(rt)
    assert client.get(f"{OPS}/{made['id']}", headers=ops_marketing["headers"]).get_json()["status"] == "running"


def test_members_are_reached_when_their_next_purchase_is_due(client, rt, clock, ops_marketing):
    due, later = add_members(rt, 2, "o-due")
    with rt.sessions.begin() as s:
        snapshot(s, due, rt.now(), next_purchase_due=TODAY)
        snapshot(s, later, rt.now(), next_purchase_due=TODAY + timedelta(days=10))
    made = create(client, ops_marketing["headers"], timing="next_purchase_due", control_pct=0)
    launch(client, ops_marketing["headers"], made["id"])
    tick(rt)
    drain_sends(rt)
    assert campaign_messages(rt, made["id"]) == {due: 1}
    clock.advance(days=10)
    tick(rt)
    drain_sends(rt)
    assert campaign_messages(rt, made["id"]) == {due: 1, later: 1}


def test_quiet_hours_hold_a_campaign_until_morning(client, rt, clock, crowd, ops_marketing):
    clock.advance(hours=12)  # 22:00, mall time
    made = create(client, ops_marketing["headers"], control_pct=0)
    launch(client, ops_marketing["headers"], made["id"])
    drain_sends(rt)
    assert campaign_messages(rt, made["id"]) == {}
    clock.advance(hours=10, minutes=59)  # 08:59
    tick(rt)
    drain_sends(rt)
    assert campaign_messages(rt, made["id"]) == {}
    clock.advance(minutes=1)
    tick(rt)
    drain_sends(rt)
    assert campaign_messages(rt, made["id"]) == {m: 1 for m in crowd}


def test_a_member_messaged_often_this_week_waits_a_day(client, rt, clock, crowd, ops_marketing):
    for _ in range(2):  # [campaigns] max_per_week = 2
        launch(client, ops_marketing["headers"], create(client, ops_marketing["headers"], control_pct=0)["id"])
    third = create(client, ops_marketing["headers"], control_pct=0)
    launch(client, ops_marketing["headers"], third["id"])
    drain_sends(rt)
    assert campaign_messages(rt, third["id"]) == {}
    clock.advance(days=1)
    tick(rt)
    drain_sends(rt)
    assert campaign_messages(rt, third["id"]) == {}  # still two in the last seven days
    clock.advance(days=6, minutes=1)
    tick(rt)
    drain_sends(rt)
    assert campaign_messages(rt, third["id"]) == {m: 1 for m in crowd}


# --- the report -----------------------------------------------------------------------------------

def test_the_report_counts_buyers_and_spend_within_each_members_window(client, rt, clock, crowd, ops_marketing,
                                                                       ops_viewer, merchant):
    made = create(client, ops_marketing["headers"], control_pct=50, window_days=7)
    launch(client, ops_marketing["headers"], made["id"])
    drain_sends(rt)
    drawn = arms(rt, made["id"])
    treated, control = sorted(drawn["treated"]), sorted(drawn["control"])
    assert len(treated) >= 6 and len(control) >= 6
    start = rt.now()
    with rt.sessions.begin() as s:
        for member_id in treated[:6]:  # six treated buyers, one of them twice
            purchase(s, merchant["id"], member_id, 10_000, start + timedelta(days=2))
        purchase(s, merchant["id"], treated[0], 5_000, start + timedelta(days=6, hours=23))
        purchase(s, merchant["id"], treated[6], 9_000, start + timedelta(days=7))  # the window is over
        purchase(s, merchant["id"], treated[7], 9_000, start - timedelta(minutes=1))  # before the assignment
        purchase(s, merchant["id"], treated[8], 9_000, start + timedelta(days=1), refunded_fen=9_000)  # refunded
        for member_id in control[:2]:  # two control buyers, one partly refunded
            purchase(s, merchant["id"], member_id, 4_000, start + timedelta(days=3))
        purchase(s, merchant["id"], control[2], 3_000, start + timedelta(days=3), refunded_fen=1_000)
    clock.advance(days=8)
    tick(rt)
    report = client.get(f"{OPS}/{made['id']}/report", headers=ops_viewer["headers"]).get_json()
    nt, nc = len(treated), len(control)
    assert report["status"] == "finished" and report["windows_closed"] is True
    assert report["treated"] == {"members": nt, "contacted": nt, "buyers": 6, "purchases": 7, "spend_fen": 65_000,
                                 "conversion": 6 / nt, "spend_per_member_fen": 65_000 / nt}
    assert report["control"] == {"members": nc, "contacted": 0, "buyers": 3, "purchases": 3, "spend_fen": 10_000,
                                 "conversion": 3 / nc, "spend_per_member_fen": 10_000 / nc}
    expected = newcombe(6, nt, 3, nc)
    assert report["conversion_uplift"] == pytest.approx({"estimate": expected.estimate, "low": expected.low,
                                                         "high": expected.high})
    spend = report["spend_uplift_fen"]
    assert spend["estimate"] == pytest.approx(65_000 / nt - 10_000 / nc)
    assert spend["low"] < spend["estimate"] < spend["high"]
    assert "Newcombe" in report["methods"]["conversion_uplift"] and "Welch" in report["methods"]["spend_uplift"]
