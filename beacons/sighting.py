"""A sighting: one beacon frame heard by the gateway, and its JSON shape on the wire."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["KINDS", "Kind", "Sighting"]

Kind = Literal["ibeacon", "tlm", "eddystone_uid", "eddystone_url"]
KINDS: tuple[Kind, ...] = ("ibeacon", "tlm", "eddystone_uid", "eddystone_url")


@dataclass(frozen=True, slots=True)
class Sighting:
    """One frame heard: when, from which address, how loud, and what the frame said.

    Which optional fields are set depends on ``kind``: ``ibeacon`` sets uuid, major, minor and
    measured_power; ``tlm`` sets battery_mv, temperature_c (None when unsupported), adv_count,
    uptime_s and, when the listener knows the iBeacon of that address, uuid, major and minor;
    ``eddystone_uid`` sets namespace, instance and tx_power; ``eddystone_url`` sets url and tx_power.
    """

    t: float
    """Unix seconds when heard."""
    kind: Kind
    address: str
    rssi: int
    uuid: str | None = None
    major: int | None = None
    minor: int | None = None
    measured_power: int | None = None
    battery_mv: int | None = None
    temperature_c: float | None = None
    adv_count: int | None = None
    uptime_s: float | None = None
    namespace: str | None = None
    instance: str | None = None
    tx_power: int | None = None
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The sighting as the backend's ``/api/v1/gateway/sightings`` expects it (see beacons/README.md)."""
        out: dict[str, Any] = {"t": round(self.t, 3), "kind": self.kind, "rssi": self.rssi, "address": self.address}
        kind = self.kind
        if kind == "ibeacon":
            out["uuid"] = self.uuid
            out["major"] = self.major
            out["minor"] = self.minor
            out["measured_power"] = self.measured_power
        elif kind == "tlm":
            out["battery_mv"] = self.battery_mv
            out["temperature_c"] = self.temperature_c
            out["adv_count"] = self.adv_count
            out["uptime_s"] = self.uptime_s
            if self.uuid is not None:
                out["uuid"] = self.uuid
                out["major"] = self.major
                out["minor"] = self.minor
        elif kind == "eddystone_uid":
            out["namespace"] = self.namespace
            out["instance"] = self.instance
            out["tx_power"] = self.tx_power
        else:
            out["url"] = self.url
            out["tx_power"] = self.tx_power
        return out
