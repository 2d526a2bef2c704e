"""Operations' changes to the venue and what they read back: fleet health, presence, footfall.

Service functions in the house style: each takes a Session, never commits, and raises a domain
error. The caller commits, then calls :func:`mallapp.domain.venue.bump_registry_version` so that the
proximity workers reload the registry. Nothing is deleted: deactivating keeps the rows that
visits, events and sightings point at.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import Any, TypeVar

from redis import Redis
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mallapp import db
from mallapp.db import get_or_404
from mallapp.domain import directory
from mallapp.domain.floors import list_floors
from mallapp.domain.merchants import Merchant
from mallapp.domain.proximity import history, live
from mallapp.domain.venue import (
    ZONE_KINDS,
    Beacon,
    BeaconStatus,
    Gateway,
    SaleItem,
    Store,
    Zone,
    floor_name,
    gateway_key,
    normalize_uuid,
)
from mallapp.errors import Conflict, InvalidInput, RuleViolation
from mallapp.settings import BeaconSettings

PROBLEMS = ("never_seen", "silent", "battery_low")
# Fleet-health order: a beacon nobody hears first, then a weak battery, then the healthy ones.
_SEVERITY = {"never_seen": 0, "silent": 0, "battery_low": 1}
_HEALTHY = 2

ZONE_FIELDS = ("name", "kind", "floor", "polygon", "store_id", "dwell_seconds", "enter_m", "active")
STORE_FIELDS = ("name", "merchant_id", "unit", "category", "floor", "x", "y", "active",
                "name_en", "logo_url", "hours", "tags")  # the last four: the directory's (domain.directory)
SALE_ITEM_FIELDS = ("name", "active")
# A beacon's identity (uuid, major, minor) is not editable: another identity is another device.
BEACON_FIELDS = ("label", "zone_id", "store_id", "sale_item_id", "floor", "x", "y", "measured_power", "active")
GATEWAY_FIELDS = ("name", "zone_id", "floor", "x", "y", "active")

_NOUN = {Zone: "zone", Store: "store", SaleItem: "sale_item", Beacon: "beacon", Gateway: "gateway",
         Merchant: "merchant"}
T = TypeVar("T", Zone, Store, SaleItem, Beacon, Gateway, Merchant)
# The codes of the lookups' refusals, spelled out so that each is a literal (mallapp.api.error_index).
_NOT_FOUND = {Zone: "zone.not_found", Store: "store.not_found", SaleItem: "sale_item.not_found",
              Beacon: "beacon.not_found", Gateway: "gateway.not_found", Merchant: "merchant.not_found"}
_UNKNOWN = {Zone: "venue.unknown_zone", Store: "venue.unknown_store", SaleItem: "venue.unknown_sale_item",
            Merchant: "venue.unknown_merchant"}


# --- lookups -----------------------------------------------------------------------------------------

def get(session: Session, model: type[T], row_id: int) -> T:
    """The row with this id, active or not; NotFound (``<noun>.not_found``) otherwise."""
    return get_or_404(session, model, row_id, code=_NOT_FOUND[model], what=_NOUN[model].replace("_", " "))


def _active(session: Session, model: type[T], row_id: int) -> T:
    """A row that a zone, beacon or gateway may point at: it exists and is active."""
    row = session.get(model, row_id) if db.id_in_range(row_id) else None
    if row is None or not row.active:
        noun = _NOUN[model]
        raise RuleViolation(f"there is no active {noun.replace('_', ' ')} with id {row_id}",
                            code=_UNKNOWN[model])
    return row


def _merge(row: Any, fields: Sequence[str], changes: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - set(fields)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    return {f: getattr(row, f) for f in fields} | dict(changes)


def _referenced(changes: Mapping[str, Any], field: str, merged: Mapping[str, Any], reactivating: bool) -> bool:
    """Whether a reference must be checked now: it was set in this change, or the row comes back to life."""
    return merged[field] is not None and (field in changes or reactivating)


def _apply(row: Any, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        setattr(row, name, value)


# --- zones ---------------------------------------------------------------------------------------------

def check_polygon(points: Iterable[Sequence[float]]) -> list[list[float]]:
    """A simple polygon's corners as [[x, y], ...]; InvalidInput ``zone.invalid_polygon`` otherwise."""
    corners: list[list[float]] = []
    for point in points:
        if len(point) != 2:
            raise InvalidInput("a polygon corner is [x, y]", code="zone.invalid_polygon")
        x, y = float(point[0]), float(point[1])
        if not (math.isfinite(x) and math.isfinite(y)):
            raise InvalidInput("polygon corners must be finite numbers", code="zone.invalid_polygon")
        if not corners or corners[-1] != [x, y]:
            corners.append([x, y])
    if len(corners) > 1 and corners[0] == corners[-1]:
        corners.pop()  # a closed ring repeats its first corner
    if len(corners) < 3:
        raise InvalidInput("a polygon needs at least 3 distinct corners", code="zone.invalid_polygon")
    area2 = sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(corners, corners[1:] + corners[:1], strict=True))
    if abs(area2) < 1e-6:
        raise InvalidInput("the polygon encloses no area", code="zone.invalid_polygon")
    edges = list(zip(corners, corners[1:] + corners[:1], strict=True))
    n = len(edges)
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # the closing edge shares a corner with the first
            if _segments_meet(*edges[i], *edges[j]):
                raise InvalidInput(f"the polygon's edges {i} and {j} cross or touch", code="zone.invalid_polygon")
    return corners


