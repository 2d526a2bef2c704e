"""Builders the tests share: a small venue, shops and deals, members' opt-ins and inbox, API errors.

Import them plainly (``from factories import build_venue``): pytest puts ``tests/`` on ``sys.path``
for the rootdir's conftest.py, so this module is importable from every folder under it. Fixtures
that wrap these live in ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from mallapp.api.error_index import error_index
from mallapp.db import make_engine, make_sessionmaker
from mallapp.devtools.demo_parking import DEMO_TARIFF
from mallapp.domain import (
    deals,
    members,
    merchants,
    offers,
    points,
    reservation_admin,
    reservations,
    venue_admin,
)
from mallapp.domain.notifications import Delivery, Notification
from mallapp.domain.parking.rules import default_rules
from mallapp.domain.reservation_admin import Band
from mallapp.domain.reservations import Reservation, Slot
from mallapp.domain.venue import (
    Beacon,
    Gateway,
    SaleItem,
    Store,
    Zone,
    batch_signature,
    bump_registry_version,
    gateway_key,
)
from mallapp.processes.sends import Consumer as SendsConsumer
from mallapp.runtime import Runtime, secret_key
from mallapp.settings import DEMO_SETTINGS_FILE

PROJECT = Path(__file__).resolve().parent.parent  # the repository's root, whichever folder a test is in
CAPTURES = Path(__file__).resolve().parent / "data" / "captures"  # recorded BLE captures (JSON lines)

MALLAPP = str(Path(sys.executable).with_name("mallapp"))  # the command, beside this Python

M, ME = "/api/v1/merchant", "/api/v1/me"
DEAL_TEMPLATE = "demo-deal-announced"

# --- the command line ------------------------------------------------------------------------------


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment for running ``mallapp`` in a subprocess: none of this shell's MALL_* variables,
    the demo overlay, a var directory under ``tmp_path``, text logs, and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALL_")}
    return {**env, "MALL_CONFIG": str(DEMO_SETTINGS_FILE), "MALL_VAR_DIR": str(tmp_path / "var"),
            "MALL_LOG_FORMAT": "text", **extra}


# --- API errors ------------------------------------------------------------------------------------


def api_error(response, code: str) -> dict:
    """The JSON error of a response, checked to carry ``code`` and the status the API maps it to."""
    assert response.is_json, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code, error
    assert response.status_code == error_index().status(code), response.status_code
    return error


# --- the proximity venue: an entrance, a coffee shop with a sale item, and a gateway ---------------

UUID = "fda50693-a4e2-4fb1-afcf-c6eb07647825"


@dataclass
class Venue:
    entrance: int
    store_zone: int
    item_zone: int
    store: int
    item: int
    beacons: dict[str, int]  # name -> beacon id
    minors: dict[str, int]
    gateway: int
    gateway_key: str


def build_venue(rt: Runtime) -> Venue:
    now = rt.now()
    with rt.sessions.begin() as s:
        store = Store(name="Starlight Coffee", unit="L1-02", category="cafe", floor=1, x=20.0, y=0.0, created_at=now)
        s.add(store)
        s.flush()
        item = SaleItem(store_id=store.id, name="Winter blend", created_at=now)
        entrance = Zone(name="North entrance", kind="entrance", floor=1, polygon=[[0, 0], [5, 0], [5, 5]],
                        created_at=now)
        store_zone = Zone(name="Starlight Coffee", kind="store", floor=1, polygon=[[15, 0], [25, 0], [25, 5]],
                          store_id=store.id, created_at=now)
        item_zone = Zone(name="Winter blend display", kind="item", floor=1, polygon=[[24, 0], [26, 0], [26, 2]],
                         store_id=store.id, created_at=now)
        s.add_all([item, entrance, store_zone, item_zone])
        s.flush()
        minors = {"entrance": 1, "store": 2, "item": 3}
        placed = {"entrance": (entrance.id, None, None, 0.0), "store": (store_zone.id, store.id, None, 20.0),
                  "item": (item_zone.id, store.id, item.id, 25.0)}
        beacons = {}
        for name, (zone_id, store_id, item_id, x) in placed.items():
            b = Beacon(uuid=UUID, major=1, minor=minors[name], label=name, zone_id=zone_id, store_id=store_id,
                       sale_item_id=item_id, floor=1, x=x, y=0.0, measured_power=-59, created_at=now)
            s.add(b)
            s.flush()
            beacons[name] = b.id
        gateway = Gateway(name="Entrance gateway", zone_id=entrance.id, floor=1, x=1.0, y=1.0, key_version=1,
                          created_at=now)
        s.add(gateway)
        s.flush()
        key = gateway_key(rt.secret, gateway)
        venue = Venue(entrance.id, store_zone.id, item_zone.id, store.id, item.id, beacons, minors, gateway.id, key)
    bump_registry_version(rt.redis)
    return venue


def post_sightings(client, member: dict[str, Any], readings: dict[int, int]):
    """The member's phone posts one batch: ``{minor: rssi}`` of the venue's beacons."""
    beacons = [{"uuid": UUID, "major": 1, "minor": minor, "rssi": rssi, "accuracy": 1.0, "proximity": 1}
               for minor, rssi in readings.items()]
    response = client.post("/api/v1/sightings", headers=member["headers"], json={"beacons": beacons})
    assert response.status_code == 202, response.get_json()
    return response


def walk(client, member: dict[str, Any], worker, clock, seconds: int, readings: dict[int, int], step: float = 1.0):
    """``seconds`` batches ``step`` seconds apart (the RSSI wobbling a little), each read by ``worker`` at once."""
    for i in range(seconds):
        clock.advance(seconds=step)
        post_sightings(client, member, {minor: rssi - (i % 3) for minor, rssi in readings.items()})
        worker.step(block_ms=0)


def signed(key: str, payload: dict, at: datetime, nonce: str | None = None) -> tuple[bytes, dict[str, str]]:
    """A gateway request: the body and its signature headers, as beacons/forwarder.py sends them."""
    prefix, _, rest = key.partition("_")
    gateway_id, version, secret = rest.split(".", 2)
    body = json.dumps(payload).encode()
    ts = int(at.timestamp())
    nonce = nonce or secrets.token_hex(16)
    return body, {"Content-Type": "application/json", "X-Gateway-Key-Id": f"{gateway_id}.{version}",
                  "X-Gateway-Timestamp": str(ts), "X-Gateway-Nonce": nonce,
                  "X-Gateway-Signature": batch_signature(secret, ts, nonce, body)}


# --- restaurants, slots and bookings at the service level ------------------------------------------

TOMORROW = date(2026, 3, 11)  # the conftest clock is 10:00 on 10 March, mall time
NOON = datetime.fromisoformat("2026-03-11T04:00:00+00:00")  # 12:00 tomorrow, mall time


def restaurant(rt: Runtime, name: str = "Noodle House") -> tuple[int, int]:
    """A merchant and its restaurant: (merchant id, store id)."""
    with rt.sessions.begin() as s:
        merchant, _ = merchants.create(s, f"{name} Ltd", rt.now())
        store = venue_admin.create_store(s, name=name, floor=3, x=0, y=0, merchant_id=merchant.id, now=rt.now())
        return merchant.id, store.id


def publish(rt: Runtime, merchant_id: int, store_id: int, times: list[str], bands: list[Band], day: date = TOMORROW,
            duration: int = 90) -> list[int]:
    with rt.sessions.begin() as s:
        done = reservation_admin.publish(s, rt.settings, merchant_id, store_id, first_day=day, last_day=day,
                                         times=[time.fromisoformat(t) for t in times], duration_minutes=duration,
                                         bands=bands, now=rt.now())
        return [slot.id for slot in done.slots]


def new_member(rt, openid: str) -> int:
    with rt.sessions.begin() as s:
        return members.sign_in(s, openid=openid, unionid=None, now=rt.now())[0].id


def book(rt, member_id: int, slot_id: int, party: int = 2, request_id: str = "r-1") -> reservations.Booked:
    with rt.sessions.begin() as s:
        return reservations.book(s, rt.settings, member_id, slot_id, party, request_id, rt.now())


def slot_figures(rt, slot_id: int) -> tuple[int, int]:
    """(the slot's booked counter, the bookings that hold a table in it): always equal."""
    with rt.sessions.begin() as s:
        held = s.scalar(select(func.count()).where(Reservation.slot_id == slot_id,
                                                   Reservation.status.in_(reservations.HOLDING)))
        return s.get(Slot, slot_id).booked, held


def inbox_keys(rt, member_id: int) -> list[str]:
    with rt.sessions.begin() as s:
        return list(s.scalars(select(Notification.key).where(Notification.member_id == member_id)
                              .order_by(Notification.id)))


# --- the offers' shop: the venue's coffee shop and a second store, one merchant's, and one member ---


@dataclass
class Shop:
    merchant: int
    store: int
    other_store: int
    store_zone: int
    item_zone: int
    item: int
    member: int


def build_shop(rt: Runtime, venue: Venue) -> Shop:
    """The test venue's coffee shop and a second store, both the merchant's, and one member."""
    now = rt.now()
    with rt.sessions.begin() as s:
        merchant, _ = merchants.create(s, "Starlight Coffee", now)
        s.execute(update(Store).where(Store.id == venue.store).values(merchant_id=merchant.id))
        other = Store(name="Harbour Books", unit="L1-03", category="books", floor=1, x=40.0, y=0.0,
                      merchant_id=merchant.id, created_at=now)
        s.add(other)
        member, _ = members.sign_in(s, openid="o-ada", unionid=None, now=now)
        s.flush()
        return Shop(merchant.id, venue.store, other.id, venue.store_zone, venue.item_zone, venue.item, member.id)


def live_deal(rt: Runtime, shop: Shop, **over: Any) -> int:
    """A live deal at the coffee shop, targeted at its store unless told otherwise."""
    now = rt.now()
    values: dict[str, Any] = {"title": "Flat white 5 yuan off", "store_id": shop.store,
                              "starts_at": now - timedelta(hours=1), "ends_at": now + timedelta(days=7),
                              "quota": 10, "per_member_limit": 1, "benefit": {"kind": "amount_off", "amount_fen": 500},
                              "store_ids": [shop.store], **over}
    with rt.sessions.begin() as s:
        deal = deals.create(s, shop.merchant, now=now, **values)
        deal.status = "live"
        return deal.id


def at_store(rt: Runtime, shop: Shop) -> offers.Event:
    """The member's dwell in the coffee shop, as the proximity worker reports it."""
    return offers.Event(id=1, member_id=shop.member, zone_id=shop.store_zone, store_id=shop.store,
                        sale_item_id=None, at=rt.now())


def at_item(rt: Runtime, shop: Shop) -> offers.Event:
    """The member's dwell at the Winter blend display."""
    return offers.Event(id=2, member_id=shop.member, zone_id=shop.item_zone, store_id=shop.store,
                        sale_item_id=shop.item, at=rt.now())


# --- followed shops and announced deals, through the API -------------------------------------------


def shop_with_rival(rt: Runtime, merchant: dict[str, Any]) -> dict[str, Any]:
    """The conftest merchant (auto-approved) with a store, and a second merchant with its own store."""
    with rt.sessions.begin() as s:
        store = venue_admin.create_store(s, name="Starlight", floor=1, x=0, y=0, merchant_id=merchant["id"],
                                         now=rt.now()).id
        deals.set_auto_approve(s, merchant["id"], True)
        other, key = merchants.create(s, "Harbour Books", rt.now())
        other_store = venue_admin.create_store(s, name="Harbour", floor=1, x=9, y=0, merchant_id=other.id,
                                               now=rt.now()).id
        deals.set_auto_approve(s, other.id, True)
    return {**merchant, "store": store, "other": {"id": other.id, "store": other_store,
                                                  "headers": {"Authorization": f"Bearer {key}"}}}


def deal_maker(client, clock):
    """``make(owner, submit=True, **over)``: create and submit a deal through the API (live at once when
    the merchant is auto-approved) and return its id."""
    def make(owner: dict[str, Any], *, submit: bool = True, **over: Any) -> int:
        body = {"title": "Limited: flat white for 5 yuan", "text": "Only this weekend", "store_id": owner["store"],
                "starts_at": (clock.now + timedelta(days=1)).isoformat(),
                "ends_at": (clock.now + timedelta(days=3)).isoformat(), "quota": 50,
                "benefit": {"kind": "amount_off", "amount_fen": 500}, **over}
        created = client.post(f"{M}/deals", json=body, headers=owner["headers"])
        assert created.status_code == 201, created.get_json()
        deal_id = created.get_json()["id"]
        if submit:
            assert client.post(f"{M}/deals/{deal_id}/submit", headers=owner["headers"]).get_json()["status"] == "live"
        return deal_id
    return make


def opt_in(client, emulator, member: dict[str, Any], count: int = 1, *, at_wechat: bool = True) -> None:
    """The member accepts the deal template ``count`` times (WeChat records it; the app is told)."""
    for _ in range(count):
        if at_wechat:
            emulator.grant_subscription(member["openid"], DEAL_TEMPLATE)
        reply = client.post(f"{ME}/subscriptions", json={"results": {DEAL_TEMPLATE: "accept"}},
                            headers=member["headers"])
        assert reply.status_code == 200, reply.get_json()


def inbox(client, member: dict[str, Any], **query: Any) -> dict[str, Any]:
    """The member's inbox page through the API."""
    reply = client.get(f"{ME}/inbox", query_string=query, headers=member["headers"])
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()


def deliveries(rt: Runtime, member_id: int) -> list[tuple[str, str, int | None]]:
    """(channel, outcome, errcode) of every delivery to the member, in order."""
    with rt.sessions.begin() as s:
        rows = s.execute(select(Delivery.channel, Delivery.outcome, Delivery.errcode)
                         .join(Notification, Notification.id == Delivery.notification_id)
                         .where(Notification.member_id == member_id).order_by(Delivery.id))
        return [tuple(r) for r in rows]


def subscribe_quota(client, member: dict[str, Any]) -> int:
    """What the app counts of the member's accepted deal-template opt-ins."""
    return client.get(f"{ME}/subscriptions", headers=member["headers"]).get_json()["quotas"][DEAL_TEMPLATE]


# --- merchant staff --------------------------------------------------------------------------------

STAFF_PASSWORD = "a long enough passphrase"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def staff_headers(client, merchant_headers: dict[str, str], username: str, role: str) -> dict[str, str]:
    """Add a staff member as the merchant does, sign them in, and return their ready headers."""
    added = client.post("/api/v1/merchant/staff", json={"username": username, "role": role,
                                                         "password": STAFF_PASSWORD}, headers=merchant_headers)
    assert added.status_code == 201, added.get_json()
    signed = client.post("/api/v1/merchant/auth", json={"username": username, "password": STAFF_PASSWORD})
    return bearer(signed.get_json()["token"])


# --- sends to large audiences (campaigns, announcements) ------------------------------------------


def drain_sends(rt: Runtime, consumer: str = "test-sends") -> int:
    """Run a ``sends`` consumer until the stream has nothing new (what ``mallapp sends`` does in the
    background); the entries it handled."""
    return SendsConsumer(rt, consumer, block_ms=0).drain()


def announce_and_deliver(client, rt: Runtime, deal_id: int, headers: dict[str, str]):
    """Announce a deal through the API, let the sends workers deliver it, and return the announcement's
    figures once they have (the same call again: a replay, answered 200)."""
    first = client.post(f"{M}/deals/{deal_id}/announce", headers=headers)
    if first.status_code != 201:
        return first
    drain_sends(rt)
    return client.post(f"{M}/deals/{deal_id}/announce", headers=headers)


# --- member reports: a small hand-built world (docs/member-reports.md works through it) ------------

REPORTS_MONTH = date(2026, 3, 1)  # the `clock` fixture's month


def _utc(*args: int) -> datetime:
    from datetime import UTC

    return datetime(*args, tzinfo=UTC)


def reports_world(rt: Runtime) -> dict[str, int]:
    """Five members (a..e), their activity and snapshots for February and March 2026, and two transitions.

    a joined 2025-08-05: bought 2025-09-03, checked in 2026-02-02; March T1, VIP, 12 visits, 12,000 yuan.
    b joined 2025-08-20: bought 2025-08-21, visited 2025-10-10; March T2, major, last bought 2026-01-15.
    c joined 2026-03-01 01:00 mall time (still 28 February in UTC); March T3, 11 visits, new.
    d joined 2026-03-10 (today): nothing yet.  e joined 2024-01-01, last bought 2024-12-01: lost.
    """
    from mallapp.domain.checkin import Checkin
    from mallapp.domain.proximity.history import MallVisit
    from mallapp.domain.purchases import Purchase
    from mallapp.domain.segments import LifecycleTransition, MemberSnapshot

    joined = {"a": _utc(2025, 8, 5, 3), "b": _utc(2025, 8, 20, 3), "c": _utc(2026, 2, 28, 17),
              "d": _utc(2026, 3, 10, 1), "e": _utc(2024, 1, 1, 3)}
    now = rt.now()
    with rt.sessions.begin() as s:
        store, _ = merchants.create(s, "Report Store", now)
        ids = {}
        for key, at in joined.items():
            m = members.Member(openid=f"reports-{key}", referral_code=f"RPT{key.upper()}2345"[:8], nickname=f"member {key}",
                               phone=f"+861380000000{ord(key) - 96}", created_at=at, gender="unknown")
            s.add(m)
            s.flush()
            ids[key] = m.id
        s.add_all([
            Purchase(merchant_id=store.id, receipt_no="r1", member_id=ids["a"], amount_fen=5000, refunded_fen=0,
                     points_earned=0, birthday_bonus=0, points_reversed=0, occurred_at=_utc(2025, 9, 3, 4),
                     created_at=_utc(2025, 9, 3, 4)),
            Purchase(merchant_id=store.id, receipt_no="r2", member_id=ids["b"], amount_fen=5000, refunded_fen=0,
                     points_earned=0, birthday_bonus=0, points_reversed=0, occurred_at=_utc(2025, 8, 21, 4),
                     created_at=_utc(2025, 8, 21, 4)),
            Checkin(member_id=ids["a"], day=date(2026, 2, 2), streak=1, points=0, method="app",
                    created_at=_utc(2026, 2, 2, 3)),
            MallVisit(member_id=ids["b"], entered_at=_utc(2025, 10, 10, 3), exited_at=_utc(2025, 10, 10, 4),
                      dwell_seconds=3600),
        ])

        def snap(key: str, month: date, **facts: Any) -> None:
            row = dict(purchases=0, purchase_days=0, spend_fen=0, scored_spend_fen=0, visits=0, lifecycle="active")
            row.update(facts)
            s.add(MemberSnapshot(member_id=ids[key], month=month, as_of=month, window_start=month - timedelta(days=365),
                                 computed_at=now, **row))

        march, feb = REPORTS_MONTH, date(2026, 2, 1)
        snap("a", march, purchases=5, visits=12, spend_fen=1_200_000, t_tier="T1", pyramid="vip",
             rfm_segment="champions", clv_fen=500_000, last_purchase_at=_utc(2026, 3, 5, 4))
        snap("b", march, purchases=2, visits=3, spend_fen=200_000, t_tier="T2", pyramid="major",
             rfm_segment="at_risk", lifecycle="weakening", last_purchase_at=_utc(2026, 1, 15, 4))
        snap("c", march, purchases=1, visits=11, spend_fen=50_000, t_tier="T3", pyramid="small", rfm_segment="new",
             lifecycle="new", clv_fen=20_000, last_purchase_at=_utc(2026, 3, 1, 4))
        snap("d", march, lifecycle="new")
        snap("e", march, lifecycle="lost", rfm_segment="lost", clv_fen=1_000, last_purchase_at=_utc(2024, 12, 1, 4))
        snap("a", feb, t_tier="T2")
        snap("b", feb, t_tier="T2")
        snap("e", feb, lifecycle="lost")
        s.add_all([
            LifecycleTransition(member_id=ids["c"], day=date(2026, 3, 1), from_state=None, to_state="new",
                                cause="joined", created_at=now),
            LifecycleTransition(member_id=ids["a"], day=date(2026, 3, 5), from_state="weakening",
                                to_state="reactivated", cause="purchase", created_at=now),
            LifecycleTransition(member_id=ids["e"], day=date(2026, 2, 10), from_state="weakening", to_state="lost",
                                cause="no_purchase_365d", created_at=now),
        ])
    return ids


# --- races on PostgreSQL ------------------------------------------------------------------------------

BARRIER_TIMEOUT = 60  # only a guard against a hung race; nothing is asserted about time


def wide_runtime(settings, redis_client, clock, workers: int):
    """A runtime whose pool lets ``workers`` threads hold a connection at once (yield it; the ledger's
    invariants are checked after, as the conftest runtime does)."""
    engine = make_engine(settings.database_url, pool_size=workers + 5, max_overflow=10, pool_timeout=BARRIER_TIMEOUT)
    runtime = Runtime(settings=settings, engine=engine, sessions=make_sessionmaker(engine), redis=redis_client,
                      secret=secret_key(settings), clock=clock)
    yield runtime
    with runtime.sessions.begin() as session:
        problems = points.check_invariants(session)
    engine.dispose()
    assert problems == [], "ledger invariants broken:\n" + "\n".join(problems)


def race(n: int, work) -> list[Any]:
    """Run ``work(i)`` for i in range(n) on n threads released together; return results or exceptions."""
    barrier = threading.Barrier(n)

    def outcome(i: int) -> Any:
        try:
            barrier.wait(timeout=BARRIER_TIMEOUT)
            return work(i)
        except Exception as exc:  # collected and asserted on by the test
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(outcome, range(n)))


