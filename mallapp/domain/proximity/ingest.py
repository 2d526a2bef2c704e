"""Sighting batches in: checked, rate-limited and appended to the Redis stream the workers consume.

Two sources, one stream:

- a member's mini-program posts its ``wx.onBeaconUpdate`` list (the phone hears mall beacons);
- a gateway posts what its listener heard (mall beacons and their telemetry, and members' phones
  advertising their rotating identity), each batch signed with the gateway's key.

The stream is partitioned (``stream_partitions`` streams): a member's sightings go to the
partition of the member (phone) or of the identity token (gateway), so one worker at a time
advances a member's state (see ``mallapp.processes.worker``). Each batch becomes one entry per
partition it touches, ``{"d": <compact JSON>}``: the worker parses it, so the web worker's cost
per sighting is a validation and a few bytes of JSON.
"""

from __future__ import annotations

import functools
import hmac
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from redis import Redis
from sqlalchemy.orm import Session

from mallapp.domain.checkin import Position, distance_to_mall_m
from mallapp.domain.venue import Gateway, batch_signature, gateway_secret
from mallapp.errors import Conflict, InvalidInput, PayloadTooLarge, RateLimited, RuleViolation, Unauthorized
from mallapp.settings import Settings

IDENTITY = -1  # the uuid index of a member identity in a gateway entry


def stream(partition: int) -> str:
    return f"proximity:sightings:{partition}"


def streams(settings: Settings) -> list[str]:
    return [stream(p) for p in range(settings.beacons.ingest.stream_partitions)]


def member_partition(settings: Settings, member_id: int) -> int:
    return member_id % settings.beacons.ingest.stream_partitions


def token_partition(settings: Settings, major: int, minor: int) -> int:
    return ((major << 16) | minor) % settings.beacons.ingest.stream_partitions


@dataclass(frozen=True, slots=True)
class PhoneBeacon:
    """One entry of ``wx.onBeaconUpdate``'s ``beacons`` list."""

    uuid: str
    major: int
    minor: int
    rssi: int


class GatewaySightingLike(Protocol):
    t: float
    kind: str
    rssi: int
    uuid: str | None
    major: int | None
    minor: int | None
    measured_power: int | None
    battery_mv: int | None
    temperature_c: float | None
    adv_count: int | None
    uptime_s: float | None


@dataclass(frozen=True, slots=True)
class GatewaySighting:
    """One advertisement a gateway heard (see beacons/README.md for the wire format)."""

    t: float
    kind: str
    rssi: int
    uuid: str | None = None
    major: int | None = None
    minor: int | None = None
    measured_power: int | None = None
    battery_mv: int | None = None
    temperature_c: float | None = None
    adv_count: int | None = None
    uptime_s: float | None = None


def _rate_key(kind: str, caller: int, minute: int) -> str:
    return f"proximity:rate:{kind}:{caller}:{minute}"


def _nonce_key(gateway_id: int, nonce: str) -> str:
    return f"proximity:gateway-nonce:{gateway_id}:{nonce}"


def _check_rate(redis: Redis, kind: str, caller: int, limit: int, now: datetime) -> None:
    """A fixed one-minute window per caller; over the limit is a 429 with the seconds to wait."""
    ts = now.timestamp()
    minute = int(ts // 60)
    key = _rate_key(kind, caller, minute)
    pipe = redis.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, 120)
    count = pipe.execute()[0]
    if count > limit:
        wait = max(1, int(60 - ts % 60))
        raise RateLimited(f"at most {limit} sighting batches a minute; try again in {wait} s",
                          code="sightings.rate_limited", details={"retry_after_s": wait})


def _uuid_index(settings: Settings) -> dict[str, int]:
    return _index_of(settings.beacons.uuids)


@functools.cache
def _index_of(uuids: tuple[str, ...]) -> dict[str, int]:
    # Built once per configured list, not per batch.
    return {u: i for i, u in enumerate(uuids)}


def _check_rssi(rssi: int, where: str) -> None:
    if not -127 <= rssi <= -1:
        raise InvalidInput(f"{where}: rssi {rssi} dBm is impossible (a received signal is -127 to -1 dBm)",
                           code="sightings.impossible_rssi")


# What an Eddystone-TLM frame can carry (and so what fleet health's columns must hold): battery in mV
# and the advertising count are unsigned 16 and 32 bits, uptime a 32-bit count of 0.1 s, temperature 8.8
# fixed point.
TLM_BOUNDS = {"battery_mv": (0, 0xFFFF), "adv_count": (0, 0xFFFF_FFFF), "uptime_s": (0, 0xFFFF_FFFF / 10),
              "temperature_c": (-128, 128)}