def _orient(a: list[float], b: list[float], c: list[float]) -> int:
    v = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return (v > 0) - (v < 0)


def _within(a: list[float], b: list[float], c: list[float]) -> bool:
    return min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])


def _segments_meet(p1: list[float], p2: list[float], q1: list[float], q2: list[float]) -> bool:
    o1, o2, o3, o4 = _orient(p1, p2, q1), _orient(p1, p2, q2), _orient(q1, q2, p1), _orient(q1, q2, p2)
    if o1 * o2 < 0 and o3 * o4 < 0:
        return True
    return ((o1 == 0 and _within(p1, p2, q1)) or (o2 == 0 and _within(p1, p2, q2))
            or (o3 == 0 and _within(q1, q2, p1)) or (o4 == 0 and _within(q1, q2, p2)))


def _check_zone(session: Session, zone: Mapping[str, Any], changes: Mapping[str, Any],
                reactivating: bool) -> dict[str, Any]:
    values = dict(changes)
    if zone["kind"] not in ZONE_KINDS:
        raise InvalidInput(f"kind is one of {', '.join(ZONE_KINDS)}", code="request.invalid")
    if "polygon" in changes:
        values["polygon"] = check_polygon(changes["polygon"])
    if _referenced(changes, "store_id", zone, reactivating):
        _active(session, Store, zone["store_id"])
    if zone["kind"] == "store" and zone["store_id"] is None:
        raise RuleViolation("a store zone names its store (store_id)", code="zone.store_required")
    return values


def create_zone(session: Session, *, name: str, kind: str, floor: int, polygon: Sequence[Sequence[float]],
                store_id: int | None = None, dwell_seconds: int | None = None, enter_m: float | None = None,
                now: datetime) -> Zone:
    """Draw a zone on a floor."""
    given = dict(name=name, kind=kind, floor=floor, polygon=polygon, store_id=store_id,
                 dwell_seconds=dwell_seconds, enter_m=enter_m)
    zone = Zone(**_check_zone(session, given, given, reactivating=True), active=True, created_at=now)
    session.add(zone)
    session.flush()
    return zone


def update_zone(session: Session, zone_id: int, changes: Mapping[str, Any]) -> Zone:
    """Change a zone's fields; ``active`` False deactivates it, True brings it back."""
    zone = get(session, Zone, zone_id)
    merged = _merge(zone, ZONE_FIELDS, changes)
    _apply(zone, _check_zone(session, merged, changes, reactivating=merged["active"] and not zone.active))
    session.flush()
    return zone


Placed = TypeVar("Placed", Zone, Store, Gateway)