def race_in_transactions(rt: Runtime, n: int, work) -> list[Any]:
    """Like ``race``, but each worker has begun its own transaction on its own connection first."""
    barrier = threading.Barrier(n)

    def outcome(i: int) -> Any:
        try:
            with rt.sessions.begin() as session:
                session.connection()  # check a connection out before the start
                barrier.wait(timeout=BARRIER_TIMEOUT)
                return work(session, i)
        except Exception as exc:  # collected and asserted on by the test
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(outcome, range(n)))


# --- WeChat Pay (the wxpay part) ---------------------------------------------------------------------

# [wechatpay] notify_url in tests: nothing listens there (a connection refused at once), so the emulator's
# notifications are delivered by the test itself, through Flask's test client (wechatpay_paid).
WECHATPAY_NOTIFY_URL = "http://127.0.0.1:9/api/v1/parking/wechatpay/notify"
WECHATPAY_NOTIFY_PATH = "/api/v1/parking/wechatpay/notify"


def wechatpay_paid(client, emulator, out_trade_no: str, **pay_kwargs: Any):
    """The payer paid the WeChat Pay order: the emulator marks it SUCCESS and its signed, encrypted notification is
    POSTed to our notify endpoint through Flask's test client; return that response. ``pay_kwargs`` go to
    ``emulator.pay_order`` (``success_time=rt.now()`` for a time on the test clock, ``openid=`` for a Native payer)."""
    headers, body = emulator.pay_order(out_trade_no, deliver=False, **pay_kwargs)
    return client.post(WECHATPAY_NOTIFY_PATH, data=body, headers=headers)

