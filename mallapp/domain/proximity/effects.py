"""What presence transitions do, durably and idempotently (delivery is at least once).

In the database, in the caller's transaction: the automatic check-in (once a day, through the
check-in service), finished zone and mall visits, proximity events, and beacon/gateway health.
In Redis, after that transaction commits: live presence sets and the proximity-events stream
the deals issue consumes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mallapp.domain import checkin
from mallapp.domain.proximity import history, live
from mallapp.domain.proximity.engine import (
    MALL_ENTER,
    MALL_EXIT,
    ZONE_DWELL,
    ZONE_ENTER,
    ZONE_EXIT,
    Transition,
)
from mallapp.domain.venue import BeaconStatus, Gateway, Registry
from mallapp.errors import MallError
from mallapp.settings import Settings

log = logging.getLogger("mallapp.proximity")

EVENTS_STREAM = "proximity:events"
PROXIMITY_KINDS = ("store", "item")


def ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass
class Outcome:
    """What the database part decided, for the Redis part to publish after the commit."""

    enter: list[tuple[int, int]] = field(default_factory=list)  # (zone id, member id); zone 0 = mall
    leave: list[tuple[int, int]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    checkins: int = 0


def zone_sale_items(registry: Registry) -> dict[int, int]:
    """The sale item each item zone marks (from its beacons)."""
    return {a.zone_id: a.sale_item_id for a in registry.anchors.values()
            if a.zone_id is not None and a.sale_item_id is not None}


def apply_transitions(session: Session, settings: Settings, registry: Registry, sale_items: dict[int, int],
                      member_id: int, transitions: list[Transition], outcome: Outcome) -> None:
    """Write the durable effects of one member's transitions (a repeat writes nothing new)."""
    for tr in transitions:
        if tr.kind == MALL_ENTER:
            outcome.enter.append((live.MALL, member_id))
            try:
                checkin.check_in(session, settings, member_id, now=ts(tr.at), method="beacon")
                outcome.checkins += 1
            except MallError as exc:  # already checked in today (by the button, or an earlier delivery)
                log.debug("no automatic check-in for member %s: %s", member_id, exc.code)
        elif tr.kind == MALL_EXIT:
            outcome.leave.append((live.MALL, member_id))
            history.record_mall_visit(session, member_id, ts(tr.since), ts(tr.at))
        elif tr.kind == ZONE_ENTER:
            outcome.enter.append((tr.zone_id, member_id))
        elif tr.kind == ZONE_EXIT:
            outcome.leave.append((tr.zone_id, member_id))
            if tr.zone_id in registry.zones:
                history.record_zone_visit(session, member_id, tr.zone_id, ts(tr.since), ts(tr.at))
        elif tr.kind == ZONE_DWELL:
            zone = registry.zones.get(tr.zone_id)
            if zone is None or zone.kind not in PROXIMITY_KINDS:
                continue
            if history.stay_goes_on(session, member_id, zone.id, ts(tr.since)):
                continue  # the same stay, its presence rebuilt after its state was lost: told once already
            sale_item_id = sale_items.get(tr.zone_id)
            event_id = history.record_proximity_event(session, member_id, zone.id, zone.store_id, sale_item_id,
                                                      ts(tr.since), ts(tr.at))
            if event_id is None:  # recorded by an earlier delivery: publish again, consumers dedupe by id
                event_id = history.proximity_event_id(session, member_id, zone.id, ts(tr.since))
            outcome.events.append({"id": event_id, "member_id": member_id, "zone_id": zone.id,
                                   "store_id": zone.store_id, "sale_item_id": sale_item_id, "kind": "dwell",
                                   "at": tr.at})


