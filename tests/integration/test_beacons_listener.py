"""The listener through the real BleakScanner on the replay backend: sightings, filter, restarts, drops."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError
from factories import CAPTURES

from beacons.capture import Advert, CaptureError, CaptureWriter, read_capture
from beacons.datasets import DATASET_UUIDS, dataset_adverts
from beacons.frames import EDDYSTONE_SERVICE_UUID, build_eddystone_tlm, build_ibeacon
from beacons.listener import Listener
from beacons.replay import ReplayScanner, ReplaySource
from beacons.sighting import Sighting

MIXED = CAPTURES / "mall_mixed.jsonl"
MALL = "fda50693-a4e2-4fb1-afcf-c6eb07647825"
FOREIGN = "e2c56db5-dffb-48d2-b060-d0f5a71096e0"
A, B, C, U, L, F, G = (f"C3:11:22:33:44:0{i}" for i in range(1, 8))
NS, INST = "00112233445566778899", "aabbccddeeff"


def tlm(battery, temperature, count, uptime, identity=None):
    fields: dict[str, Any] = {"battery_mv": battery, "temperature_c": temperature, "adv_count": count,
                              "uptime_s": uptime}
    if identity:
        fields.update(uuid=identity[0], major=identity[1], minor=identity[2])
    return fields


# What mall_mixed.jsonl must come out as: (offset, kind, address, rssi, fields).
EXPECTED = [
    (0.000, "ibeacon", A, -61, {"uuid": MALL, "major": 1, "minor": 101, "measured_power": -59}),
    (0.100, "tlm", C, -80, tlm(3100, 21.0, 500, 100.0)),  # before C's iBeacon: no identity yet
    (0.150, "ibeacon", B, -70, {"uuid": MALL, "major": 1, "minor": 102, "measured_power": -62}),
    (0.300, "tlm", A, -62, tlm(3000, 23.5, 1200, 3600.0, (MALL, 1, 101))),
    (0.350, "eddystone_uid", U, -66, {"namespace": NS, "instance": INST, "tx_power": -20}),
    (0.400, "ibeacon", C, -79, {"uuid": MALL, "major": 1, "minor": 103, "measured_power": -59}),
    (0.450, "eddystone_url", L, -72, {"url": "https://www.example.com", "tx_power": -21}),
    (0.500, "tlm", B, -71, tlm(0, None, 77, 12.5, (MALL, 1, 102))),
    (0.550, "ibeacon", F, -68, {"uuid": FOREIGN, "major": 1, "minor": 7, "measured_power": -59}),
    (0.600, "tlm", F, -69, tlm(2900, 20.0, 10, 1.0, (FOREIGN, 1, 7))),
    (0.800, "tlm", C, -78, tlm(3100, 21.5, 510, 101.0, (MALL, 1, 103))),
    (1.000, "ibeacon", A, -60, {"uuid": MALL, "major": 1, "minor": 101, "measured_power": -59}),
    (1.100, "tlm", B, -72, tlm(0, -1.25, 78, 13.5, (MALL, 1, 102))),
    (1.150, "ibeacon", B, -69, {"uuid": MALL, "major": 1, "minor": 102, "measured_power": -62}),
    (1.500, "ibeacon", A, -63, {"uuid": MALL, "major": 1, "minor": 101, "measured_power": -59}),
    (1.600, "eddystone_uid", U, -67, {"namespace": NS, "instance": INST, "tx_power": -20}),
    (2.000, "ibeacon", G, -55, {"uuid": MALL, "major": 65535, "minor": 65535, "measured_power": -59}),
]
SIGHTING_FIELDS = ("uuid", "major", "minor", "measured_power", "battery_mv", "temperature_c", "adv_count",
                   "uptime_s", "namespace", "instance", "tx_power", "url")


def shape(s: Sighting) -> tuple[str, str, int, dict[str, Any]]:
    fields = {f: getattr(s, f) for f in SIGHTING_FIELDS if getattr(s, f) is not None}
    if s.kind == "tlm":
        fields.setdefault("temperature_c", None)
    return s.kind, s.address, s.rssi, fields


def drain(queue: asyncio.Queue[Sighting]) -> list[Sighting]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


async def listen(source: ReplaySource, *, until: Any = None, queue_size: int = 1000, **kwargs: Any
                 ) -> tuple[Listener, list[Sighting]]:
    """Run a listener on the replay backend until the replay ends (or ``until()`` holds), then stop it."""
    queue: asyncio.Queue[Sighting] = asyncio.Queue(maxsize=queue_size)
    kwargs.setdefault("backend", ReplayScanner)
    backend_kwargs = {"replay": source, **kwargs.pop("backend_kwargs", {})}
    listener = Listener(queue, backend_kwargs=backend_kwargs, clock=source.clock, backoff_initial=0.01,
                        backoff_max=0.05, **kwargs)
    task = asyncio.create_task(listener.run())
    deadline = time.monotonic() + 5
    while not (until() if until else source.finished.is_set()):
        assert time.monotonic() < deadline, "the replay did not finish"
        await asyncio.sleep(0.005)
    listener.stop()
    await asyncio.wait_for(task, 2)
    return listener, drain(queue)


# --- the replay backend through BleakScanner ----------------------------------------------------------


def test_capture_replays_through_bleakscanner_into_the_expected_sightings():
    source = ReplaySource.from_capture(MIXED, speed=0)
    listener, sightings = asyncio.run(listen(source))
    assert [shape(s) for s in sightings] == [(kind, addr, rssi, fields) for _, kind, addr, rssi, fields in EXPECTED]
    # Stamped on the capture's timeline, shifted to the start of the replay.
    start = sightings[0].t
    assert abs(start - time.time()) < 5
    assert [round(s.t - start, 3) for s in sightings] == [offset for offset, *_ in EXPECTED]
    c = listener.counters
    assert (c.heard, c.ignored, c.parsed, c.enqueued, c.filtered, c.dropped_queue_full, c.restarts) == \
        (20, 3, 17, 17, 0, 0, 0)


def test_uuid_filter_keeps_the_malls_ibeacons_and_their_telemetry():
    source = ReplaySource.from_capture(MIXED, speed=0)
    listener, sightings = asyncio.run(listen(source, uuids=[MALL.upper()]))
    kept = [(kind, addr, rssi, fields) for _, kind, addr, rssi, fields in EXPECTED
            if kind == "ibeacon" and fields["uuid"] == MALL or kind == "tlm" and fields.get("uuid") in (MALL, None)]
    assert [shape(s) for s in sightings] == kept
    # The foreign iBeacon, its TLM, two UID frames and the URL frame.
    assert listener.counters.filtered == 5
    assert listener.counters.enqueued == len(kept) == 12


def test_replay_keeps_the_recorded_pace_times_the_speed():
    source = ReplaySource.from_capture(MIXED, speed=20)  # 2.0 s of capture in 0.1 s
    started = time.monotonic()
    _, sightings = asyncio.run(listen(source))
    elapsed = time.monotonic() - started
    assert len(sightings) == 17
    assert 0.095 <= elapsed < 1.0


def test_looping_replay_starts_over_one_period_later():
    source = ReplaySource.from_capture(MIXED, speed=0, loop=True, loop_gap_s=1.0)
    _, sightings = asyncio.run(listen(source, until=lambda: source.delivered >= 40))
    assert len(sightings) >= 34
    first, second = sightings[0], sightings[17]
    assert shape(first) == shape(second)
    assert second.t - first.t == pytest.approx(3.0)  # 2.0 s of capture plus the 1.0 s gap


def test_dataset_replays_as_ibeacons_of_the_data_set_uuid(shared_data):
    adverts = dataset_adverts("uci435_ibeacon_wmu", data_dir=shared_data)
    source = ReplaySource(adverts[:200], speed=0, name="uci")
    _, sightings = asyncio.run(listen(source))
    assert len(sightings) == 200
    assert {s.uuid for s in sightings} == {DATASET_UUIDS["uci435_ibeacon_wmu"]}
    assert {s.minor for s in sightings} <= set(range(3001, 3014))
    assert [s.rssi for s in sightings] == [a.rssi for a in adverts[:200]]
    assert all(-110 < s.rssi < 0 and s.major == 1 and s.measured_power == -59 for s in sightings)


def test_uji_data_set_keeps_its_recorded_timing(shared_data):
    adverts = dataset_adverts("uji_library", data_dir=shared_data)
    assert len(adverts) == 25419  # every cell of lib_rss.csv that is not 100
    assert all(b.t >= a.t for a, b in zip(adverts, adverts[1:], strict=False))
    assert {a.manufacturer_data[0x004C][20:22] for a in adverts} == {bytes([0, m]) for m in range(23, 47)}
    # Within a fingerprint the offsets are the recorded detection times (lib_tms.csv, ns).
    assert adverts[1].t - adverts[0].t == pytest.approx((3814896944078 - 3814875128924) / 1e9)


# --- scanner failures ---------------------------------------------------------------------------------


class FlakyScanner(ReplayScanner):
    """A replay backend whose adapter fails to start the first ``plan["fail_starts"]`` times."""

    def __init__(self, *args: Any, plan: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan = plan

    async def start(self) -> None:
        self.plan["starts"].append(time.monotonic())
        if len(self.plan["starts"]) <= self.plan["fail_starts"]:
            raise BleakError("org.bluez.Error.NotReady: Resource Not Ready")
        await super().start()

    async def stop(self) -> None:
        if self.plan.get("fail_stop"):
            self.plan["fail_stop"] -= 1
            await super().stop()
            raise OSError("adapter gone")
        await super().stop()


def test_adapter_errors_restart_the_scanner_with_exponential_backoff():
    plan: dict[str, Any] = {"fail_starts": 2, "starts": []}
    source = ReplaySource.from_capture(MIXED, speed=0)
    listener, sightings = asyncio.run(listen(source, backend=FlakyScanner, backend_kwargs={"plan": plan}))
    assert listener.counters.restarts == 2
    starts = plan["starts"]
    assert len(starts) == 3
    assert starts[1] - starts[0] >= 0.01  # backoff_initial
    assert starts[2] - starts[1] >= 0.02  # doubled
    assert len(sightings) == 17  # nothing of the replay lost to the failed starts


def test_a_scanner_that_falls_silent_is_restarted_and_the_replay_continues():
    plan: dict[str, Any] = {"fail_starts": 0, "starts": [], "fail_stop": 1}
    adverts = read_capture(MIXED)
    # One advertisement, then three 0.25 s later (speed 1): the listener gives up on silence after 0.05 s.
    late = [Advert(t=0.25, address=a.address, rssi=a.rssi, manufacturer_data=a.manufacturer_data,
                   service_data=a.service_data, service_uuids=a.service_uuids) for a in adverts[-3:]]
    source = ReplaySource(adverts[:1] + late, speed=1)
    listener, sightings = asyncio.run(listen(source, backend=FlakyScanner, backend_kwargs={"plan": plan},
                                             silence_restart_s=0.05))
    assert listener.counters.restarts >= 1
    assert len(sightings) == 4


def test_start_that_hangs_times_out_and_restarts():
    class Hanging(ReplayScanner):
        hung = False

        async def start(self) -> None:
            if not Hanging.hung:
                Hanging.hung = True
                await asyncio.sleep(10)
            await super().start()

    source = ReplaySource.from_capture(MIXED, speed=0)
    listener, sightings = asyncio.run(listen(source, backend=Hanging, start_timeout=0.05))
    assert listener.counters.restarts == 1 and len(sightings) == 17


# --- the callback ------------------------------------------------------------------------------------


def test_full_queue_drops_and_counts():
    source = ReplaySource.from_capture(MIXED, speed=0)
    listener, sightings = asyncio.run(listen(source, queue_size=5))
    assert len(sightings) == 5
    assert listener.counters.enqueued == 5
    assert listener.counters.dropped_queue_full == 12


def advertisement(**kwargs: Any) -> AdvertisementData:
    fields: dict[str, Any] = {"local_name": None, "manufacturer_data": {}, "service_data": {}, "service_uuids": [],
                              "tx_power": None, "rssi": -70, "platform_data": ()}
    return AdvertisementData(**{**fields, **kwargs})


def test_cumulative_bluez_data_reports_the_ibeacon_each_time_and_a_tlm_only_when_new():
    queue: asyncio.Queue[Sighting] = asyncio.Queue()
    listener = Listener(queue, clock=lambda: 1000.0)
    device = BLEDevice("C3:00:00:00:00:09", None, None)
    ib = {0x004C: build_ibeacon(MALL, 5, 6, -59)}
    first = {EDDYSTONE_SERVICE_UUID: build_eddystone_tlm(3000, 20.0, 100, 10.0)}
    second = {EDDYSTONE_SERVICE_UUID: build_eddystone_tlm(3000, 20.0, 101, 10.1)}
    for service_data, rssi in [(first, -70), (first, -71), (second, -72)]:
        listener.on_advertisement(device, advertisement(manufacturer_data=ib, service_data=service_data, rssi=rssi))
    kinds = [(s.kind, s.rssi, s.adv_count) for s in drain(queue)]
    assert kinds == [("ibeacon", -70, None), ("tlm", -70, 100), ("ibeacon", -71, None), ("ibeacon", -72, None),
                     ("tlm", -72, 101)]
    assert listener.counters.tlm_repeats == 1


def test_callback_never_raises():
    listener = Listener(asyncio.Queue(), clock=lambda: 1.0)
    listener.on_advertisement(BLEDevice("x", None, None), None)  # type: ignore[arg-type]
    assert listener.counters.callback_errors == 1


def test_bleakscanner_passes_the_replay_source_to_the_backend():
    source = ReplaySource([], speed=0)
    scanner = BleakScanner(lambda d, a: None, backend=ReplayScanner, replay=source)
    assert scanner.backend_id == "ReplayScanner"
    assert scanner._backend.source is source
    with pytest.raises(TypeError, match="replay="):
        BleakScanner(lambda d, a: None, backend=ReplayScanner)


def test_capture_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": 0, "address": "a", "rssi": -1}\n{"t": 1, "address": "b"}\n')
    with pytest.raises(CaptureError, match=r"bad.jsonl:2: missing 'rssi'"):
        read_capture(bad)


def test_a_recorded_capture_replays_to_the_same_advertisements(tmp_path):
    original = read_capture(MIXED)
    out = tmp_path / "recorded.jsonl"

    async def record() -> int:
        source = ReplaySource(original, speed=0)
        with out.open("w") as fh:
            writer = CaptureWriter(fh, clock=source.clock)
            async with BleakScanner(writer.on_advertisement, backend=ReplayScanner, replay=source):
                await asyncio.wait_for(source.finished.wait(), 5)
        return writer.written

    assert asyncio.run(record()) == len(original)
    again = read_capture(out)
    assert [(round(a.t, 6), a.address, a.rssi, a.name, a.manufacturer_data, a.service_data, a.service_uuids)
            for a in again] == \
        [(a.t, a.address, a.rssi, a.name, a.manufacturer_data, a.service_data, a.service_uuids) for a in original]


def test_data_sets_are_found_through_mall_shared_data_and_take_another_uuid(shared_data, monkeypatch):
    monkeypatch.setenv("MALL_SHARED_DATA", str(shared_data))
    source = ReplaySource.from_dataset("uci435_ibeacon_wmu", uuid=MALL, speed=0)
    assert len(source.adverts) == 2043  # every cell of the labelled file that is not -200
    assert {a.manufacturer_data[0x004C][2:18] for a in source.adverts} == {bytes.fromhex(MALL.replace("-", ""))}
    monkeypatch.setenv("MALL_SHARED_DATA", "/nonexistent")
    with pytest.raises(FileNotFoundError, match="MALL_SHARED_DATA"):
        ReplaySource.from_dataset("uji_library")