# --- parking (parkcore): a car park, its levels and bays; a parked car ----------------------------------------

PARKCORE_TARIFF = {"plans": {"small": {"first_period_fen": 1000, "bands": [
    {"name": "全天 all day", "start": "00:00", "end": "00:00", "step_fen": 500}]}}}


def parkcore_car_park(rt: Runtime, *, code: str = "P1", vendor_park_code: str = "P001",
                      levels: dict[str, int] | None = None, bays_per_level: int = 10) -> int:
    """A car park with levels ``B1`` (floor -1) and ``B2`` (floor -2) and bays ``B1-C001``..; returns its id."""
    from mallapp.domain.parking import carparks

    with rt.sessions.begin() as session:
        park = carparks.create_car_park(session, code=code, name=f"{code} 停车场", vendor_park_code=vendor_park_code,
                                        tariff_doc=PARKCORE_TARIFF, now=rt.now())
        for floor, (level, spaces) in enumerate((levels or {"B1": 120, "B2": 80}).items(), start=1):
            carparks.create_level(session, park.id, code=level, name=f"地下{floor}层 Basement {floor}", floor=-floor,
                                  spaces=spaces)
            carparks.create_bay_range(session, park.id, prefix=f"{level}-C", first=1, last=bays_per_level)
        return park.id