def _on_floor(session: Session, model: type[Placed], floor: int | None, include_inactive: bool) -> list[Placed]:
    """Rows of a placed venue table by id: of one floor if given, the active ones unless asked for all."""
    query = select(model).order_by(model.id)
    if floor is not None:
        query = query.where(model.floor == floor)
    if not include_inactive:
        query = query.where(model.active)
    return list(session.scalars(query))


def list_zones(session: Session, floor: int | None = None, include_inactive: bool = False) -> list[Zone]:
    return _on_floor(session, Zone, floor, include_inactive)


# --- stores and sale items -------------------------------------------------------------------------------

def _check_store(session: Session, store_id: int | None, store: Mapping[str, Any], changes: Mapping[str, Any],
                 reactivating: bool = False, deactivating: bool = False) -> None:
    if _referenced(changes, "merchant_id", store, reactivating):
        _active(session, Merchant, store["merchant_id"])
    if deactivating:
        zones = list(session.scalars(select(Zone.id).where(Zone.store_id == store_id, Zone.active)))
        beacons = list(session.scalars(select(Beacon.id).where(Beacon.store_id == store_id, Beacon.active)))
        if zones or beacons:
            raise Conflict("active zones or beacons still point at this store; move or deactivate them first",
                           code="store.in_use", details={"zone_ids": zones, "beacon_ids": beacons})


def create_store(session: Session, *, name: str, floor: int, x: float, y: float, merchant_id: int | None = None,
                 unit: str = "", category: str = "other", name_en: str = "", logo_url: str = "",
                 hours: Mapping[str, Any] | None = None, tags: Sequence[str] = (), now: datetime) -> Store:
    """Put a store on the floor plan (its directory fields validated, its pinyin computed)."""
    given = dict(name=name, merchant_id=merchant_id, unit=unit, category=category, floor=floor, x=x, y=y,
                 name_en=name_en, logo_url=logo_url, hours=hours, tags=list(tags))
    _check_store(session, None, given, given, reactivating=True)
    store = Store(**directory.store_fields(given), active=True, created_at=now)
    session.add(store)
    session.flush()
    return store


def update_store(session: Session, store_id: int, changes: Mapping[str, Any]) -> Store:
    """Change a store's fields; deactivating refuses while active zones or beacons point at it."""
    store = get(session, Store, store_id)
    merged = _merge(store, STORE_FIELDS, changes)
    _check_store(session, store.id, merged, changes, reactivating=merged["active"] and not store.active,
                 deactivating=store.active and not merged["active"])
    _apply(store, directory.store_fields(changes))  # a new name recomputes the pinyin
    session.flush()
    return store


def list_stores(session: Session, floor: int | None = None, include_inactive: bool = False) -> list[Store]:
    return _on_floor(session, Store, floor, include_inactive)


def create_sale_item(session: Session, store_id: int, *, name: str, now: datetime) -> SaleItem:
    """Add a sale item (a display a beacon may mark) to an active store."""
    get(session, Store, store_id)
    _active(session, Store, store_id)
    item = SaleItem(store_id=store_id, name=name, active=True, created_at=now)
    session.add(item)
    session.flush()
    return item


def update_sale_item(session: Session, item_id: int, changes: Mapping[str, Any]) -> SaleItem:
    """Rename, deactivate (refused while active beacons mark it) or reactivate a sale item."""
    item = get(session, SaleItem, item_id)
    merged = _merge(item, SALE_ITEM_FIELDS, changes)
    if merged["active"] and not item.active:
        _active(session, Store, item.store_id)
    if changes.get("active") is False and item.active:
        beacons = list(session.scalars(select(Beacon.id).where(Beacon.sale_item_id == item.id, Beacon.active)))
        if beacons:
            raise Conflict("active beacons still mark this sale item; move or deactivate them first",
                           code="sale_item.in_use", details={"beacon_ids": beacons})
    _apply(item, changes)
    session.flush()
    return item


def list_sale_items(session: Session, store_id: int, include_inactive: bool = False) -> list[SaleItem]:
    get(session, Store, store_id)
    query = select(SaleItem).where(SaleItem.store_id == store_id).order_by(SaleItem.id)
    if not include_inactive:
        query = query.where(SaleItem.active)
    return list(session.scalars(query))


