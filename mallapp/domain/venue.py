"""The venue: the floor plan's zones and stores, sale items, the mall's beacons and the listener gateways.

Operations staff edit these (``/api/v1/ops/...``); the proximity worker reads them as a
:class:`Registry` snapshot, reloaded when :func:`bump_registry_version` says something changed.
Positions are metres on the floor's plan (x to the right, y up), floors are integers (1 = ground).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis import Redis
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime

ZONE_KINDS = ("entrance", "store", "item", "area")


class Zone(Base):
    """An area of a floor: an entrance, a store front, a sale-item display or a common area."""

    __tablename__ = "zones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(12))
    floor: Mapped[int] = mapped_column(SmallInteger)
    # The outline on the floor plan: [[x, y], ...] in metres, for drawing and footfall maps.
    polygon: Mapped[list[list[float]]] = mapped_column(JSON, default=list)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), nullable=True)
    # Per-zone overrides of [beacons] dwell and enter distance; None takes the default for the kind.
    dwell_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    enter_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Store(Base):
    """A tenant's store on the floor plan, optionally linked to the merchant that runs it."""

    __tablename__ = "stores"
    # The directory's search (mallapp.domain.directory.search): prefixes of the pinyin, read from an index.
    __table_args__ = (Index("ix_stores_pinyin_initials", "pinyin_initials"),
                      Index("ix_stores_pinyin_full", "pinyin_full"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The primary name (Chinese, as on the shop front); name_en is the English one, "" when it has none.
    name: Mapped[str] = mapped_column(String(80))
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), nullable=True)
    # The unit number on the directory, e.g. "L2-07".
    unit: Mapped[str] = mapped_column(String(20), default="")
    # The 业态 code, one of mallapp.domain.directory.CATEGORIES ("other" when none fits).
    category: Mapped[str] = mapped_column(String(40), default="other")
    floor: Mapped[int] = mapped_column(SmallInteger)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # --- the directory (mallapp.domain.directory) ---
    name_en: Mapped[str] = mapped_column(String(80), default="")
    logo_url: Mapped[str] = mapped_column(String(500), default="")
    # Opening hours in the mall's local time: {"mon": [["10:00", "22:00"]], ...} (directory.check_hours);
    # NULL: not published (the directory says neither open nor closed).
    hours: Mapped[dict[str, list[list[str]]] | None] = mapped_column(JSON, nullable=True)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Computed from name on every write (directory.pinyin_keys): "xbk" and "xingbake" for 星巴克.
    pinyin_initials: Mapped[str] = mapped_column(String(80), default="")
    pinyin_full: Mapped[str] = mapped_column(String(400), default="")


def store_names(session: Session, store_ids: Iterable[int]) -> dict[int, str]:
    """The names of these stores by id (one query), for the messages and pages that name them."""
    ids = set(store_ids)
    return {store_id: name for store_id, name in
            session.execute(select(Store.id, Store.name).where(Store.id.in_(ids)))} if ids else {}


def floor_name(number: int) -> str:
    """The directory's name of a floor: L1, L2, ... from the ground (1) up, B1, B2, ... below (-1, -2)."""
    return f"B{-number}" if number < 0 else f"L{number}"


def merchant_stores(session: Session, merchant_id: int) -> list[Store]:
    """The merchant's active stores, by name (the till's, the host's and the deal form's store pickers)."""
    return list(session.scalars(select(Store).where(Store.merchant_id == merchant_id, Store.active)
                                .order_by(Store.name, Store.id)))


def store_name(session: Session, store_id: int) -> str:
    """The store's name, or "" for no such store."""
    return store_names(session, [store_id]).get(store_id, "")


