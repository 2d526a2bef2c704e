"""End to end in the demo mall: shoppers walk past the gateways, and what they hear of the deals.

The walks go through the gateway's own code: per demo gateway, the ``beacons`` Listener on bleak's
replay backend hears the shoppers' phones (advertising their rotating identity) and the mall's
beacons; its Forwarder batches, signs and POSTs the sightings over HTTP to the app; the
proximity worker turns them into dwell events and the offers consumer into inbox items and
subscribe messages. A test clock moves a second at a time and the gateways play each second of
the walk as it comes (see ``SteppedGateways``), so minutes of walking take seconds.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from werkzeug.serving import WSGIRequestHandler, make_server

from mallapp.devtools import demo, walks
from mallapp.domain import offers
from mallapp.domain.deals import Deal
from mallapp.domain.proximity.history import ProximityEvent
from mallapp.domain.venue import Zone
from mallapp.processes import offers as offer_consumer
from mallapp.processes.worker import Worker

DEAL_TEMPLATE = "demo-deal-announced"

# Who walks where: (zone key of the demo plan, seconds there), as walks.ITINERARIES.
WALKS = {
    # Past four deal places: coffee, the Winter blend display, the bookshop, the sports shop.
    "demo-shopper-ada": (("north-entrance", 4), ("coffee", 30), ("winter-blend", 15), ("books", 30),
                         ("sports", 30), ("south-entrance", 4)),
    # Straight to the display and away again: near the coffee shop, but not for a store's dwell.
    "demo-shopper-bo": (("north-entrance", 4), ("winter-blend", 15), ("north-entrance", 4)),
    "demo-shopper-chen": (("south-entrance", 4), ("sports", 30), ("south-entrance", 4)),
    # Through the atrium: no deal there.
    "demo-shopper-dee": (("north-entrance", 4), ("atrium", 30), ("north-entrance", 4)),
}
QUOTA = {"demo-shopper-ada": 2, "demo-shopper-chen": 1}  # accepted subscribe opt-ins; the others none


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.fixture
def backend_url(app) -> Iterator[str]:
    """The app behind a real HTTP server in a thread: the gateways' forwarders POST to it."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="demo-walk-http", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


def walk(rt, client, clock, shoppers: dict[str, dict], backend_url: str, spool_root, seed: int) -> dict[str, int]:
    """The shoppers walk their WALKS from now, 10 s apart; return when everybody has left the mall.

    Every second: the clock moves on, each gateway sends what it heard in that second, the
    proximity worker and the offers consumer take a step.
    """
    settings = rt.settings
    mall = demo.seed_venue(rt)  # already seeded: the demo mall as the walks see it
    idents = []
    for openid in WALKS:  # what each phone advertises, as the mini-program asks for it
        ident = client.get("/api/v1/me/beacon-identity", headers=shoppers[openid]["headers"]).get_json()
        idents.append((ident["major"], ident["minor"]))
    rng = random.Random(seed)
    start = clock.now.timestamp()
    ends = [start + 10.0 * n + sum(1 for _ in walks.path(mall, it, 0.0, random.Random(0)))
            for n, it in enumerate(WALKS.values())]
    heard = walks.cycle(mall, idents, settings.beacons.identity_uuid, rng, max(ends) - start + 5,
                        itineraries=list(WALKS.values()), start=start)
    worker = Worker(rt, "worker-1", block_ms=0, flush_every_s=0, sweep_every_s=0)
    worker.ensure_group()
    consumer = offer_consumer.Consumer(rt, "offers-1", block_ms=0)
    consumer.ensure_group()
    silence = settings.beacons.zones.exit_timeout_s + 5  # then everybody has been swept out of the mall
    with walks.SteppedGateways(mall, heard, backend_url=backend_url,
                               uuids=(*settings.beacons.uuids, settings.beacons.identity_uuid),
                               spool_root=spool_root, clock=lambda: clock.now.timestamp()) as gateways:
        quiet = 0
        while quiet < silence:
            clock.advance(seconds=1)
            gateways.play_until(clock.now.timestamp())
            worker.step(block_ms=0)
            consumer.step(block_ms=0)
            quiet = quiet + 1 if not gateways.remaining() else 0
    worker.close()
    assert rt.redis.xpending(offer_consumer.EVENTS_STREAM, offers.GROUP)["pending"] == 0
    return gateways.totals


def dwelt(rt, members: dict[str, int], zone_keys: dict[int, str]) -> dict[str, list[str]]:
    """Each shopper's dwell events, in order, by the plan's zone key."""
    out: dict[str, list[str]] = {openid: [] for openid in members}
    by_id = {member_id: openid for openid, member_id in members.items()}
    with rt.sessions() as s:
        for event in s.scalars(select(ProximityEvent).order_by(ProximityEvent.at, ProximityEvent.id)):
            out[by_id[event.member_id]].append(zone_keys[event.zone_id])
    return out


def offered(client, shoppers: dict[str, dict], deal_keys: dict[int, str]) -> dict[str, list[str]]:
    """Each shopper's inbox, oldest first, by the plan's deal key."""
    out = {}
    for openid, member in shoppers.items():
        items = client.get("/api/v1/me/inbox", headers=member["headers"]).get_json()["items"]
        assert all(i["kind"] == "deal" for i in items)
        out[openid] = [deal_keys[i["deal_id"]] for i in reversed(items)]
    return out