def parkcore_parked_car(rt: Runtime, car_park_id: int, plate: str, *, member_id: int | None = None,
                        order_no: str | None = None, minutes_ago: int = 60) -> int:
    """An open parking session made through the ORM (as other parts' tests do); returns its id."""
    from mallapp.domain.parking.models import ParkingSession

    with rt.sessions.begin() as session:
        row = ParkingSession(car_park_id=car_park_id, plate=plate, vehicle_type="small",
                             order_no=order_no or f"ORD-{plate}", member_id=member_id,
                             entered_at=rt.now() - timedelta(minutes=minutes_ago), status="parked", created_at=rt.now())
        session.add(row)
        session.flush()
        return row.id

# --- parking history for the operations views (parkops) -----------------------------------------------------


@dataclass
class ParkingHistory:
    """A car park with levels and a member, and builders of its sessions, payments and benefits (ORM rows)."""

    rt: Runtime
    car_park_id: int
    code: str
    vendor_park_code: str
    member_id: int
    _orders: int = 0

    def stay(self, plate: str, entered_at: datetime, exited_at: datetime | None = None, *,
             exit_kind: str | None = None, unpaid_fen: int | None = None, car_park_id: int | None = None,
             member_id: int | None = None) -> int:
        from mallapp.domain.parking.models import ParkingSession

        self._orders += 1
        kind = exit_kind or ("camera" if exited_at is not None else None)
        with self.rt.sessions.begin() as s:
            row = ParkingSession(car_park_id=car_park_id or self.car_park_id, plate=plate, vehicle_type="small",
                                 order_no=f"{self.vendor_park_code}-{self._orders:08d}", member_id=member_id,
                                 entered_at=entered_at, exited_at=exited_at, entry_gate="IN-1",
                                 exit_gate="OUT-1" if exited_at else None, status="left" if exited_at else "parked",
                                 exit_kind=kind, unpaid_fen=unpaid_fen, created_at=entered_at)
            s.add(row)
            s.flush()
            return row.id

    def payment(self, session_id: int, *, cash_fen: int, discount_fen: int = 0, status: str = "paid",
                at: datetime, refunded_fen: int = 0, order_id: str | None = None, seq: int = 1) -> int:
        """A payment made at ``at`` (its local_day is the mall-local day of it); paid ones are settled then."""
        from mallapp.domain.parking.models import ParkingPayment

        self._orders += 1
        with self.rt.sessions.begin() as s:
            row = ParkingPayment(session_id=session_id, seq=seq, order_id=order_id or f"PK{self._orders:010d}",
                                 member_id=self.member_id, payer="member", status=status,
                                 gross_fen=cash_fen + discount_fen, discount_fen=discount_fen, cash_fen=cash_fen,
                                 points=0, items=[], quoted_at=at, refunded_fen=refunded_fen,
                                 carpark_trade_no=f"T{self._orders:010d}" if status == "paid" else None,
                                 local_day=self.rt.settings.mall.local_day(at), created_at=at,
                                 paid_at=at if cash_fen else None, settled_at=at if status != "pending" else None)
            s.add(row)
            s.flush()
            return row.id

    def benefit(self, payment_id: int, kind: str, *, seconds: int = 0, fen: int = 0, points: int = 0,
                voided: bool = False) -> int:
        from mallapp.domain.parking.models import ParkingBenefit, ParkingPayment

        with self.rt.sessions.begin() as s:
            paid = s.get(ParkingPayment, payment_id)
            row = ParkingBenefit(payment_id=payment_id, session_id=paid.session_id, member_id=self.member_id,
                                 kind=kind, seconds=seconds, fen=fen, points=points, local_day=paid.local_day,
                                 created_at=paid.created_at, voided_at=paid.created_at if voided else None)
            s.add(row)
            s.flush()
            return row.id

    def other_car_park(self, code: str = "P2", vendor_park_code: str = "P002") -> int:
        return _car_park(self.rt, code, vendor_park_code, {"G1": 10})