class SaleItem(Base):
    """A product display in a store that a beacon marks (a limited special, a new arrival)."""

    __tablename__ = "sale_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    name: Mapped[str] = mapped_column(String(80))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Beacon(Base):
    """One of the mall's iBeacons, placed on the floor plan and calibrated."""

    __tablename__ = "beacons"
    __table_args__ = (UniqueConstraint("uuid", "major", "minor"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36))
    major: Mapped[int] = mapped_column(Integer)
    minor: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(80), default="")
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id"), nullable=True)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"), nullable=True)
    sale_item_id: Mapped[int | None] = mapped_column(ForeignKey("sale_items.id"), nullable=True)
    floor: Mapped[int] = mapped_column(SmallInteger)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    # RSSI at 1 m, dBm, as calibrated on site (the frame's own value is only the factory's).
    measured_power: Mapped[int] = mapped_column(SmallInteger)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BeaconStatus(Base):
    """The fleet-health view of a beacon: when it was last heard and its last telemetry (Eddystone-TLM)."""

    __tablename__ = "beacon_status"

    beacon_id: Mapped[int] = mapped_column(ForeignKey("beacons.id"), primary_key=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_rssi: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    battery_mv: Mapped[int | None] = mapped_column(Integer, nullable=True)
    temperature_c: Mapped[float | None] = mapped_column(Float, nullable=True)
    uptime_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    adv_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # TLM: 32-bit unsigned
    telemetry_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Gateway(Base):
    """A listener box in the mall (``python -m beacons``) and the version of its key."""

    __tablename__ = "gateways"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zones.id"), nullable=True)
    floor: Mapped[int] = mapped_column(SmallInteger)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    # Keys are derived from the server secret, the id and this version (see gateway_secret);
    # rotating bumps the version, which retires the old key at once.
    key_version: Mapped[int] = mapped_column(Integer, default=1)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- gateway keys -----------------------------------------------------------------------------------

GATEWAY_KEY_PREFIX = "gk_"


def gateway_secret(server_secret: bytes, gateway_id: int, version: int) -> str:
    """The signing secret of a gateway's key, derived so that the database never holds it."""
    mac = hmac.new(server_secret, f"mallapp/gateway/{gateway_id}/{version}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def gateway_key(server_secret: bytes, gateway: Gateway) -> str:
    """The key to configure on the gateway: ``gk_<id>.<version>.<secret>``."""
    secret = gateway_secret(server_secret, gateway.id, gateway.key_version)
    return f"{GATEWAY_KEY_PREFIX}{gateway.id}.{gateway.key_version}.{secret}"


def batch_signature(secret: str, timestamp: int, nonce: str, body: bytes) -> str:
    """HMAC-SHA256 of ``"<timestamp>\\n<nonce>\\n" + body`` under the gateway's secret, in hex."""
    return hmac.new(secret.encode("ascii"), f"{timestamp}\n{nonce}\n".encode() + body, hashlib.sha256).hexdigest()


# --- the registry snapshot the proximity worker uses --------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZoneInfo:
    id: int
    name: str
    kind: str
    floor: int
    store_id: int | None
    dwell_seconds: int | None
    enter_m: float | None


@dataclass(frozen=True, slots=True)
class Anchor:
    """A fixed point the engine measures distance from: a beacon a phone hears, or a gateway that hears a phone."""

    id: int
    kind: str  # "beacon" | "gateway"
    zone_id: int | None
    store_id: int | None
    sale_item_id: int | None
    floor: int
    x: float
    y: float
    measured_power: int | None


@dataclass(frozen=True)
class Registry:
    """The venue as the engine needs it; anchor ids are beacon ids, and ``-gateway id`` for gateways."""

    version: int
    zones: dict[int, ZoneInfo]
    anchors: dict[int, Anchor]
    beacons_by_key: dict[tuple[str, int, int], int]

    def beacon(self, uuid: str, major: int, minor: int) -> Anchor | None:
        anchor_id = self.beacons_by_key.get((uuid, major, minor))
        return None if anchor_id is None else self.anchors[anchor_id]


def gateway_anchor_id(gateway_id: int) -> int:
    return -gateway_id


def load_registry(session: Session, version: int = 0) -> Registry:
    """Read the active venue into a Registry snapshot."""
    zones = {z.id: ZoneInfo(z.id, z.name, z.kind, z.floor, z.store_id, z.dwell_seconds, z.enter_m)
             for z in session.scalars(select(Zone).where(Zone.active))}
    anchors: dict[int, Anchor] = {}
    by_key: dict[tuple[str, int, int], int] = {}
    for b in session.scalars(select(Beacon).where(Beacon.active)):
        zone_id = b.zone_id if b.zone_id in zones else None
        anchors[b.id] = Anchor(b.id, "beacon", zone_id, b.store_id, b.sale_item_id, b.floor, b.x, b.y,
                               b.measured_power)
        by_key[(b.uuid, b.major, b.minor)] = b.id
    for g in session.scalars(select(Gateway).where(Gateway.active)):
        zone_id = g.zone_id if g.zone_id in zones else None
        anchors[gateway_anchor_id(g.id)] = Anchor(gateway_anchor_id(g.id), "gateway", zone_id, None, None,
                                                  g.floor, g.x, g.y, None)
    return Registry(version=version, zones=zones, anchors=anchors, beacons_by_key=by_key)


REGISTRY_VERSION_KEY = "venue:registry-version"


def bump_registry_version(redis: Redis) -> int:
    """Tell every worker the venue changed (call after the change commits)."""
    return int(redis.incr(REGISTRY_VERSION_KEY))


def registry_version(redis: Redis) -> int:
    return int(redis.get(REGISTRY_VERSION_KEY) or 0)


def normalize_uuid(value: Any) -> str:
    """Lower-case canonical 8-4-4-4-12 form, or ValueError."""
    import uuid as _uuid

    return str(_uuid.UUID(str(value)))