# --- beacons ---------------------------------------------------------------------------------------------

def mall_uuid(settings: BeaconSettings, value: str) -> str:
    """The canonical form of one of the mall's beacon UUIDs; RuleViolation ``beacon.unknown_uuid`` otherwise."""
    try:
        canonical = normalize_uuid(value)
    except ValueError:
        canonical = ""
    if canonical not in settings.uuids:
        raise RuleViolation(f"{value!r} is not one of the mall's beacon UUIDs ([beacons] uuids)",
                            code="beacon.unknown_uuid", details={"uuids": list(settings.uuids)})
    return canonical


def _check_beacon(session: Session, beacon: Mapping[str, Any], changes: Mapping[str, Any],
                  reactivating: bool) -> dict[str, Any]:
    values = dict(changes)
    if _referenced(changes, "zone_id", beacon, reactivating):
        _active(session, Zone, beacon["zone_id"])
    if _referenced(changes, "store_id", beacon, reactivating):
        _active(session, Store, beacon["store_id"])
    if beacon["sale_item_id"] is not None and ("sale_item_id" in changes or "store_id" in changes or reactivating):
        if _referenced(changes, "sale_item_id", beacon, reactivating):
            item = _active(session, SaleItem, beacon["sale_item_id"])
        else:  # only the store changed: the item may be checked against it as it is
            item = get(session, SaleItem, beacon["sale_item_id"])
        if beacon["store_id"] is None:
            # A sale item's beacon is also its store's.
            values["store_id"] = _active(session, Store, item.store_id).id
        elif beacon["store_id"] != item.store_id:
            raise RuleViolation(f"sale item {item.id} belongs to store {item.store_id}, not {beacon['store_id']}",
                                code="beacon.item_not_in_store")
    return values


def create_beacon(session: Session, settings: BeaconSettings, *, uuid: str, major: int, minor: int, floor: int,
                  x: float, y: float, measured_power: int, label: str = "", zone_id: int | None = None,
                  store_id: int | None = None, sale_item_id: int | None = None, now: datetime) -> Beacon:
    """Register and place a beacon; registering a deactivated beacon again reactivates and re-places it."""
    uuid = mall_uuid(settings, uuid)
    existing = session.scalar(select(Beacon).where(Beacon.uuid == uuid, Beacon.major == major,
                                                   Beacon.minor == minor))
    if existing is not None and existing.active:
        raise Conflict(f"beacon {uuid} {major}/{minor} is registered already (id {existing.id})",
                       code="beacon.duplicate", details={"beacon_id": existing.id})
    given = dict(label=label, zone_id=zone_id, store_id=store_id, sale_item_id=sale_item_id, floor=floor, x=x, y=y,
                 measured_power=measured_power)
    values = _check_beacon(session, given, given, reactivating=True)
    if existing is not None:
        _apply(existing, {**values, "active": True})
        session.flush()
        return existing
    beacon = Beacon(uuid=uuid, major=major, minor=minor, **values, active=True, created_at=now)
    session.add(beacon)
    try:
        session.flush()
    except IntegrityError:
        # Another request registered the same beacon a moment ago; this transaction rolls back.
        raise Conflict(f"beacon {uuid} {major}/{minor} is registered already", code="beacon.duplicate") from None
    return beacon


def update_beacon(session: Session, beacon_id: int, changes: Mapping[str, Any]) -> Beacon:
    """Move, relabel, recalibrate, deactivate or reactivate a beacon."""
    beacon = get(session, Beacon, beacon_id)
    merged = _merge(beacon, BEACON_FIELDS, changes)
    _apply(beacon, _check_beacon(session, merged, changes, reactivating=merged["active"] and not beacon.active))
    session.flush()
    return beacon


@dataclass(frozen=True)
class BeaconHealth:
    beacon: Beacon
    status: BeaconStatus | None
    problems: tuple[str, ...]

    @property
    def severity(self) -> int:
        return min((_SEVERITY[p] for p in self.problems), default=_HEALTHY)