def _car_park(rt: Runtime, code: str, vendor_park_code: str, levels: dict[str, int]) -> int:
    from mallapp.domain.parking.models import CarPark, ParkingLevel

    with rt.sessions.begin() as s:
        park = CarPark(code=code, name=f"Car park {code}", vendor_park_code=vendor_park_code, fee_source="carpark",
                       tariff={}, rules={}, active=True, created_at=rt.now(), updated_at=rt.now())
        s.add(park)
        s.flush()
        for floor, (level, spaces) in enumerate(levels.items(), start=1):
            s.add(ParkingLevel(car_park_id=park.id, code=level, name=level, floor=-floor, spaces=spaces))
        return park.id


def parking_history(rt: Runtime, *, code: str = "P1", vendor_park_code: str = "P001",
                    levels: dict[str, int] | None = None) -> ParkingHistory:
    """An empty history of one car park (levels B1 120 and B2 80 spaces unless given) and one member."""
    park_id = _car_park(rt, code, vendor_park_code, levels or {"B1": 120, "B2": 80})
    return ParkingHistory(rt, park_id, code, vendor_park_code, new_member(rt, f"o-parker-{code}"))

# --- parking coupons (parkcoupons) ---------------------------------------------------------------------


@dataclass
class ParkingCouponDeal:
    """A merchant with parking-coupon quota and a live parking deal at its store; ``key`` is its API key."""

    merchant: int
    store: int
    deal: int
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.key)


