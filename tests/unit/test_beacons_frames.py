"""Frame parsers: iBeacon and Eddystone UID/URL/TLM on byte fixtures, the spec's examples, and garbage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beacons.frames import (
    EddystoneTLM,
    EddystoneUID,
    EddystoneURL,
    IBeacon,
    build_eddystone_tlm,
    build_eddystone_uid,
    build_ibeacon,
    parse_advertisement,
    parse_eddystone,
    parse_ibeacon,
    raw_advertisement,
)
from beacons.sighting import Sighting

MALL_UUID = "fda50693-a4e2-4fb1-afcf-c6eb07647825"
# Apple manufacturer data of an iBeacon, without the company id: 02 15, UUID, major, minor, power.
IBEACON_BYTES = bytes.fromhex("0215" "fda50693a4e24fb1afcfc6eb07647825" "0001" "0065" "c5")
ES = "0000feaa-0000-1000-8000-00805f9b34fb"


# --- iBeacon -------------------------------------------------------------------------------------


def test_ibeacon_fixture_parses_uuid_major_minor_and_power():
    assert parse_ibeacon(IBEACON_BYTES) == IBeacon(MALL_UUID, 1, 101, -59)


def test_ibeacon_measured_power_0xc5_is_minus_59_and_boundaries_hold():
    frame = bytes.fromhex("0215" "00112233445566778899AABBCCDDEEFF" "ffff" "0000" "c5")
    assert parse_ibeacon(frame) == IBeacon("00112233-4455-6677-8899-aabbccddeeff", 65535, 0, -59)
    assert parse_ibeacon(frame[:-1] + b"\x7f").measured_power == 127
    assert parse_ibeacon(frame[:-1] + b"\x80").measured_power == -128


def test_ibeacon_uuid_is_lowercase_canonical():
    frame = parse_ibeacon(bytes.fromhex("0215" "E2C56DB5DFFB48D2B060D0F5A71096E0" "0000" "0000" "c5"))
    assert frame is not None and frame.uuid == "e2c56db5-dffb-48d2-b060-d0f5a71096e0"


@pytest.mark.parametrize("data", [
    b"",
    IBEACON_BYTES[:-1],  # one byte short
    b"\x02\x14" + IBEACON_BYTES[2:],  # wrong length byte
    b"\x12\x15" + IBEACON_BYTES[2:],  # not the iBeacon type
    bytes.fromhex("1005031c1a2b3c"),  # Apple "nearby" data, not an iBeacon
])
def test_ibeacon_rejects_short_or_foreign_data(data):
    assert parse_ibeacon(data) is None


def test_ibeacon_builder_round_trips():
    assert build_ibeacon(MALL_UUID, 1, 101, -59) == IBEACON_BYTES


# --- Eddystone-UID ------------------------------------------------------------------------------


def test_uid_parses_tx_power_namespace_and_instance():
    data = bytes.fromhex("00" "ee" "00112233445566778899" "aabbccddeeff" "0000")
    assert parse_eddystone(data) == EddystoneUID(-18, "00112233445566778899", "aabbccddeeff")


def test_uid_without_the_rfu_bytes_still_parses():
    data = bytes.fromhex("00" "12" "00112233445566778899" "aabbccddeeff")
    assert parse_eddystone(data) == EddystoneUID(18, "00112233445566778899", "aabbccddeeff")


def test_uid_too_short_is_none():
    assert parse_eddystone(bytes.fromhex("00ee00112233445566778899aabbccddee")) is None


# --- Eddystone-URL ------------------------------------------------------------------------------


def test_url_expands_scheme_and_codes():
    # The spec's example URL, https://goo.gl/S6zT6P: scheme 0x03, then the text.
    assert parse_eddystone(bytes([0x10, 0x12, 0x03]) + b"goo.gl/S6zT6P") == \
        EddystoneURL(18, "https://goo.gl/S6zT6P")
    # 0x00 ".com/" in the middle, 0x07 ".com" at the end; tx power 0xEE = -18 dBm.
    assert parse_eddystone(bytes([0x10, 0xEE, 0x00]) + b"mall" + bytes([0x00]) + b"x" + bytes([0x07])) == \
        EddystoneURL(-18, "http://www.mall.com/x.com")
    assert parse_eddystone(bytes([0x10, 0x00, 0x02]) + b"a" + bytes(range(0x01, 0x0E))).url == (
        "http://a.org/.edu/.net/.info/.biz/.gov/.com.org.edu.net.info.biz.gov")


@pytest.mark.parametrize("data", [
    bytes([0x10, 0x00]),  # no scheme
    bytes([0x10, 0x00, 0x04]) + b"x",  # unknown scheme
    bytes([0x10, 0x00, 0x00]) + b"a b",  # 0x20 is reserved
    bytes([0x10, 0x00, 0x00]) + b"\x7f",  # 0x7F is reserved
    bytes([0x10, 0x00, 0x00]) + b"x" * 18,  # longer than 17 encoded bytes
])
def test_url_rejects_reserved_or_malformed(data):
    assert parse_eddystone(data) is None


# --- Eddystone-TLM ------------------------------------------------------------------------------


def test_tlm_parses_battery_temperature_count_and_uptime():
    data = bytes.fromhex("20" "00" "0bb8" "1780" "000004b0" "00008ca0")
    assert parse_eddystone(data) == EddystoneTLM(3000, 23.5, 1200, 3600.0)


def test_tlm_negative_temperature_is_signed_8_8():
    # 0xFEC0 = -320 / 256 = -1.25 degrees; 0xFF80 = -0.5
    assert parse_eddystone(bytes.fromhex("2000" "0bb8" "fec0" "00000001" "00000001")).temperature_c == -1.25
    assert parse_eddystone(bytes.fromhex("2000" "0bb8" "ff80" "00000001" "00000001")).temperature_c == -0.5


def test_tlm_0x8000_temperature_and_zero_battery_mean_unsupported():
    frame = parse_eddystone(bytes.fromhex("2000" "0000" "8000" "0000004d" "0000007d"))
    assert frame == EddystoneTLM(0, None, 77, 12.5)


def test_tlm_encrypted_or_short_is_none():
    assert parse_eddystone(bytes.fromhex("2001" "00112233445566778899aabb" "0102" "0304")) is None
    assert parse_eddystone(bytes.fromhex("2000" "0bb8" "1780" "000004b0" "00008c")) is None


def test_tlm_builder_round_trips():
    for args in [(3000, 23.5, 1200, 3600.0), (0, None, 0, 0.0), (65535, -128.0 + 1 / 256, 2**32 - 1, 429496729.5)]:
        assert parse_eddystone(build_eddystone_tlm(*args)) == EddystoneTLM(*args)


def test_unknown_frame_types_are_none():
    assert parse_eddystone(b"") is None
    assert parse_eddystone(bytes.fromhex("30ee0011223344556677")) is None  # EID: not parsed
    assert parse_eddystone(bytes.fromhex("40")) is None


# --- raw advertising payloads (the benchmark's input form) --------------------------------------


def test_raw_payloads_parse_like_the_bleak_forms():
    ib = build_ibeacon(MALL_UUID, 7, 8, -60)
    uid = build_eddystone_uid(-20, "00112233445566778899", "aabbccddeeff")
    tlm = build_eddystone_tlm(2900, -3.5, 10, 1.0)
    assert parse_advertisement(raw_advertisement(manufacturer_data={0x004C: ib})) == parse_ibeacon(ib)
    assert parse_advertisement(raw_advertisement(service_data={ES: uid})) == parse_eddystone(uid)
    assert parse_advertisement(raw_advertisement(service_data={ES: tlm})) == parse_eddystone(tlm)


def test_raw_payload_skips_other_structures_and_stops_at_bad_lengths():
    name = bytes([5, 0x09]) + b"mall"
    other = bytes([4, 0xFF, 0x06, 0x00, 0x01])  # Microsoft manufacturer data
    ib = build_ibeacon(MALL_UUID, 1, 2, -59)
    good = name + other + bytes([len(ib) + 3, 0xFF, 0x4C, 0x00]) + ib
    assert parse_advertisement(good) == IBeacon(MALL_UUID, 1, 2, -59)
    assert parse_advertisement(good[:-1]) is None  # the last structure overruns the packet
    assert parse_advertisement(b"\x00" + good) is None  # zero length ends the data
    # A manufacturer structure too short for a company id is skipped, not read past its end.
    assert parse_advertisement(bytes([2, 0xFF, 0x4C]) + good) == IBeacon(MALL_UUID, 1, 2, -59)


# --- garbage never raises -------------------------------------------------------------------------


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=64))
def test_parsers_never_raise_on_garbage(data):
    for parse in (parse_ibeacon, parse_eddystone, parse_advertisement):
        result = parse(data)
        assert result is None or isinstance(result, IBeacon | EddystoneUID | EddystoneURL | EddystoneTLM)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([b"\x02\x15", b"\x00", b"\x10", b"\x20\x00"]), st.binary(max_size=30))
def test_parsers_never_raise_on_plausible_prefixes(prefix, rest):
    # Random bytes rarely start like a frame; these do, and reach the field decoding.
    data = prefix + rest
    parse_ibeacon(data)
    parse_eddystone(data)
    parse_advertisement(bytes([len(data) + 3, 0xFF, 0x4C, 0x00]) + data)
    parse_advertisement(bytes([len(data) + 3, 0x16, 0xAA, 0xFE]) + data)


@given(st.uuids(), st.integers(0, 65535), st.integers(0, 65535), st.integers(-128, 127))
def test_ibeacon_round_trips_any_identity(uuid, major, minor, power):
    assert parse_ibeacon(build_ibeacon(str(uuid), major, minor, power)) == IBeacon(str(uuid), major, minor, power)


# --- the JSON shape of a sighting ----------------------------------------------------------------


def test_sighting_json_has_the_contract_fields_per_kind():
    base = {"t": 1700000000.123, "rssi": -60, "address": "C3:00:00:00:00:01"}
    ib = Sighting(1700000000.1234, "ibeacon", "C3:00:00:00:00:01", -60, uuid=MALL_UUID, major=1, minor=2,
                  measured_power=-59)
    assert ib.to_json() == {**base, "kind": "ibeacon", "uuid": MALL_UUID, "major": 1, "minor": 2,
                            "measured_power": -59}
    tlm = Sighting(1700000000.1234, "tlm", "C3:00:00:00:00:01", -60, battery_mv=0, temperature_c=None,
                   adv_count=5, uptime_s=1.5)
    assert tlm.to_json() == {**base, "kind": "tlm", "battery_mv": 0, "temperature_c": None, "adv_count": 5,
                             "uptime_s": 1.5}
    known = Sighting(1700000000.1234, "tlm", "C3:00:00:00:00:01", -60, uuid=MALL_UUID, major=1, minor=2,
                     battery_mv=3000, temperature_c=20.0, adv_count=5, uptime_s=1.5)
    assert known.to_json()["uuid"] == MALL_UUID and known.to_json()["minor"] == 2
    uid = Sighting(1700000000.1234, "eddystone_uid", "C3:00:00:00:00:01", -60, namespace="00" * 10,
                   instance="ff" * 6, tx_power=-20)
    assert uid.to_json() == {**base, "kind": "eddystone_uid", "namespace": "00" * 10, "instance": "ff" * 6,
                             "tx_power": -20}
