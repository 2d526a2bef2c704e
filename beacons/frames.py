"""Beacon frame parsers: iBeacon and Eddystone UID, URL and TLM, as pure functions on bytes.

Each parser takes the bytes bleak hands over and returns a NamedTuple, or None for anything it
does not recognise: short, malformed, unknown or encrypted frames. None of them raises on any input.

- :func:`parse_ibeacon`: ``advertisement_data.manufacturer_data[0x004C]`` (without the company id).
- :func:`parse_eddystone`: ``advertisement_data.service_data[EDDYSTONE_SERVICE_UUID]``.
- :func:`parse_advertisement`: a raw advertising payload (the AD structures of one packet), the
  form beacontools parses; used by the benchmark and for raw HCI captures.

Speed matters (a gateway hears thousands of frames a second): precompiled ``struct.Struct``,
``unpack_from`` at an offset, no regular expressions, one result tuple per call.

The ``build_*`` functions and :func:`raw_advertisement` are the inverse, for replayed data sets,
tests and the benchmark.
"""

from __future__ import annotations

from struct import Struct
from typing import NamedTuple

__all__ = [
    "APPLE_COMPANY_ID",
    "EDDYSTONE_SERVICE_UUID",
    "EddystoneTLM",
    "EddystoneUID",
    "EddystoneURL",
    "IBeacon",
    "ad_structure",
    "build_eddystone_tlm",
    "build_eddystone_uid",
    "build_ibeacon",
    "parse_advertisement",
    "parse_eddystone",
    "parse_ibeacon",
    "raw_advertisement",
]

APPLE_COMPANY_ID = 0x004C
EDDYSTONE_SERVICE_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"

_IBEACON_PREFIX = b"\x02\x15"  # iBeacon type 0x02, 0x15 = 21 bytes follow
_IBEACON = Struct(">16sHHb")  # uuid, major, minor, measured power; after the prefix
_IBEACON_LEN = 2 + _IBEACON.size  # 23
_UID = Struct(">b10s6s")  # tx power at 0 m, namespace, instance; after the frame type
_UID_MIN_LEN = 1 + _UID.size  # 18: the two RFU bytes that follow are optional in practice
_TLM = Struct(">HhII")  # battery mV, temperature 8.8, PDU count, uptime in 0.1 s; after type and version
_TLM_LEN = 2 + _TLM.size  # 14
_TLM_NO_TEMPERATURE = -0x8000  # 0x8000 read as a signed int16
_URL_MAX_LEN = 20  # frame type, tx power, scheme, up to 17 encoded bytes

_FRAME_UID = 0x00
_FRAME_URL = 0x10
_FRAME_TLM = 0x20
_TLM_UNENCRYPTED = 0x00

_URL_SCHEMES = ("http://www.", "https://www.", "http://", "https://")
_URL_EXPANSIONS = (".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/",
                   ".com", ".org", ".edu", ".net", ".info", ".biz", ".gov")
# One entry per byte value: the text it stands for, or None when the spec reserves it.
_URL_TABLE: tuple[str | None, ...] = tuple(
    _URL_EXPANSIONS[b] if b < len(_URL_EXPANSIONS) else chr(b) if 0x21 <= b <= 0x7E else None
    for b in range(256)
)

# Canonical UUID text per 16-byte value: a gateway hears a handful of UUIDs millions of times.
# Bounded so that garbage (or a phone rotating UUIDs) cannot grow it without limit.
_UUID_CACHE: dict[bytes, str] = {}
_UUID_CACHE_MAX = 1024


class IBeacon(NamedTuple):
    """An iBeacon advertisement (Apple's proximity beacon)."""

    uuid: str
    """Proximity UUID, lowercase canonical form with dashes."""
    major: int
    """0..65535."""
    minor: int
    """0..65535."""
    measured_power: int
    """Calibrated RSSI at 1 m, dBm (signed byte, e.g. -59 = 0xC5)."""


class EddystoneUID(NamedTuple):
    """An Eddystone-UID frame (frame type 0x00)."""

    tx_power: int
    """Calibrated TX power at 0 m, dBm."""
    namespace: str
    """10-byte namespace id, 20 lowercase hex digits."""
    instance: str
    """6-byte instance id, 12 lowercase hex digits."""


class EddystoneURL(NamedTuple):
    """An Eddystone-URL frame (frame type 0x10), the URL expanded."""

    tx_power: int
    """Calibrated TX power at 0 m, dBm."""
    url: str


class EddystoneTLM(NamedTuple):
    """An unencrypted Eddystone-TLM frame (frame type 0x20, version 0x00)."""

    battery_mv: int
    """Battery voltage in mV; 0 when the beacon does not report it (the spec's convention)."""
    temperature_c: float | None
    """Beacon temperature in degrees Celsius (8.8 fixed point); None when unsupported (0x8000)."""
    adv_count: int
    """Advertising PDUs sent since power-on or reboot."""
    uptime_s: float
    """Time since power-on or reboot, seconds (0.1 s resolution)."""


def _uuid_text(raw: bytes) -> str:
    text = _UUID_CACHE.get(raw)
    if text is None:
        h = raw.hex()
        text = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        if len(_UUID_CACHE) >= _UUID_CACHE_MAX:
            _UUID_CACHE.clear()
        _UUID_CACHE[raw] = text
    return text