def _check_range(value: float | None, low: float, high: float, where: str) -> None:
    # ``not low <= value <= high`` also refuses NaN.
    if value is not None and (isinstance(value, bool) or not low <= value <= high):
        raise InvalidInput(f"{where} {value!r} is outside {low:g} to {high:g}", code="sightings.invalid_beacon")


def _check_telemetry(s: GatewaySightingLike, where: str) -> None:
    """Bound every telemetry field to what the frame carries, so each fits its column downstream."""
    for name, (low, high) in TLM_BOUNDS.items():
        _check_range(getattr(s, name), low, high, f"{where}: {name}")


def _append(redis: Redis, settings: Settings, entries: dict[int, dict[str, Any]]) -> None:
    """Append one entry to each partition's stream (one round trip)."""
    pipe = redis.pipeline(transaction=False)
    for partition, entry in entries.items():
        pipe.xadd(stream(partition), {"d": json.dumps(entry, separators=(",", ":"))},
                  maxlen=settings.beacons.ingest.stream_maxlen, approximate=True)
    pipe.execute()


def member_batch(redis: Redis, settings: Settings, member_id: int, beacons: Sequence[PhoneBeacon], *,
                 now: datetime, client_ms: int | None = None, position: Position | None = None) -> tuple[int, int]:
    """Queue a member's beacon list; return (accepted, ignored). Rssi 0 (iOS: not measured) is ignored."""
    cfg = settings.beacons.ingest
    if len(beacons) > cfg.member_batch_max:
        raise PayloadTooLarge(f"at most {cfg.member_batch_max} beacons per batch, not {len(beacons)}",
                              code="sightings.batch_too_large")
    t = now.timestamp()
    if client_ms is not None:
        sent = client_ms / 1000.0
        if sent < t - cfg.member_max_age_s:
            raise RuleViolation(f"the batch is {t - sent:.0f} s old; send sightings within {cfg.member_max_age_s:.0f} s",
                                code="sightings.stale")
        if sent > t + cfg.max_future_skew_s:
            raise RuleViolation("the batch's time is in the future; check the phone's clock",
                                code="sightings.from_future")
        t = min(sent, t)
    index = _uuid_index(settings)
    rows = []
    for i, b in enumerate(beacons):
        ui = index.get(b.uuid.lower())
        if ui is None:
            raise RuleViolation(f"beacons[{i}]: {b.uuid} is not one of this mall's beacon UUIDs",
                                code="sightings.unknown_uuid")
        if b.rssi == 0:
            continue
        _check_rssi(b.rssi, f"beacons[{i}]")
        if not (0 <= b.major <= 0xFFFF and 0 <= b.minor <= 0xFFFF):
            raise InvalidInput(f"beacons[{i}]: major and minor are 0 to 65535", code="sightings.invalid_beacon")
        rows.append((ui, b.major, b.minor, b.rssi, t))
    _check_rate(redis, "m", member_id, cfg.member_batches_per_minute, now)
    far = position is not None and distance_to_mall_m(settings, position) > settings.mall.radius_m
    if rows:
        _append(redis, settings, {member_partition(settings, member_id): {
            "src": "m", "member": member_id, "at": time.time(), "far": far, "s": rows}})
    return len(rows), len(beacons) - len(rows)


