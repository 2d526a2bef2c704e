"""Sightings in (from the mini-program and from gateways) and the member's advertising identity."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from flask import Blueprint
from pydantic import Field, StringConstraints

from mallapp.api.core import Body, Out, current_gateway_id, current_member_id, operation, runtime
from mallapp.domain.checkin import Position
from mallapp.domain.proximity import identity, ingest

bp = Blueprint("proximity", __name__, url_prefix="/api/v1")
# The latest time a phone or gateway may claim (2100-01-01, unix ms): a larger number is no time, and
# 10**400 overflowed the float it is read as.
UNIX_MS_2100 = 4_102_444_800_000

Uuid = Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                                                r"[0-9A-Fa-f]{12}$")]


class PhoneBeaconIn(Body):
    """One entry of wx.onBeaconUpdate's beacons list."""

    uuid: Uuid
    major: int
    minor: int
    rssi: int = Field(description="dBm; 0 means iOS did not measure it this round (ignored)")
    accuracy: float | None = Field(default=None, allow_inf_nan=False, description="the platform's distance estimate, metres (unused)")
    proximity: int | None = Field(default=None, ge=0, le=3, description="iOS: 0 unknown .. 3 far (unused)")


class LocationIn(Body):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class PhoneBatchIn(Body):
    beacons: list[PhoneBeaconIn]
    ts: int | None = Field(default=None, ge=0, le=UNIX_MS_2100, description="when the phone got the update, unix milliseconds")
    location: LocationIn | None = Field(default=None, description="the phone's position when it has one: "
                                                                  "sightings far from the mall do not check in")


class Accepted(Out):
    accepted: int
    ignored: int = 0


class GatewaySightingIn(Body):
    t: float = Field(ge=0, le=UNIX_MS_2100 / 1000, allow_inf_nan=False, description="when the gateway heard it, unix seconds")
    kind: Literal["ibeacon", "tlm", "eddystone_uid"]
    rssi: int
    address: Annotated[str, StringConstraints(max_length=64)] | None = None
    uuid: Uuid | None = None
    major: int | None = None
    minor: int | None = None
    measured_power: int | None = Field(default=None, ge=-128, le=127)
    battery_mv: int | None = Field(default=None, ge=0, le=65535)
    temperature_c: float | None = Field(default=None, ge=-128, le=128, allow_inf_nan=False)
    adv_count: int | None = Field(default=None, ge=0, le=2**63 - 1)
    uptime_s: float | None = Field(default=None, ge=0, le=10**10, allow_inf_nan=False)
    namespace: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{20}$")] | None = None
    instance: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{12}$")] | None = None
    tx_power: int | None = Field(default=None, ge=-128, le=127)


class GatewayBatchIn(Body):
    sightings: list[GatewaySightingIn]


class IdentityOut(Out):
    uuid: str
    major: int
    minor: int
    valid_until: datetime


# A full gateway batch (1,000 sightings of about 250 bytes) is larger than other bodies.
GATEWAY_MAX_BODY = 1024 * 1024

SIGHTING_ERRORS = ("sightings.unknown_uuid", "sightings.impossible_rssi", "sightings.invalid_beacon",
                   "sightings.stale", "sightings.from_future", "sightings.batch_too_large",
                   "sightings.rate_limited")


@operation(bp, "/sightings", "POST", summary="Post the mini-program's wx.onBeaconUpdate list", auth="member",
           body=PhoneBatchIn, response=Accepted, status=202, errors=SIGHTING_ERRORS)
def post_sightings(body: PhoneBatchIn) -> Accepted:
    rt = runtime()
    beacons = [ingest.PhoneBeacon(b.uuid, b.major, b.minor, b.rssi) for b in body.beacons]
    position = Position(body.location.latitude, body.location.longitude) if body.location else None
    accepted, ignored = ingest.member_batch(rt.redis, rt.settings, current_member_id(), beacons, now=rt.now(),
                                            client_ms=body.ts, position=position)
    return Accepted(accepted=accepted, ignored=ignored)


@operation(bp, "/gateway/sightings", "POST", summary="Post a gateway's signed batch of sightings", auth="gateway",
           body=GatewayBatchIn, response=Accepted, status=202, max_body=GATEWAY_MAX_BODY,
           errors=("gateway.unsigned", "gateway.bad_key", "gateway.stale_signature", "gateway.bad_signature",
                   "gateway.replayed", *SIGHTING_ERRORS))
def post_gateway_sightings(body: GatewayBatchIn) -> Accepted:
    rt = runtime()
    # The validated models have the fields of ingest.GatewaySighting: no second copy of 1,000 objects.
    accepted = ingest.gateway_batch(rt.redis, rt.settings, current_gateway_id(), body.sightings, now=rt.now())
    return Accepted(accepted=accepted, ignored=len(body.sightings) - accepted)


@operation(bp, "/me/beacon-identity", "GET", summary="The iBeacon identity this phone should advertise now",
           auth="member", response=IdentityOut)
def get_beacon_identity() -> IdentityOut:
    rt = runtime()
    ident = identity.issue(rt.redis, rt.settings, current_member_id(), rt.now())
    return IdentityOut(uuid=ident.uuid, major=ident.major, minor=ident.minor, valid_until=ident.valid_until)
