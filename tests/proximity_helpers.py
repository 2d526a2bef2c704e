"""A small venue for the proximity tests: an entrance, a coffee shop with a sale item, and a gateway."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime

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
from mallapp.runtime import Runtime

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