def parking_coupon_deal(rt: Runtime, *, name: str = "Parking Partner", kind: str = "parking_hours", value: int = 2,
                        quota_bought: int = 10, deal_quota: int = 10, per_member_limit: int = 1,
                        days: int = 7) -> ParkingCouponDeal:
    """A merchant that bought ``quota_bought`` hours (``parking_hours``) or fen (``parking_amount``) of quota and
    runs a live deal of ``deal_quota`` coupons, each worth ``value`` hours or fen, ending in ``days`` days."""
    from mallapp.domain.parking import quota

    now = rt.now()
    with rt.sessions.begin() as s:
        merchant, key = merchants.create(s, name, now)
        store = venue_admin.create_store(s, name=f"{name} store", floor=1, x=0, y=0, merchant_id=merchant.id, now=now)
        if quota_bought:
            quota.buy(s, rt.settings, merchant.id, unit=quota.UNIT_OF[kind], amount=quota_bought,
                      idempotency_key="factory", now=now)
        field = "hours" if kind == "parking_hours" else "amount_fen"
        deal = deals.create(s, merchant.id, title="停车券 / Parking coupon", store_id=store.id,
                            starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=days), quota=deal_quota,
                            per_member_limit=per_member_limit, benefit={"kind": kind, field: value}, now=now)
        deal.status = "live"
        s.flush()
        return ParkingCouponDeal(merchant.id, store.id, deal.id, key)


# --- parking payments (parkpay) ---------------------------------------------------------------------

PARK_APP_ID, PARK_SECRET, PARK_CODE = "park-app-test", "carpark-secret-test", "P001"
# The MixC-like tariff and rules of docs/parking.md: the demo car park's tariff, and the default rules.
MIXC_TARIFF = DEMO_TARIFF
MIXC_RULES = default_rules()


def carpark_for_pay(rt: Runtime, clock, tariff: dict | None = None):
    """Start the car-park emulator on the test clock, billing with ``tariff`` (MixC by default), and point
    ``rt.carpark(PARK_CODE)`` at it; the caller stops it (``emulator.stop()``)."""
    from mallapp.adapters.carpark_open import OpenApiCarPark
    from mallapp.devtools.carpark_emulator import CarParkEmulator
    from mallapp.domain.parking.tariff import parse_tariff

    def seconds() -> float:
        return clock().timestamp()

    emulator = CarParkEmulator(PARK_APP_ID, PARK_SECRET, park_code=PARK_CODE, clock=seconds,
                               tariff=parse_tariff(tariff or MIXC_TARIFF), tz=rt.settings.mall.tz).start()
    rt._carparks[PARK_CODE] = OpenApiCarPark(emulator.base_url, PARK_APP_ID, PARK_SECRET, park_code=PARK_CODE,
                                             timeout=2, retries=0, clock=seconds)
    return emulator


def parked_car_for_pay(rt: Runtime, emulator, plate: str, *, minutes: float, member_id: int | None = None,
                       fee_source: str = "carpark", rules: dict | None = None, tier: str | None = None) -> int:
    """A car that came in ``minutes`` ago: in the emulator (if any), as a session row (and the car park row on first
    use), its plate bound to ``member_id`` (with ``tier``) when given. Returns the session id."""
    from mallapp.domain.members import Member
    from mallapp.domain.parking.models import CarPark, ParkingSession, PlateBinding
    from mallapp.domain.parking.plates import vehicle_type

    entered = rt.now() - timedelta(minutes=minutes)
    # No emulator: a car park whose fee the mall computes (fee_source "mall"), nothing to tell it until paying.
    order_no = emulator.drive_in(plate, at=entered.timestamp()) if emulator is not None else f"T-{plate}"
    with rt.sessions.begin() as s:
        park = s.scalar(select(CarPark).where(CarPark.vendor_park_code == PARK_CODE))
        if park is None:
            park = CarPark(code="P1", name="万象停车场 MixC car park", vendor_park_code=PARK_CODE, fee_source=fee_source,
                           tariff=MIXC_TARIFF, rules=rules or MIXC_RULES, active=True, created_at=rt.now(),
                           updated_at=rt.now())
            s.add(park)
            s.flush()
        if member_id is not None:
            s.add(PlateBinding(member_id=member_id, plate=plate, vehicle_type=vehicle_type(plate), bound_at=entered))
            if tier is not None:
                s.get(Member, member_id).tier = tier
        stay = ParkingSession(car_park_id=park.id, plate=plate, vehicle_type=vehicle_type(plate), order_no=order_no,
                              member_id=member_id, entered_at=entered, status="parked", created_at=entered)
        s.add(stay)
        s.flush()
        return stay.id


def parking_coupon_for(rt: Runtime, merchant_id: int, member_id: int, *, hours: int = 0, amount_fen: int = 0) -> int:
    """A parking coupon (``parking_hours`` or ``parking_amount``) the member holds, on a live deal made directly
    (the merchant API for parking deals is parkcoupons'). Returns the coupon id."""
    from mallapp.domain import coupons, deals, venue_admin

    now = rt.now()
    with rt.sessions.begin() as s:
        store = venue_admin.create_store(s, name=f"Parking desk {secrets.token_hex(2)}", floor=1, x=0, y=0,
                                         merchant_id=merchant_id, now=now)
        deal = deals.Deal(merchant_id=merchant_id, store_id=store.id, title="停车券", starts_at=now,
                          ends_at=now + timedelta(days=7), quota=10, per_member_limit=5, claimed=1, redeemed=0,
                          benefit_kind="parking_hours" if hours else "parking_amount",
                          benefit_value=hours or amount_fen, status="live", created_at=now, updated_at=now)
        s.add(deal)
        s.flush()
        coupon = coupons.Coupon(deal_id=deal.id, member_id=member_id, code=coupons.new_code(10), claimed_at=now)
        s.add(coupon)
        s.flush()
        return coupon.id


# --- the merchant console: a deal's funnel, redemptions, store footfall --------------------------------

