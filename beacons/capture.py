"""Recorded advertisements: the JSONL capture format (see beacons/README.md), read and written.

One JSON object per line, one advertisement each::

    {"t": 0.125, "address": "C3:00:00:00:00:01", "rssi": -67, "name": "MB1",
     "manufacturer_data": {"0x004c": "0215fda5...c5"},
     "service_data": {"0000feaa-0000-1000-8000-00805f9b34fb": "20000bb8..."},
     "service_uuids": ["0000feaa-0000-1000-8000-00805f9b34fb"], "tx_power": null}

``t`` is seconds from the start of the capture; only ``t``, ``address`` and ``rssi`` are required.
A first line with a ``"format"`` key is a header (``{"format": "beacons-capture", "version": 1, ...}``).
Blank lines are skipped.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["CAPTURE_FORMAT", "Advert", "CaptureError", "CaptureWriter", "advert_from_json", "read_capture", "write_capture"]

CAPTURE_FORMAT = "beacons-capture"
CAPTURE_VERSION = 1


class CaptureError(ValueError):
    """A capture line that is not a valid advertisement (the message names the file and line)."""


@dataclass(frozen=True, slots=True)
class Advert:
    """One advertisement as the air carried it, ``t`` seconds after the start of its capture."""

    t: float
    address: str
    rssi: int
    name: str | None = None
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    service_data: dict[str, bytes] = field(default_factory=dict)
    service_uuids: list[str] = field(default_factory=list)
    tx_power: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The capture line of this advertisement (optional fields only when present)."""
        out: dict[str, Any] = {"t": round(self.t, 6), "address": self.address, "rssi": self.rssi}
        if self.name is not None:
            out["name"] = self.name
        if self.manufacturer_data:
            out["manufacturer_data"] = {f"0x{k:04x}": v.hex() for k, v in self.manufacturer_data.items()}
        if self.service_data:
            out["service_data"] = {k: v.hex() for k, v in self.service_data.items()}
        if self.service_uuids:
            out["service_uuids"] = list(self.service_uuids)
        if self.tx_power is not None:
            out["tx_power"] = self.tx_power
        return out


def _company_id(key: str) -> int:
    value = int(key, 16) if key.lower().startswith("0x") else int(key)
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"company id {key!r} is not a 16-bit number")
    return value


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer")
    return value


def advert_from_json(obj: Any) -> Advert:
    """An Advert from one parsed capture line; ValueError when a field is missing or malformed."""
    if not isinstance(obj, dict):
        raise ValueError("a capture line must be a JSON object")
    try:
        t, address, rssi = obj["t"], obj["address"], obj["rssi"]
    except KeyError as exc:
        raise ValueError(f"missing {exc.args[0]!r}") from None
    if isinstance(t, bool) or not isinstance(t, int | float) or t < 0:
        raise ValueError("t must be a non-negative number of seconds")
    if not isinstance(address, str) or not address:
        raise ValueError("address must be a non-empty string")
    name = obj.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError("name must be a string")
    tx_power = obj.get("tx_power")
    return Advert(
        t=float(t), address=address, rssi=_int(rssi, "rssi"), name=name,
        manufacturer_data={_company_id(k): bytes.fromhex(v) for k, v in (obj.get("manufacturer_data") or {}).items()},
        service_data={str(k).lower(): bytes.fromhex(v) for k, v in (obj.get("service_data") or {}).items()},
        service_uuids=[str(u).lower() for u in obj.get("service_uuids") or []],
        tx_power=None if tx_power is None else _int(tx_power, "tx_power"),
    )


def read_capture(path: str | Path) -> list[Advert]:
    """All advertisements of a capture file, in file order; CaptureError names the first bad line."""
    path = Path(path)
    adverts: list[Advert] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if number == 1 and isinstance(obj, dict) and "format" in obj:
                    if obj["format"] != CAPTURE_FORMAT:
                        raise ValueError(f"not a {CAPTURE_FORMAT} file (format {obj['format']!r})")
                    continue
                adverts.append(advert_from_json(obj))
            except (ValueError, TypeError, AttributeError) as exc:
                raise CaptureError(f"{path}:{number}: {exc}") from None
    return adverts


def write_capture(path: str | Path, adverts: list[Advert]) -> None:
    """Write ``adverts`` as a capture file, header first."""
    with Path(path).open("w", encoding="utf-8") as fh:
        fh.write(json.dumps({"format": CAPTURE_FORMAT, "version": CAPTURE_VERSION}) + "\n")
        for a in adverts:
            fh.write(json.dumps(a.to_json()) + "\n")


class CaptureWriter:
    """Write what a scanner hears as a capture: use :meth:`on_advertisement` as a detection callback."""

    def __init__(self, out: IO[str], *, clock: Any = time.monotonic) -> None:
        self._out = out
        self._clock = clock
        self._start: float | None = None
        self.written = 0
        out.write(json.dumps({"format": CAPTURE_FORMAT, "version": CAPTURE_VERSION, "started": time.time()}) + "\n")

    def on_advertisement(self, device: Any, adv: Any) -> None:
        """Record ``(BLEDevice, AdvertisementData)`` as one line."""
        now = self._clock()
        if self._start is None:
            self._start = now
        record = Advert(t=now - self._start, address=device.address, rssi=adv.rssi, name=adv.local_name,
                        manufacturer_data=dict(adv.manufacturer_data), service_data=dict(adv.service_data),
                        service_uuids=list(adv.service_uuids), tx_power=adv.tx_power)
        self._out.write(json.dumps(record.to_json()) + "\n")
        self.written += 1
