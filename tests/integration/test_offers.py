"""Proximity offers: eligibility, frequency caps in the mall's time zone, ranking, and the consumer end to end."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from factories import Shop, at_item, at_store, build_shop, live_deal, walk
from sqlalchemy import select, update

from mallapp.domain import coupons, follows, members, merchants, offers
from mallapp.domain.deals import Deal
from mallapp.domain.notifications import Notification
from mallapp.domain.venue import Store
from mallapp.processes import offers as offer_consumer
from mallapp.processes.worker import Worker

DEAL_TEMPLATE = "demo-deal-announced"
SEND_PATH = "/cgi-bin/message/subscribe/send"


@pytest.fixture
def shop(rt, venue) -> Shop:
    return build_shop(rt, venue)


def push(rt, event: offers.Event, settings=None) -> int | None:
    """Run one decision and delivery; the deal offered, or None."""
    with rt.sessions.begin() as s:
        recorded = offers.offer(s, settings or rt.settings, event, rt.now())
        if recorded is None:
            return None
        assert recorded.created
        return s.get(Notification, recorded.notification_id).deal_id


def without_quiet_hours(settings):
    return settings.model_copy(update={"offers": settings.offers.model_copy(
        update={"quiet_start": "00:00", "quiet_end": "00:00"})})


# --- caps ------------------------------------------------------------------------------------------

def test_the_daily_cap_counts_the_malls_day_and_resets_at_local_midnight(rt, shop, clock):
    settings = without_quiet_hours(rt.settings)
    ids = [live_deal(rt, shop, title=f"Deal {n}") for n in range(4)]
    clock.now = datetime(2026, 3, 10, 15, 50, tzinfo=UTC)  # 23:50 in Shanghai
    pushed = [push(rt, at_store(rt, shop), settings) for _ in range(3)]
    assert pushed == ids[:3]  # equal rank: the older deal first
    assert push(rt, at_store(rt, shop), settings) is None  # 3 a day
    # 00:10 in Shanghai: a new mall day, though still the same UTC day.
    clock.advance(minutes=20)
    fourth = ids[3]
    assert push(rt, at_store(rt, shop), settings) == fourth
    # The other three were offered within 24 h: nothing else is eligible.
    assert push(rt, at_store(rt, shop), settings) is None
    with rt.sessions() as s:
        keys = sorted(s.scalars(select(Notification.key)))
    assert keys[-1] == f"offer:{shop.member}:{fourth}:2026-03-11"


def test_in_one_batch_each_offer_counts_against_the_caps_of_the_events_after_it(rt, shop):
    ids = [live_deal(rt, shop, title=f"Deal {n}") for n in range(5)]
    with rt.sessions.begin() as s:
        batch = offers.offer_many(s, None, rt.settings, [at_store(rt, shop)] * 5, rt.now())
        offered = [s.get(Notification, r.notification_id).deal_id if r else None for r in batch]
    assert offered == ids[:3] + [None, None]  # three a day, each deal once
    assert push(rt, at_store(rt, shop)) is None


def test_a_deal_is_not_offered_to_the_same_member_twice_within_24_hours(rt, shop, clock):
    deal_id = live_deal(rt, shop)
    assert push(rt, at_store(rt, shop)) == deal_id
    clock.advance(hours=23, minutes=30)  # 09:30 the next mall day: a new day, but not 24 h later
    assert push(rt, at_store(rt, shop)) is None
    clock.advance(minutes=31)
    assert push(rt, at_store(rt, shop)) == deal_id


@pytest.mark.parametrize(("utc", "offered"), [((14, 0), False), ((14, 30), True), ((0, 59), True),
                                              ((1, 0), False)])
def test_quiet_hours_are_in_mall_time(rt, shop, clock, utc, offered):
    # Quiet from 22:30 to 09:00 Shanghai; the UTC times are 22:00, 22:30, 08:59 and 09:00 there.
    settings = rt.settings.model_copy(update={"offers": rt.settings.offers.model_copy(
        update={"quiet_start": "22:30", "quiet_end": "09:00"})})
    live_deal(rt, shop)
    clock.now = datetime(2026, 3, 10, *utc, tzinfo=UTC)
    assert (push(rt, at_store(rt, shop), settings) is None) is offered


def test_stale_events_are_dropped(rt, shop, clock):
    live_deal(rt, shop)
    event = at_store(rt, shop)
    clock.advance(seconds=rt.settings.offers.max_event_age_s + 1)
    assert push(rt, event) is None


def test_a_muted_store_or_muting_everything_means_no_offer(rt, shop):
    deal_id = live_deal(rt, shop)
    with rt.sessions.begin() as s:
        follows.mute(s, shop.member, shop.store, rt.now())
    assert push(rt, at_store(rt, shop)) is None
    with rt.sessions.begin() as s:
        follows.unmute(s, shop.member, shop.store)
        follows.mute(s, shop.member, None, rt.now())
    assert push(rt, at_store(rt, shop)) is None
    with rt.sessions.begin() as s:
        follows.unmute(s, shop.member, None)
    assert push(rt, at_store(rt, shop)) == deal_id


# --- eligibility -----------------------------------------------------------------------------------

def test_followers_only_deals_reach_followers_only(rt, shop):
    deal_id = live_deal(rt, shop, followers_only=True)
    assert push(rt, at_store(rt, shop)) is None
    with rt.sessions.begin() as s:
        follows.follow(s, shop.member, shop.store, rt.now())
    assert push(rt, at_store(rt, shop)) == deal_id


def test_the_member_rule_must_match(rt, shop):
    deal_id = live_deal(rt, shop, member_rule="birthday_month")
    assert push(rt, at_store(rt, shop)) is None  # no birthday on file
    with rt.sessions.begin() as s:
        members.get(s, shop.member).birthday = date(1990, 3, 21)  # March, as the clock
    assert push(rt, at_store(rt, shop)) == deal_id


def test_untargeted_paused_sold_out_and_fully_claimed_deals_are_not_offered(rt, shop):
    live_deal(rt, shop, store_ids=[], zone_ids=[shop.item_zone])  # targets another zone
    paused = live_deal(rt, shop)
    sold_out = live_deal(rt, shop, quota=1)
    claimed = live_deal(rt, shop)
    with rt.sessions.begin() as s:
        s.execute(update(Deal).where(Deal.id == paused).values(status="paused"))
        other, _ = members.sign_in(s, openid="o-bo", unionid=None, now=rt.now())
        coupons.claim(s, rt.settings, other.id, sold_out, rt.now())
        coupons.claim(s, rt.settings, shop.member, claimed, rt.now())  # per_member_limit 1
    assert push(rt, at_store(rt, shop)) is None


# --- ranking ---------------------------------------------------------------------------------------

def test_sale_item_beats_store_beats_zone(rt, shop):
    by_zone = live_deal(rt, shop, store_ids=[], zone_ids=[shop.item_zone])
    by_store = live_deal(rt, shop)
    by_item = live_deal(rt, shop, store_ids=[], sale_item_ids=[shop.item])
    assert [push(rt, at_item(rt, shop)) for _ in range(3)] == [by_item, by_store, by_zone]


def test_a_store_the_member_has_no_coupons_from_ranks_first(rt, shop):
    coffee = live_deal(rt, shop)
    books = live_deal(rt, shop, store_id=shop.other_store)  # a bookshop deal shown at the coffee shop
    earlier = live_deal(rt, shop, store_id=shop.other_store)
    with rt.sessions.begin() as s:
        coupons.claim(s, rt.settings, shop.member, earlier, rt.now())  # the member has a bookshop coupon
    assert push(rt, at_store(rt, shop)) == coffee
    assert push(rt, at_store(rt, shop)) == books


def test_more_remaining_quota_breaks_a_tie(rt, shop):
    nearly_gone = live_deal(rt, shop)
    plenty = live_deal(rt, shop)
    with rt.sessions.begin() as s:
        s.execute(update(Deal).where(Deal.id == nearly_gone).values(claimed=9))
    assert push(rt, at_store(rt, shop)) == plenty


# --- end to end ------------------------------------------------------------------------------------

def test_a_dwell_at_a_store_delivers_one_offer_and_the_same_day_no_more(client, rt, emulator, members_api, venue,
                                                                       clock):
    ada = members_api.sign_in(openid="o-ada")
    emulator.grant_subscription("o-ada", DEAL_TEMPLATE)
    reply = client.post("/api/v1/me/subscriptions", json={"results": {DEAL_TEMPLATE: "accept"}},
                        headers=ada["headers"])
    assert reply.status_code == 200, reply.get_json()
    with rt.sessions.begin() as s:
        merchant, _ = merchants.create(s, "Starlight Coffee", rt.now())
        s.execute(update(Store).where(Store.id == venue.store).values(merchant_id=merchant.id))
    deal_id = live_deal(rt, Shop(merchant.id, venue.store, 0, venue.store_zone, venue.item_zone, venue.item, 0))
    worker = Worker(rt, "worker-1", block_ms=0, flush_every_s=0)
    worker.ensure_group()
    consumer = offer_consumer.Consumer(rt, "offers-1", block_ms=0)
    consumer.ensure_group()

    walk(client, ada, worker, clock, 25, {venue.minors["store"]: -62})
    assert consumer.step(block_ms=0) == 1 and consumer.offered == 1
    items = client.get("/api/v1/me/inbox", headers=ada["headers"]).get_json()["items"]
    assert [(i["kind"], i["deal_id"]) for i in items if i["deal_id"] == deal_id] == [("deal", deal_id)]
    [sent] = emulator.messages
    assert sent["touser"] == "o-ada" and sent["template_id"] == DEAL_TEMPLATE
    assert sent["page"] == f"pages/deals/detail?id={deal_id}"
    assert rt.redis.xpending(offer_consumer.EVENTS_STREAM, offers.GROUP)["pending"] == 0

    # She leaves, comes back an hour later and dwells again: a new event, but no second offer.
    clock.advance(seconds=31)
    worker.sweep()
    clock.advance(hours=1)
    walk(client, ada, worker, clock, 25, {venue.minors["store"]: -62})
    assert consumer.step(block_ms=0) == 1 and consumer.offered == 1
    items = client.get("/api/v1/me/inbox", headers=ada["headers"]).get_json()["items"]
    assert len([i for i in items if i["deal_id"] == deal_id]) == 1
    assert len(emulator.messages) == 1 and emulator.request_count(SEND_PATH) == 1
    with rt.sessions() as s:
        assert s.get(Deal, deal_id).pushes == 2  # the inbox item and the subscribe message


def test_a_poison_event_is_set_aside_and_the_others_of_its_batch_are_decided_once(rt, clock, monkeypatch):
    decided: list[int] = []

    def offer_many(session, senders, settings, events, now):
        if any(e.member_id == 666 for e in events):
            raise RuntimeError("this event breaks the decision")
        decided.extend(e.member_id for e in events)
        return []

    monkeypatch.setattr(offer_consumer, "offer_many", offer_many)
    consumer = offer_consumer.Consumer(rt, "offers-1", block_ms=0, claim_idle_ms=0, max_deliveries=2)
    consumer.ensure_group()
    for i, member_id in enumerate((1, 666, 2)):
        rt.redis.xadd(offer_consumer.EVENTS_STREAM, {"id": str(i), "member_id": str(member_id), "zone_id": "1",
                                                     "store_id": "", "sale_item_id": "",
                                                     "at": str(clock.now.timestamp())})
    assert consumer.step(block_ms=0) == 3
    assert decided == [1, 2]
    assert rt.redis.xpending(offer_consumer.EVENTS_STREAM, offers.GROUP)["pending"] == 1
    assert consumer.step(block_ms=0) == 1  # claimed again: its second delivery, so it is set aside
    assert rt.redis.xpending(offer_consumer.EVENTS_STREAM, offers.GROUP)["pending"] == 0
    (_, dead), = rt.redis.xrange(f"{offer_consumer.EVENTS_STREAM}:dead")
    assert dead[b"member_id"] == b"666" and dead[b"dead:error"] == b"RuntimeError: this event breaks the decision"
    assert consumer.dead_lettered == 1 and decided == [1, 2]
