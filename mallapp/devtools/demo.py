"""The demo mall: merchants, a floor plan with beacons and gateways, live deals, shoppers and an ops user.

Seeding is idempotent (``mallapp demo`` runs it at every start); the floor plan and the deals come
from ``config/demo_mall.toml``.
"""

from __future__ import annotations

import secrets
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from mallapp.devtools import demo_consoles, history
from mallapp.domain import deals, directory, member_reports, merchants, ops, rewards, segments, venue_admin
from mallapp.domain.floors import seed_floors
from mallapp.domain.members import Member
from mallapp.domain.notifications import SubscribeQuota
from mallapp.domain.venue import Beacon, Gateway, SaleItem, Store, Zone, bump_registry_version, gateway_key
from mallapp.runtime import Runtime
from mallapp.settings import CONFIG_DIR

if TYPE_CHECKING:
    from mallapp.devtools.wechat_emulator import WeChatEmulator

# The secret the embedded WeChat emulator accepts; it guards nothing real.
EMULATOR_SECRET = "demo-emulator-secret"
# "Customer Service" is the mall's own desk: the house store where new members' pack coupons are redeemed.
DEMO_MERCHANTS = ("Starlight Coffee", "Harbour Books", "Jade Garden Restaurant", "Customer Service", "Summit Sports")
DEMO_MALL_FILE = CONFIG_DIR / "demo_mall.toml"
DEMO_SHOPPERS = ("demo-shopper-ada", "demo-shopper-bo", "demo-shopper-chen", "demo-shopper-dee")


@dataclass(frozen=True)
class DemoGateway:
    id: int
    name: str
    key: str
    floor: int
    x: float
    y: float


@dataclass(frozen=True)
class DemoBeacon:
    uuid: str
    major: int
    minor: int
    floor: int
    x: float
    y: float
    measured_power: int


@dataclass(frozen=True)
class DemoMall:
    gateways: list[DemoGateway]
    beacons: list[DemoBeacon]
    shoppers: list[int]  # member ids
    zones: dict[str, tuple[int, float, float]]  # zone key -> (floor, centre x, centre y)


def load_plan(path: Path = DEMO_MALL_FILE) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def seed(rt: Runtime) -> list[str]:
    """Create the demo merchants, floor plan, shoppers and ops user once; return lines for the operator."""
    lines = []
    keys_file = rt.settings.var_path / "demo-merchant-keys.txt"
    with rt.sessions.begin() as session:
        existing = set(session.scalars(select(merchants.Merchant.name)))
        created = []
        for name in DEMO_MERCHANTS:
            if name not in existing:
                merchant, key = merchants.create(session, name, rt.now())
                created.append(f"{merchant.name}\t{key}")
    if created:
        # Keys are stored hashed; the demo keeps its own copy so the operator can use them later.
        with keys_file.open("a") as fh:
            fh.write("\n".join(created) + "\n")
        keys_file.chmod(0o600)
    lines.append(f"demo merchant keys: {keys_file}")
    password_file = rt.settings.var_path / "demo-ops-password.txt"
    with rt.sessions.begin() as session:
        if session.scalar(select(ops.OpsUser.id).where(ops.OpsUser.username == "ops")) is None:
            password = secrets.token_urlsafe(12)
            ops.create_user(session, "ops", "admin", password, rt.now())
            password_file.write_text(f"ops\t{password}\n")
            password_file.chmod(0o600)
    lines.append(f"demo ops user (admin): {password_file}")
    seed_venue(rt)
    lines += demo_consoles.seed_staff(rt)
    demo_consoles.seed_restaurant(rt)
    seeded = seed_deals(rt)
    lines.append(f"demo deals: {', '.join(seeded)}")
    made = seed_history(rt)
    lines.append(f"demo member history: {made} synthetic members with a year of purchases"
                 if made else "demo member history: already there")
    return lines


# A few thousand members keep the demo's start-up to seconds on SQLite while every segment has members.
DEMO_HISTORY_MEMBERS = 3000
DEMO_HISTORY_PURCHASES_PER_MEMBER = 15
DEMO_HISTORY_SEED = 14