def deal_funnel(rt: Runtime, shop: Shop, *, pushes: int, claims: int, redemptions: int, **over: Any) -> int:
    """A live deal at the coffee shop with ``pushes`` deliveries counted, ``claims`` members holding a coupon and
    ``redemptions`` of them used at its till (now, by the rt clock); returns the deal's id."""
    from mallapp.domain import coupons
    from mallapp.domain.deals import Deal

    deal_id = live_deal(rt, shop, quota=max(claims, 1), **over)
    now = rt.now()
    with rt.sessions.begin() as s:
        member_ids = [members.sign_in(s, openid=f"o-funnel-{deal_id}-{i}", unionid=None, now=now)[0].id
                      for i in range(claims)]
        held = [coupons.claim(s, rt.settings, m, deal_id, now) for m in member_ids]
        for i, h in enumerate(held[:redemptions]):
            coupons.redeem(s, rt.settings, rt.secret, merchant_id=shop.merchant, store_id=shop.store,
                           code=h.coupon.code, request_id=f"funnel-{deal_id}-{i}", now=now, spend_fen=3000)
        # Pushes are counted by mallapp.domain.notifications as it delivers; a seed sets the count.
        s.get_one(Deal, deal_id).pushes = pushes
    return deal_id


def zone_visits(rt: Runtime, zone_id: int, visits: list[tuple[str, datetime, int]]) -> None:
    """Finished visits to a zone: (member openid, entry time, dwell seconds); members made as needed."""
    from mallapp.domain.proximity import history

    with rt.sessions.begin() as s:
        for openid, entered, dwell in visits:
            member_id = members.sign_in(s, openid=openid, unionid=None, now=rt.now())[0].id
            history.record_zone_visit(s, member_id, zone_id, entered, entered + timedelta(seconds=dwell))


def manager_headers(client, rt: Runtime, merchant_id: int, username: str = "manager-1",
                    role: str = "manager") -> dict[str, str]:
    """A staff member of the merchant made in the database, signed in through the API: their headers."""
    from mallapp.domain import staff

    with rt.sessions.begin() as s:
        staff.create(s, merchant_id, username, role, STAFF_PASSWORD, rt.now())
    signed = client.post("/api/v1/merchant/auth", json={"username": username, "password": STAFF_PASSWORD})
    return bearer(signed.get_json()["token"])

# --- the operations dashboard and footfall (opsinsight) -------------------------------------------

def ops_day_world(rt: Runtime) -> dict[str, Any]:
    """A day at the mall for the ops dashboard: the `clock` fixture's day (2026-03-10, Shanghai) and the
    same weekday a week before, with rows just outside the day's bounds that must not count.

    Today: 2 new members (00:30 and 09:00 mall time), 3 check-ins, 2 purchases (¥10.00 + ¥25.50), points
    100 + 30 issued and 40 redeemed, 3 mall visits (at 10:05, 10:40 and 14:20) and 1 member in the mall
    now; a week before: 2 mall visits (10:10 and 21:00). Returns the figures the dashboard must show, the
    member ids and the venue (build_venue) with zone visits today: entrance at 10:xx (2 visits, 300 s and
    100 s) and 14:xx (1, 60 s), the coffee shop at 10:xx (1, 600 s).
    """
    from mallapp.domain.checkin import Checkin
    from mallapp.domain.proximity import history, live
    from mallapp.domain.proximity.history import MallVisit
    from mallapp.domain.purchases import Purchase

    venue = build_venue(rt)
    now = rt.now()  # 2026-03-10 10:00 Shanghai

    def local(d: int, hh: int, mm: int = 0) -> datetime:
        return _utc(2026, 3, d, hh, mm) - timedelta(hours=8)

    with rt.sessions.begin() as s:
        store, _ = merchants.create(s, "Dashboard Store", now)
        joined = {"old": local(2, 12), "late-yesterday": local(9, 23, 30), "early": local(10, 0, 30),
                  "morning": local(10, 9)}
        ids = {key: members.sign_in(s, openid=f"dash-{key}", unionid=None, now=at)[0].id for key, at in joined.items()}
        s.add_all([
            Purchase(merchant_id=store.id, receipt_no="d1", member_id=ids["old"], amount_fen=1000, refunded_fen=0,
                     points_earned=0, birthday_bonus=0, points_reversed=0, occurred_at=local(10, 0, 5),
                     created_at=local(10, 0, 5)),
            Purchase(merchant_id=store.id, receipt_no="d2", member_id=ids["early"], amount_fen=2550, refunded_fen=0,
                     points_earned=0, birthday_bonus=0, points_reversed=0, occurred_at=local(10, 9, 30),
                     created_at=local(10, 9, 30)),
            Purchase(merchant_id=store.id, receipt_no="d3", member_id=ids["old"], amount_fen=99900, refunded_fen=0,
                     points_earned=0, birthday_bonus=0, points_reversed=0, occurred_at=local(9, 23, 59),
                     created_at=local(9, 23, 59)),
            *[Checkin(member_id=ids[k], day=date(2026, 3, 10), streak=1, points=0, method="app",
                      created_at=local(10, 9)) for k in ("old", "early", "morning")],
            Checkin(member_id=ids["old"], day=date(2026, 3, 9), streak=1, points=0, method="app",
                    created_at=local(9, 9)),
            *[MallVisit(member_id=ids[k], entered_at=local(10, hh, mm), exited_at=local(10, hh, mm) + timedelta(minutes=20),
                        dwell_seconds=1200) for k, hh, mm in (("old", 10, 5), ("early", 10, 40), ("morning", 14, 20))],
            *[MallVisit(member_id=ids["old"], entered_at=local(3, hh, mm), exited_at=local(3, hh, mm) + timedelta(minutes=5),
                        dwell_seconds=300) for hh, mm in ((10, 10), (21, 0))],
            MallVisit(member_id=ids["old"], entered_at=local(11, 0, 1), exited_at=local(11, 0, 30), dwell_seconds=1740),
        ])
        # Through the worker's own call, which keeps the hourly rollup the heat maps read.
        for k, zone, hh, mm, dwell in (("old", venue.entrance, 10, 5, 300), ("early", venue.entrance, 10, 41, 100),
                                       ("morning", venue.entrance, 14, 20, 60), ("old", venue.store_zone, 10, 10, 600)):
            history.record_zone_visit(s, ids[k], zone, local(10, hh, mm), local(10, hh, mm) + timedelta(seconds=dwell))
        points.credit(s, rt.settings, ids["old"], 100, "purchase", source_ref="d1", idempotency_key="dash-1",
                      now=local(10, 0, 5))
        points.credit(s, rt.settings, ids["early"], 30, "checkin", source_ref="c1", idempotency_key="dash-2",
                      now=local(10, 9, 1))
        points.redeem(s, ids["old"], 40, source_ref="gift-1", idempotency_key="dash-3", now=local(10, 9, 30))
        points.credit(s, rt.settings, ids["old"], 500, "purchase", source_ref="d3", idempotency_key="dash-4",
                      now=local(9, 23, 59))
    live.enter(rt.redis, live.MALL, ids["morning"])
    return {"ids": ids, "venue": venue,
            "figures": {"new_members": 2, "checkins": 3, "purchases": 2, "sales_fen": 3550, "points_issued": 130,
                        "points_redeemed": 40, "in_mall_now": 1}}