def parse_ibeacon(data: bytes) -> IBeacon | None:
    """Parse Apple manufacturer data (without the company id) as an iBeacon, or None."""
    if len(data) < _IBEACON_LEN or not data.startswith(_IBEACON_PREFIX):
        return None
    raw_uuid, major, minor, power = _IBEACON.unpack_from(data, 2)
    return IBeacon(_uuid_text(raw_uuid), major, minor, power)


def parse_eddystone(data: bytes) -> EddystoneUID | EddystoneURL | EddystoneTLM | None:
    """Parse Eddystone service data (frame type first) as UID, URL or TLM, or None."""
    if not data:
        return None
    frame_type = data[0]
    if frame_type == _FRAME_UID:
        if len(data) < _UID_MIN_LEN:
            return None
        tx_power, namespace, instance = _UID.unpack_from(data, 1)
        return EddystoneUID(tx_power, namespace.hex(), instance.hex())
    if frame_type == _FRAME_TLM:
        if len(data) < _TLM_LEN or data[1] != _TLM_UNENCRYPTED:
            return None
        battery, temperature, count, tenths = _TLM.unpack_from(data, 2)
        return EddystoneTLM(battery, None if temperature == _TLM_NO_TEMPERATURE else temperature / 256,
                            count, tenths / 10)
    if frame_type == _FRAME_URL:
        return _parse_url(data)
    return None


def _parse_url(data: bytes) -> EddystoneURL | None:
    if not 3 <= len(data) <= _URL_MAX_LEN or data[2] >= len(_URL_SCHEMES):
        return None
    parts = [_URL_TABLE[b] for b in data[3:]]
    if None in parts:
        return None
    tx_power = data[1] - 256 if data[1] > 127 else data[1]
    return EddystoneURL(tx_power, _URL_SCHEMES[data[2]] + "".join(parts))  # type: ignore[arg-type]


_AD_MANUFACTURER = 0xFF
_AD_SERVICE_DATA_16 = 0x16
_APPLE_LE = b"\x4c\x00"  # company ids are little-endian on the air
_EDDYSTONE_LE = b"\xaa\xfe"


def parse_advertisement(packet: bytes) -> IBeacon | EddystoneUID | EddystoneURL | EddystoneTLM | None:
    """Parse a raw advertising payload (length-type-value AD structures): the first beacon frame, or None."""
    n = len(packet)
    i = 0
    while i + 1 < n:
        length = packet[i]
        if length == 0:  # the spec's early end of significant data
            return None
        end = i + 1 + length
        if end > n:
            return None
        ad_type = packet[i + 1]
        if ad_type == _AD_MANUFACTURER:
            if packet.startswith(_APPLE_LE, i + 2, end):
                found = parse_ibeacon(packet[i + 4:end])
                if found is not None:
                    return found
        elif ad_type == _AD_SERVICE_DATA_16 and packet.startswith(_EDDYSTONE_LE, i + 2, end):
            found = parse_eddystone(packet[i + 4:end])
            if found is not None:
                return found
        i = end
    return None


# --- builders: the inverse of the parsers, for replayed data sets, tests and the benchmark ----------


def build_ibeacon(uuid: str, major: int, minor: int, measured_power: int) -> bytes:
    """Apple manufacturer data (without the company id) of an iBeacon."""
    return _IBEACON_PREFIX + _IBEACON.pack(bytes.fromhex(uuid.replace("-", "")), major, minor, measured_power)


def build_eddystone_uid(tx_power: int, namespace: str, instance: str) -> bytes:
    """Eddystone service data of a UID frame (namespace and instance in hex), with the two RFU bytes."""
    return bytes([_FRAME_UID]) + _UID.pack(tx_power, bytes.fromhex(namespace), bytes.fromhex(instance)) + b"\0\0"


def build_eddystone_tlm(battery_mv: int, temperature_c: float | None, adv_count: int, uptime_s: float) -> bytes:
    """Eddystone service data of an unencrypted TLM frame."""
    temperature = _TLM_NO_TEMPERATURE if temperature_c is None else round(temperature_c * 256)
    return bytes([_FRAME_TLM, _TLM_UNENCRYPTED]) + _TLM.pack(battery_mv, temperature, adv_count, round(uptime_s * 10))


def ad_structure(ad_type: int, value: bytes) -> bytes:
    """One length-type-value AD structure of a raw advertising payload."""
    return bytes([len(value) + 1, ad_type]) + value


def raw_advertisement(*, manufacturer_data: dict[int, bytes] | None = None,
                      service_data: dict[str, bytes] | None = None) -> bytes:
    """A raw advertising payload (flags, 16-bit service list, then the data) as a beacon sends it."""
    out = ad_structure(0x01, b"\x06")  # LE general discoverable, BR/EDR not supported
    uuids16 = [int(u[4:8], 16) for u in (service_data or {})]
    if uuids16:
        out += ad_structure(0x03, b"".join(u.to_bytes(2, "little") for u in uuids16))
    for uuid, value in (service_data or {}).items():
        out += ad_structure(_AD_SERVICE_DATA_16, int(uuid[4:8], 16).to_bytes(2, "little") + value)
    for company, value in (manufacturer_data or {}).items():
        out += ad_structure(_AD_MANUFACTURER, company.to_bytes(2, "little") + value)
    return out