def seed_history(rt: Runtime, members: int = DEMO_HISTORY_MEMBERS) -> int:
    """Give the demo mall a year of synthetic member history (once), then the month's segments and reports.

    The members buy at the demo merchants' stores (the service desk is no till). Their purchases and
    check-ins earn points through consistent ledger rows (``history.generate(with_points=True)``).
    Returns how many members it made (0 when the history was already there).
    """
    now = rt.now()
    with rt.sessions.begin() as s:
        if s.scalar(select(Member.id).where(Member.openid.like("synth%")).limit(1)) is not None:
            return 0
        stores = list(s.scalars(select(merchants.Merchant.id).where(merchants.Merchant.name != "Customer Service")
                                .order_by(merchants.Merchant.id)))
        history.generate(s, rt.settings, members=members, purchases_per_member=DEMO_HISTORY_PURCHASES_PER_MEMBER,
                         now=now, seed=DEMO_HISTORY_SEED, merchant_ids=stores, with_points=True)
    with rt.sessions.begin() as s:
        run = segments.run(s, rt.settings, now, trigger="cli")
        member_reports.precompute(s, rt.settings, run.month, now)
    return members


def seed_venue(rt: Runtime, plan: dict[str, Any] | None = None) -> DemoMall:
    """Create the floor plan's stores, items, zones, beacons and gateways unless present; return the demo mall."""
    plan = plan or load_plan()
    now = rt.now()
    uuid = rt.settings.beacons.uuids[0]
    with rt.sessions.begin() as s:
        # The floors' names and outlines (config/demo_mall.toml [[floors]]): once, ops' later edits are kept.
        seed_floors(s, plan.get("floors", []), now)
        merchant_ids = dict(s.execute(select(merchants.Merchant.name, merchants.Merchant.id)).all())
        stores = {row["key"]: _seed_store(s, row, merchant_ids, now) for row in plan["stores"]}
        items: dict[str, SaleItem] = {}
        for row in plan["items"]:
            store = stores[row["store"]]
            item = s.scalar(select(SaleItem).where(SaleItem.store_id == store.id, SaleItem.name == row["name"]))
            if item is None:
                item = SaleItem(store_id=store.id, name=row["name"], created_at=now)
                s.add(item)
                s.flush()
            items[row["key"]] = item
        zones: dict[str, Zone] = {}
        for row in plan["zones"]:
            zone = s.scalar(select(Zone).where(Zone.name == row["name"], Zone.floor == row["floor"]))
            if zone is None:
                zone = Zone(name=row["name"], kind=row["kind"], floor=row["floor"], polygon=row["polygon"],
                            store_id=stores[row["store"]].id if "store" in row else None, created_at=now)
                s.add(zone)
                s.flush()
            zones[row["key"]] = zone
        beacons = []
        for row in plan["beacons"]:
            major = row["floor"]
            beacon = s.scalar(select(Beacon).where(Beacon.uuid == uuid, Beacon.major == major,
                                                   Beacon.minor == row["minor"]))
            if beacon is None:
                beacon = Beacon(uuid=uuid, major=major, minor=row["minor"], label=row["label"],
                                zone_id=zones[row["zone"]].id, floor=row["floor"], x=row["x"], y=row["y"],
                                store_id=stores[row["store"]].id if "store" in row else None,
                                sale_item_id=items[row["item"]].id if "item" in row else None,
                                measured_power=row["measured_power"], created_at=now)
                s.add(beacon)
            beacons.append(DemoBeacon(uuid, major, row["minor"], row["floor"], row["x"], row["y"],
                                      row["measured_power"]))
        gateways = []
        for row in plan["gateways"]:
            gateway = s.scalar(select(Gateway).where(Gateway.name == row["name"]))
            if gateway is None:
                gateway = Gateway(name=row["name"], zone_id=zones[row["zone"]].id, floor=row["floor"], x=row["x"],
                                  y=row["y"], key_version=1, created_at=now)
                s.add(gateway)
                s.flush()
            gateways.append(DemoGateway(gateway.id, gateway.name, gateway_key(rt.secret, gateway), gateway.floor,
                                        gateway.x, gateway.y))
        shoppers = []
        for openid in DEMO_SHOPPERS:
            member, _ = rewards.sign_in(s, rt.settings, openid=openid, unionid=None, now=now)
            shoppers.append(member.id)
        centres = {}
        for key, zone in zones.items():
            xs = [p[0] for p in zone.polygon]
            ys = [p[1] for p in zone.polygon]
            centres[key] = (zone.floor, sum(xs) / len(xs), sum(ys) / len(ys))
    bump_registry_version(rt.redis)
    return DemoMall(gateways, beacons, shoppers, centres)


# The directory's fields of a demo store, as config/demo_mall.toml gives them.
_DIRECTORY_FIELDS = ("name", "name_en", "category", "hours", "tags", "logo_url")