def reads_english(rt, member_id: int) -> None:
    """The member chose English for their messages (members read zh-CN, the default, until they choose)."""
    with rt.sessions.begin() as s:
        members.update_profile(s, members.get(s, member_id), {"locale": "en"})


def inbox_texts(rt, member_id: int) -> list[tuple[str, str]]:
    """The (title, body) of the member's inbox items, oldest first."""
    with rt.sessions.begin() as s:
        return [(n.title, n.body) for n in s.scalars(select(Notification).where(Notification.member_id == member_id)
                                                    .order_by(Notification.id))]


# --- wayfinding: a small walkable graph (docs/wayfinding.md, "The graph file") ----------------------------

def wf_node(fid: str, level: int, x: float, y: float, **tags: Any) -> dict[str, Any]:
    """A Point feature: tags as keyword arguments, "__" for ":" (name__en=… is name:en, mall__store=… mall:store)."""
    props = {"level": str(level), **{k.replace("__", ":"): v for k, v in tags.items()}}
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [x, y]}, "properties": props}


def wf_edge(fid: str, a: dict[str, Any], b: dict[str, Any], **tags: Any) -> dict[str, Any]:
    """A LineString feature from node feature a to node feature b (straight), its level from theirs."""
    levels = sorted({a["properties"]["level"], b["properties"]["level"]}, key=int)
    props = {"level": ";".join(levels), "mall:from": a["id"], "mall:to": b["id"],
             **{k.replace("__", ":"): v for k, v in tags.items()}}
    return {"type": "Feature", "id": fid, "properties": props,
            "geometry": {"type": "LineString", "coordinates": [a["geometry"]["coordinates"],
                                                                b["geometry"]["coordinates"]]}}


def small_graph(store_unit: str = "L1-02") -> dict[str, Any]:
    """Floors 1 and 2 and car-park level B1: a corridor on each, one store door (``store_unit``, floor 1), the
    main entrance, a lift B1..2, stairs 1-2, an up escalator 1->2 (one way), toilets on floor 2.
    Strongly connected; without the lift, B1 is cut off and floor 2 is reached only by stairs or escalator."""
    n = {
        "1-j1": wf_node("1-j1", 1, 0, 0, indoor="corridor"),
        "1-j2": wf_node("1-j2", 1, 20, 0, indoor="corridor"),
        "1-door": wf_node("1-door", 1, 20, 4, door="yes", indoor="door", mall__store=store_unit, name="咖啡店",
                          name__en="Coffee"),
        "1-entrance": wf_node("1-entrance", 1, 0, -5, entrance="main", name="南门", name__en="South entrance"),
        "1-lift": wf_node("1-lift", 1, 25, 0, highway="elevator", name="1号电梯", name__en="Lift 1"),
        "1-stairs": wf_node("1-stairs", 1, 0, 10, highway="steps"),
        "1-esc": wf_node("1-esc", 1, 10, 0, highway="steps", conveying="forward"),
        "2-j1": wf_node("2-j1", 2, 0, 0, indoor="corridor"),
        "2-lift": wf_node("2-lift", 2, 25, 0, highway="elevator", name="1号电梯", name__en="Lift 1"),
        "2-stairs": wf_node("2-stairs", 2, 0, 10, highway="steps"),
        "2-esc": wf_node("2-esc", 2, 22, 0, highway="steps", conveying="forward"),
        "2-wc": wf_node("2-wc", 2, 5, 0, amenity="toilets", name="洗手间", name__en="Toilets"),
        "B1-lift": wf_node("B1-lift", -1, 25, 0, highway="elevator", name="1号电梯", name__en="Lift 1"),
        "B1-j1": wf_node("B1-j1", -1, 25, -10, indoor="corridor"),
    }
    e = [
        wf_edge("1-c1", n["1-j1"], n["1-esc"], highway="corridor"),
        wf_edge("1-c2", n["1-esc"], n["1-j2"], highway="corridor"),
        wf_edge("1-c3", n["1-j2"], n["1-door"], highway="corridor"),
        wf_edge("1-c4", n["1-j1"], n["1-entrance"], highway="corridor"),
        wf_edge("1-c5", n["1-j2"], n["1-lift"], highway="corridor"),
        wf_edge("1-c6", n["1-j1"], n["1-stairs"], highway="corridor"),
        wf_edge("2-c1", n["2-j1"], n["2-wc"], highway="corridor"),
        wf_edge("2-c2", n["2-wc"], n["2-esc"], highway="corridor"),
        wf_edge("2-c3", n["2-esc"], n["2-lift"], highway="corridor"),
        wf_edge("2-c4", n["2-j1"], n["2-stairs"], highway="corridor"),
        wf_edge("lift-1-2", n["1-lift"], n["2-lift"], highway="elevator"),
        wf_edge("lift-B1-1", n["B1-lift"], n["1-lift"], highway="elevator"),
        wf_edge("stairs-1-2", n["1-stairs"], n["2-stairs"], highway="steps"),
        wf_edge("esc-1-2", n["1-esc"], n["2-esc"], highway="steps", conveying="forward"),
        wf_edge("B1-c1", n["B1-lift"], n["B1-j1"], highway="corridor"),
    ]
    return {"type": "FeatureCollection", "features": [*n.values(), *e]}