def gateway_batch(redis: Redis, settings: Settings, gateway_id: int, sightings: Sequence[GatewaySightingLike], *,
                  now: datetime) -> int:
    """Queue a gateway's batch; return the sightings accepted (others' UUIDs are ignored, not refused).

    Impossible values and timestamps outside the window refuse the whole batch: they mean a
    broken gateway or clock, which its operators must hear about (the forwarder logs the refusal).
    """
    cfg = settings.beacons.ingest
    if len(sightings) > cfg.gateway_batch_max:
        raise PayloadTooLarge(f"at most {cfg.gateway_batch_max} sightings per batch, not {len(sightings)}",
                              code="sightings.batch_too_large")
    t_now = now.timestamp()
    oldest, newest = t_now - cfg.gateway_max_age_s, t_now + cfg.max_future_skew_s
    index = _uuid_index(settings)
    identity = settings.beacons.identity_uuid
    heard, telemetry, other = [], [], 0
    for i, s in enumerate(sightings):
        if not oldest <= s.t <= newest:
            raise RuleViolation(f"sightings[{i}]: t={s.t} is outside the accepted window "
                                f"({cfg.gateway_max_age_s:.0f} s back, {cfg.max_future_skew_s:.0f} s ahead)",
                                code="sightings.stale" if s.t < oldest else "sightings.from_future")
        _check_rssi(s.rssi, f"sightings[{i}]")
        ui: int | None = None
        if s.uuid is not None:
            uuid = s.uuid.lower()
            ui = IDENTITY if uuid == identity else index.get(uuid)
            if ui is None:
                # A shop's own beacon, or a stranger's phone: the air is shared, so a gateway hears
                # UUIDs that are not the mall's. Counted as ignored, not a reason to refuse the batch.
                other += 1
                continue
            if s.major is None or s.minor is None or not (0 <= s.major <= 0xFFFF and 0 <= s.minor <= 0xFFFF):
                raise InvalidInput(f"sightings[{i}]: major and minor are 0 to 65535", code="sightings.invalid_beacon")
        if s.kind == "ibeacon":
            _check_range(s.measured_power, -128, 127, f"sightings[{i}]: measured_power")
            if ui is None:
                raise InvalidInput(f"sightings[{i}]: an ibeacon sighting needs uuid, major and minor",
                                   code="sightings.invalid_beacon")
            heard.append((ui, s.major, s.minor, s.rssi, s.t, s.measured_power))
        elif s.kind == "tlm":
            _check_telemetry(s, f"sightings[{i}]")
            if ui is not None and ui != IDENTITY:
                telemetry.append((ui, s.major, s.minor, s.battery_mv, s.temperature_c, s.uptime_s, s.adv_count, s.t))
            else:
                other += 1  # telemetry of a beacon the gateway could not name: nothing to attach it to
        else:
            other += 1
    _check_rate(redis, "g", gateway_id, cfg.gateway_batches_per_minute, now)
    # Members' identities to their token's partition; the mall's beacons (fleet health) to the gateway's.
    at = time.time()
    own = gateway_id % cfg.stream_partitions
    entries: dict[int, dict[str, Any]] = {}
    for row in heard:
        partition = token_partition(settings, row[1], row[2]) if row[0] == IDENTITY else own
        entry = entries.get(partition)
        if entry is None:
            entry = entries[partition] = {"src": "g", "gateway": gateway_id, "at": at, "s": [], "tlm": []}
        entry["s"].append(row)
    if telemetry:
        entries.setdefault(own, {"src": "g", "gateway": gateway_id, "at": at, "s": [], "tlm": []})["tlm"] = telemetry
    if entries:
        _append(redis, settings, entries)
    return len(heard) + len(telemetry)


# ASCII digits only (a str pattern's \d takes any script's digits), and a timestamp int() can read.
_KEY_ID = re.compile(r"^([0-9]{1,9})\.([0-9]{1,9})\Z")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}\Z")
_NONCE = re.compile(r"^[0-9a-f]{32}$")


def authenticate_gateway(session: Session, redis: Redis, settings: Settings, server_secret: bytes,
                         headers: Mapping[str, str], body: bytes, now: datetime) -> int:
    """Check a gateway batch's signature, freshness and nonce; return the gateway id."""
    key_id = headers.get("X-Gateway-Key-Id", "")
    timestamp = headers.get("X-Gateway-Timestamp", "")
    nonce = headers.get("X-Gateway-Nonce", "")
    signature = headers.get("X-Gateway-Signature", "")
    if not (key_id and timestamp and nonce and signature):
        raise Unauthorized("sign the batch: X-Gateway-Key-Id, X-Gateway-Timestamp, X-Gateway-Nonce and "
                           "X-Gateway-Signature", code="gateway.unsigned")
    match = _KEY_ID.match(key_id)
    if not match or not _TIMESTAMP.match(timestamp) or not _NONCE.match(nonce):
        raise Unauthorized("malformed gateway signature headers", code="gateway.unsigned")
    gateway_id, version = int(match[1]), int(match[2])
    gateway = session.get(Gateway, gateway_id)
    if gateway is None or not gateway.active or gateway.key_version != version:
        raise Unauthorized("unknown, retired or rotated gateway key", code="gateway.bad_key")
    ts = int(timestamp)
    max_age = settings.beacons.ingest.signature_max_age_s
    if abs(now.timestamp() - ts) > max_age:
        raise Unauthorized(f"the signature's timestamp is more than {max_age} s from the server's clock",
                           code="gateway.stale_signature")
    expected = batch_signature(gateway_secret(server_secret, gateway_id, version), ts, nonce, body)
    # Bytes: compare_digest raises TypeError on a str that is not ASCII.
    if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
        raise Unauthorized("the batch's signature does not match", code="gateway.bad_signature")
    # Remembered for twice the accepted age: any replay inside the window meets it.
    if not redis.set(_nonce_key(gateway_id, nonce), 1, nx=True, ex=2 * max_age):
        raise Conflict("this batch (nonce) was received before", code="gateway.replayed")
    return gateway_id