def _seed_store(s: Session, row: dict[str, Any], merchant_ids: dict[str, int], now: datetime) -> Store:
    """The plan's store, found by its unit (or, in a database seeded before the directory, its English name),
    created if missing; its directory fields follow the plan, and its merchant is linked by name."""
    merchant_id = merchant_ids.get(row.get("merchant", ""))
    store = _demo_store(s, row)
    if store is None:
        return venue_admin.create_store(s, merchant_id=merchant_id, unit=row["unit"], floor=row["floor"], x=row["x"],
                                        y=row["y"], now=now, **{f: row[f] for f in _DIRECTORY_FIELDS if f in row})
    changes: dict[str, Any] = {f: row[f] for f in _DIRECTORY_FIELDS
                               if f in row and getattr(store, f) != directory.store_fields({f: row[f]})[f]}
    if store.merchant_id is None and merchant_id is not None:
        changes["merchant_id"] = merchant_id  # a demo merchant added since the store was seeded
    return venue_admin.update_store(s, store.id, changes) if changes else store


def _demo_store(s: Session, row: dict[str, Any]) -> Store | None:
    return s.scalar(select(Store).where(or_(Store.unit == row["unit"], Store.name == row.get("name_en", row["name"])))
                    .order_by(Store.id).limit(1))


def seed_deals(rt: Runtime, plan: dict[str, Any] | None = None) -> dict[str, int]:
    """Make the plan's deals live unless a deal of that title exists at that store; return deal ids by key.

    A deal goes through the review as a merchant and ops would: created, submitted, approved. It is
    valid from the first seeding for its ``valid_days``.
    """
    plan = plan or load_plan()
    now = rt.now()
    out = {}
    with rt.sessions.begin() as s:
        stores = {row["key"]: _demo_store(s, row) for row in plan["stores"]}
        zones = {row["key"]: s.scalar(select(Zone.id).where(Zone.name == row["name"], Zone.floor == row["floor"]))
                 for row in plan["zones"]}
        items = {row["key"]: s.scalar(select(SaleItem.id).where(SaleItem.store_id == stores[row["store"]].id,
                                                               SaleItem.name == row["name"]))
                 for row in plan["items"]}
        for row in plan.get("deals", ()):
            store = stores[row["store"]]
            deal_id = s.scalar(select(deals.Deal.id).where(deals.Deal.store_id == store.id,
                                                           deals.Deal.title == row["title"]))
            if deal_id is None:
                if store.merchant_id is None:
                    raise ValueError(f"demo deal {row['key']}: the store {store.name} has no merchant")
                targets = row.get("targets", {})
                deal = deals.create(s, store.merchant_id, title=row["title"], text=row.get("text", ""),
                                    store_id=store.id, starts_at=now, ends_at=now + timedelta(days=row["valid_days"]),
                                    quota=row["quota"], per_member_limit=row["per_member_limit"],
                                    benefit=row["benefit"], now=now,
                                    zone_ids=[zones[k] for k in targets.get("zones", ())],
                                    store_ids=[stores[k].id for k in targets.get("stores", ())],
                                    sale_item_ids=[items[k] for k in targets.get("items", ())])
                deals.transition(s, store.merchant_id, deal.id, "submit", now)
                if deal.status != "live":  # not auto-approved: ops approve it
                    deals.review(s, deal.id, approve=True, now=now)
                deal_id = deal.id
            out[row["key"]] = deal_id
    return out


def grant_recorded_quotas(rt: Runtime, emulator: WeChatEmulator) -> int:
    """Grant a fresh WeChat emulator the subscribe-message quota our database records; return how many.

    Real WeChat keeps the quota a user granted; the emulator forgets it when the demo stops, while the
    demo's database keeps the opt-ins the API recorded. Without this, a restarted demo's first subscribe
    message meets errcode 43101 and zeroes the member's quota. (Opt-ins made while the demo runs go
    through ``/__emulator/request-subscribe-message`` first, as wx.requestSubscribeMessage would.)
    """
    granted = 0
    with rt.sessions() as s:
        rows = s.execute(select(Member.openid, SubscribeQuota.template_id, SubscribeQuota.remaining)
                         .join(Member, Member.id == SubscribeQuota.member_id).where(SubscribeQuota.remaining > 0))
        for openid, template_id, remaining in rows:
            emulator.grant_subscription(openid, template_id, remaining)
            granted += remaining
    return granted