def _silence(last_seen_at: datetime | None, settings: BeaconSettings, now: datetime) -> tuple[str, ...]:
    if last_seen_at is None:
        return ("never_seen",)
    if (now - last_seen_at).total_seconds() > settings.health.silent_after_s:
        return ("silent",)
    return ()


def beacon_problems(status: BeaconStatus | None, settings: BeaconSettings, now: datetime) -> tuple[str, ...]:
    """never_seen / silent (unheard for silent_after_s) and battery_low (0 mV: no battery telemetry)."""
    problems = _silence(status.last_seen_at if status else None, settings, now)
    if status is not None and status.battery_mv and status.battery_mv < settings.health.battery_low_mv:
        problems += ("battery_low",)
    return problems


def gateway_problems(gateway: Gateway, settings: BeaconSettings, now: datetime) -> tuple[str, ...]:
    """never_seen / silent, by the time of the gateway's last accepted batch."""
    return _silence(gateway.last_seen_at, settings, now)


def beacon_health(session: Session, settings: BeaconSettings, beacon: Beacon, now: datetime) -> BeaconHealth:
    status = session.get(BeaconStatus, beacon.id)
    return BeaconHealth(beacon, status, beacon_problems(status, settings, now))


def fleet_health(session: Session, settings: BeaconSettings, now: datetime, *, floor: int | None = None,
                 zone_id: int | None = None, problems_only: bool = False) -> list[BeaconHealth]:
    """The active beacons with their health: problems first (most severe first), then by id."""
    query = (select(Beacon, BeaconStatus).outerjoin(BeaconStatus, BeaconStatus.beacon_id == Beacon.id)
             .where(Beacon.active))
    if floor is not None:
        query = query.where(Beacon.floor == floor)
    if zone_id is not None:
        query = query.where(Beacon.zone_id == zone_id)
    fleet = [BeaconHealth(beacon, status, beacon_problems(status, settings, now))
             for beacon, status in session.execute(query)]
    if problems_only:
        fleet = [h for h in fleet if h.problems]
    return sorted(fleet, key=lambda h: (h.severity, h.beacon.id))


# --- gateways ------------------------------------------------------------------------------------------

def create_gateway(session: Session, server_secret: bytes, *, name: str, floor: int, x: float, y: float,
                   zone_id: int | None = None, now: datetime) -> tuple[Gateway, str]:
    """Register a listener gateway; return it and its key, which is shown this once."""
    if zone_id is not None:
        _active(session, Zone, zone_id)
    gateway = Gateway(name=name, zone_id=zone_id, floor=floor, x=x, y=y, key_version=1, active=True,
                      created_at=now)
    session.add(gateway)
    session.flush()
    return gateway, gateway_key(server_secret, gateway)


def update_gateway(session: Session, gateway_id: int, changes: Mapping[str, Any]) -> Gateway:
    gateway = get(session, Gateway, gateway_id)
    merged = _merge(gateway, GATEWAY_FIELDS, changes)
    if _referenced(changes, "zone_id", merged, reactivating=merged["active"] and not gateway.active):
        _active(session, Zone, merged["zone_id"])
    _apply(gateway, changes)
    session.flush()
    return gateway


def rotate_gateway_key(session: Session, server_secret: bytes, gateway_id: int) -> tuple[Gateway, str]:
    """Issue the gateway a new key; the old one stops working when this commits."""
    gateway = get(session, Gateway, gateway_id)
    gateway.key_version += 1
    session.flush()
    return gateway, gateway_key(server_secret, gateway)


def list_gateways(session: Session, floor: int | None = None, include_inactive: bool = False) -> list[Gateway]:
    return _on_floor(session, Gateway, floor, include_inactive)


# --- what ops watches ------------------------------------------------------------------------------------

def presence(session: Session, redis: Redis, floor: int | None = None) -> tuple[int, list[tuple[Zone, int]]]:
    """Members in the mall now, and in each active zone (of one floor, if given)."""
    zones = list_zones(session, floor)
    counts = live.zone_counts(redis, [live.MALL, *(z.id for z in zones)])
    return counts[live.MALL], [(z, counts[z.id]) for z in zones]