def publish(redis: Redis, outcome: Outcome) -> None:
    """The Redis side of the effects, after the database commit; every step is idempotent."""
    if not (outcome.enter or outcome.leave or outcome.events):
        return
    pipe = redis.pipeline(transaction=False)
    for zone_id, member_id in outcome.enter:
        live.enter(pipe, zone_id, member_id)
    for zone_id, member_id in outcome.leave:
        live.leave(pipe, zone_id, member_id)
    for event in outcome.events:
        pipe.xadd(EVENTS_STREAM, {k: "" if v is None else str(v) for k, v in event.items()},
                  maxlen=100_000, approximate=True)
    pipe.execute()


@dataclass
class Health:
    """The latest sighting and telemetry per beacon, and per gateway, gathered from a chunk of batches."""

    seen: dict[int, tuple[float, int]] = field(default_factory=dict)  # beacon id -> (t, rssi)
    telemetry: dict[int, tuple[float, int | None, float | None, float | None, int | None]] = field(
        default_factory=dict)  # beacon id -> (t, battery mV, temperature, uptime s, adv count)
    gateways: dict[int, float] = field(default_factory=dict)

    def saw(self, beacon_id: int, t: float, rssi: int) -> None:
        previous = self.seen.get(beacon_id)
        if previous is None or t > previous[0]:
            self.seen[beacon_id] = (t, rssi)


HEALTH_EVERY_S = 30.0


def health_due(health: Health, written: dict[tuple[str, int], float], now: float,
               every_s: float = HEALTH_EVERY_S) -> bool:
    """Whether write_health would write anything (so a chunk with nothing due opens no transaction)."""
    return bool(health.telemetry) or any(now - written.get(("b", b), 0.0) >= every_s for b in health.seen) or \
        any(now - written.get(("g", g), 0.0) >= every_s for g in health.gateways)


def write_health(session: Session, health: Health, written: dict[tuple[str, int], float], now: float,
                 every_s: float = HEALTH_EVERY_S) -> None:
    """Persist fleet health, at most every ``every_s`` per beacon and gateway (``written`` remembers when).

    Rows are written in key order (beacons by id, then gateways by id): workers writing overlapping
    rows then lock them in the same order and cannot deadlock each other.
    """
    for beacon_id in sorted(health.seen.keys() | health.telemetry.keys()):
        seen, tlm = health.seen.get(beacon_id), health.telemetry.get(beacon_id)
        values: dict[str, Any] = {}
        if seen is not None and (tlm is not None or now - written.get(("b", beacon_id), 0.0) >= every_s):
            values.update(last_seen_at=ts(seen[0]), last_rssi=seen[1])
        if tlm is not None:
            values.update(telemetry_at=ts(tlm[0]), battery_mv=tlm[1], temperature_c=tlm[2], uptime_s=tlm[3],
                          adv_count=tlm[4])
        if not values:
            continue
        _upsert_status(session, beacon_id, values)
        if seen is not None:
            written[("b", beacon_id)] = now
    for gateway_id, t in sorted(health.gateways.items()):
        if now - written.get(("g", gateway_id), 0.0) >= every_s:
            session.execute(update(Gateway).where(Gateway.id == gateway_id).values(last_seen_at=ts(t)))
            written[("g", gateway_id)] = now


def _upsert_status(session: Session, beacon_id: int, values: dict[str, Any]) -> None:
    # Only move forward in time: a late batch must not overwrite newer health.
    when = values.get("last_seen_at") or values["telemetry_at"]
    column = BeaconStatus.last_seen_at if "last_seen_at" in values else BeaconStatus.telemetry_at
    done = session.execute(update(BeaconStatus).where(BeaconStatus.beacon_id == beacon_id,
                                                      (column.is_(None)) | (column < when)).values(**values))
    if done.rowcount == 0 and session.scalar(select(BeaconStatus.beacon_id)
                                             .where(BeaconStatus.beacon_id == beacon_id)) is None:
        # First health of this beacon; a concurrent first write by another worker wins harmlessly.
        if session.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        session.execute(insert(BeaconStatus).values(beacon_id=beacon_id, **values)
                        .on_conflict_do_nothing(index_elements=["beacon_id"]))