def messaged(emulator, deal_keys: dict[int, str]) -> dict[str, list[str]]:
    """The subscribe messages WeChat received, per shopper in order, by deal key."""
    out: dict[str, list[str]] = {}
    for sent in emulator.messages:
        assert sent["template_id"] == DEAL_TEMPLATE
        page, _, deal_id = sent["page"].partition("?id=")
        assert page == "pages/deals/detail"
        out.setdefault(sent["touser"], []).append(deal_keys[int(deal_id)])
    return out


def test_demo_walks_bring_the_deals_of_the_places_dwelt_within_the_caps(rt, client, clock, emulator, members_api,
                                                                         backend_url, tmp_path):
    rt.settings.var_path.mkdir(parents=True, exist_ok=True)
    demo.seed(rt)
    # Seeding again (every demo start does) makes nothing new.
    with rt.sessions() as s:
        before = s.scalar(select(func.count()).select_from(Deal))
    deal_ids = demo.seed_deals(rt)
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Deal)) == before
        assert {d.id: d.status for d in s.scalars(select(Deal).where(Deal.id.in_(deal_ids.values())))} == {
            deal_id: "live" for deal_id in deal_ids.values()}
        names = {row["name"]: row["key"] for row in demo.load_plan()["zones"]}
        zone_keys = {z.id: names[z.name] for z in s.scalars(select(Zone))}
    deal_keys = {deal_id: key for key, deal_id in deal_ids.items()}

    shoppers = {openid: members_api.sign_in(openid=openid) for openid in WALKS}
    assert not any(s["new_member"] for s in shoppers.values())  # the demo's own shoppers
    members = {openid: s["member"]["id"] for openid, s in shoppers.items()}
    for openid, n in QUOTA.items():  # each accepted wx.requestSubscribeMessage allows one message
        emulator.grant_subscription(openid, DEAL_TEMPLATE, count=n)
        for _ in range(n):
            reply = client.post("/api/v1/me/subscriptions", json={"results": {DEAL_TEMPLATE: "accept"}},
                                headers=shoppers[openid]["headers"])
            assert reply.status_code == 200, reply.get_json()

    totals = walk(rt, client, clock, shoppers, backend_url, tmp_path / "spool-1", seed=7)
    # Every batch the gateways sent was taken.
    assert totals["accepted_sightings"] == totals["received"] > 0
    assert totals["rejected_batches"] == totals["spooled_batches"] == totals["send_failures"] == 0

    assert dwelt(rt, members, zone_keys) == {
        "demo-shopper-ada": ["coffee", "winter-blend", "books", "sports"],
        # At the display the item's dwell comes first; lingering there, the coffee shop's follows.
        "demo-shopper-bo": ["winter-blend", "coffee"],
        "demo-shopper-chen": ["sports"],
        "demo-shopper-dee": [],
    }
    assert offered(client, shoppers, deal_keys) == {
        # Four deal places, three offers: the daily cap. The sports deal was eligible (Chen got it).
        "demo-shopper-ada": ["flat-white", "winter-blend", "bookmark"],
        # At the display both coffee deals were eligible: the sale item's beat the store's.
        "demo-shopper-bo": ["winter-blend", "flat-white"],
        "demo-shopper-chen": ["summit-sports"],
        "demo-shopper-dee": [],
    }
    # Subscribe messages only with quota, one per accepted opt-in; the inbox gets every offer.
    assert messaged(emulator, deal_keys) == {"demo-shopper-ada": ["flat-white", "winter-blend"],
                                             "demo-shopper-chen": ["summit-sports"]}
    for openid, member in shoppers.items():
        quotas = client.get("/api/v1/me/subscriptions", headers=member["headers"]).get_json()["quotas"]
        assert quotas == {DEAL_TEMPLATE: 0}, openid

    # An hour later, the same mall day, they walk again: they dwell again, and hear of nothing new.
    # Ada is at the cap; Bo is under it, but was offered both coffee deals within 24 h; so was Chen.
    first = dwelt(rt, members, zone_keys)
    clock.advance(hours=1)
    walk(rt, client, clock, shoppers, backend_url, tmp_path / "spool-2", seed=7)  # the same walks
    assert dwelt(rt, members, zone_keys) == {openid: places * 2 for openid, places in first.items()}
    assert offered(client, shoppers, deal_keys) == {
        "demo-shopper-ada": ["flat-white", "winter-blend", "bookmark"],
        "demo-shopper-bo": ["winter-blend", "flat-white"],
        "demo-shopper-chen": ["summit-sports"],
        "demo-shopper-dee": [],
    }
    assert len(emulator.messages) == 3
    with rt.sessions() as s:
        pushes = dict(s.execute(select(Deal.id, Deal.pushes).where(Deal.id.in_(deal_ids.values()))).all())
    # Inbox items plus subscribe messages, per deal.
    assert {deal_keys[i]: n for i, n in pushes.items()} == {"flat-white": 3, "winter-blend": 3, "bookmark": 1,
                                                            "summit-sports": 2}


def test_a_restarted_demos_emulator_holds_the_quota_the_api_recorded(client, rt, emulator, members_api):
    # The demo's database keeps opt-ins across runs; its emulator starts empty each time.
    shopper = members_api.sign_in(openid="o-demo-quota")
    for _ in range(2):
        reply = client.post("/api/v1/me/subscriptions", json={"results": {DEAL_TEMPLATE: "accept"}},
                            headers=shopper["headers"])
        assert reply.status_code == 200, reply.get_json()
    assert emulator.grant_subscription("o-demo-quota", DEAL_TEMPLATE, count=0) == 0  # would answer 43101
    assert demo.grant_recorded_quotas(rt, emulator) == 2
    assert emulator.grant_subscription("o-demo-quota", DEAL_TEMPLATE, count=0) == 2