@dataclass(frozen=True)
class ZoneFootfall:
    zone: Zone
    visits: int
    members: int
    mean_dwell_seconds: float


MAX_FOOTFALL_PERIOD = timedelta(days=366)


def footfall_period(tz: tzinfo, now: datetime, since: datetime | None,
                    until: datetime | None) -> tuple[datetime, datetime]:
    """The period a footfall report covers: as asked, by default today in the mall's time zone."""
    today = now.astimezone(tz).date()
    since = since or datetime.combine(today, time(), tzinfo=tz)
    until = until or datetime.combine(today + timedelta(days=1), time(), tzinfo=tz)
    if not (since < until and until - since <= MAX_FOOTFALL_PERIOD):
        raise InvalidInput("since must come before until, at most 366 days apart", code="footfall.invalid_range")
    return since, until


def footfall(session: Session, since: datetime, until: datetime) -> list[ZoneFootfall]:
    """Per zone, visits that began in [since, until): every active zone, and inactive ones that had visits."""
    stats = history.footfall(session, since, until)
    zones = session.scalars(select(Zone).where(or_(Zone.active, Zone.id.in_(list(stats)))).order_by(Zone.id))
    return [ZoneFootfall(z, *stats.get(z.id, (0, 0, 0.0))) for z in zones]


@dataclass(frozen=True)
class FloorSummary:
    number: int
    name: str
    outline: list[list[float]]
    # From the floors table (mallapp.domain.floors) where ops defined the floor; else None and the hull.
    name_zh: str | None = None
    name_en: str | None = None
    outline_source: str = "zones"  # "floor": the outline ops drew; "zones": the hull of the active zones


def _hull(points: Iterable[tuple[float, float]]) -> list[list[float]]:
    """The convex hull of points, counter-clockwise from the lowest-leftmost (Andrew's monotone chain)."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return [list(p) for p in pts]

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    def half(ordered: list[tuple[float, float]]) -> list[tuple[float, float]]:
        chain: list[tuple[float, float]] = []
        for p in ordered:
            while len(chain) >= 2 and cross(chain[-2], chain[-1], p) <= 0:
                chain.pop()
            chain.append(p)
        return chain[:-1]

    return [list(p) for p in half(pts) + half(pts[::-1])]


def floors(session: Session) -> list[FloorSummary]:
    """The floors: every floor ops defined (mallapp.domain.floors) or with an active zone or store, lowest
    first; a defined floor with its names and outline, any other outlined by the convex hull of its active
    zones' polygons (empty when it has no zones yet)."""
    defined = {f.number: f for f in list_floors(session)}
    numbers = set(session.scalars(select(Zone.floor).where(Zone.active))) | set(
        session.scalars(select(Store.floor).where(Store.active))) | set(defined)
    points: dict[int, list[tuple[float, float]]] = {n: [] for n in numbers}
    for zone in session.scalars(select(Zone).where(Zone.active)):
        points[zone.floor].extend((float(x), float(y)) for x, y in zone.polygon)
    out = []
    for n in sorted(numbers):
        f = defined.get(n)
        out.append(FloorSummary(n, floor_name(n), [list(p) for p in f.outline], f.name, f.name_en, "floor")
                   if f is not None else FloorSummary(n, floor_name(n), _hull(points[n])))
    return out


@dataclass(frozen=True)
class FloorPlan:
    floor: int
    zones: list[Zone]
    stores: list[Store]
    beacons: list[BeaconHealth]
    gateways: list[Gateway]


def floor_plan(session: Session, settings: BeaconSettings, floor: int, now: datetime) -> FloorPlan:
    """Everything needed to draw one floor: active zones, stores, beacons (with health) and gateways."""
    return FloorPlan(floor=floor, zones=list_zones(session, floor), stores=list_stores(session, floor),
                     beacons=sorted(fleet_health(session, settings, now, floor=floor), key=lambda h: h.beacon.id),
                     gateways=list_gateways(session, floor))
