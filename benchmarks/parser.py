"""Beacon frame parsers: ``beacons.frames`` against beacontools, on the same raw advertising payloads.

    python -m benchmarks.parser [--frames 2000] [--seconds 2]

The frames are what a mall's beacons send, as raw advertising payloads (flags, then the
manufacturer or service data structure), the input beacontools' ``parse_packet`` takes; ours is
``parse_advertisement`` on the same bytes. The mix: 60 % iBeacon (50 beacons of one UUID), 25 %
Eddystone-TLM, 15 % Eddystone-UID, seeded. Both parsers must agree on every frame before anything
is timed (beacontools reads the TLM temperature as unsigned, so the mix keeps temperatures
positive). A third figure is ours on the input the gateway really parses: bleak's already split
manufacturer data and service data values. The goal: at least 5 times beacontools' frames per second.
Needs beacontools (``pip install -e '.[bench]'``); without it only our figures are printed.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from beacons.frames import (
    APPLE_COMPANY_ID,
    EDDYSTONE_SERVICE_UUID,
    EddystoneTLM,
    EddystoneUID,
    IBeacon,
    build_eddystone_tlm,
    build_eddystone_uid,
    build_ibeacon,
    parse_advertisement,
    parse_eddystone,
    parse_ibeacon,
    raw_advertisement,
)

RATIO_GOAL = 5.0
MALL_UUID = "fda50693-a4e2-4fb1-afcf-c6eb07647825"


@dataclass(frozen=True)
class Frame:
    raw: bytes  # the whole advertising payload
    manufacturer: bytes | None  # what bleak gives as manufacturer_data[0x004C]
    service: bytes | None  # what bleak gives as service_data[FEAA]


@dataclass(frozen=True)
class ParserResult:
    frames: int
    mix: dict[str, int]
    seconds: float
    ours_fps: float
    ours_bleak_form_fps: float
    beacontools_fps: float | None  # None: beacontools not installed
    beacontools_version: str | None

    @property
    def ratio(self) -> float | None:
        return self.ours_fps / self.beacontools_fps if self.beacontools_fps else None

    @property
    def goal_met(self) -> bool | None:
        return None if self.ratio is None else self.ratio >= RATIO_GOAL


def make_frames(count: int, seed: int = 1) -> tuple[list[Frame], dict[str, int]]:
    """``count`` frames of a realistic mix, reproducible from ``seed``."""
    rng = random.Random(seed)
    frames: list[Frame] = []
    mix = {"ibeacon": 0, "tlm": 0, "eddystone_uid": 0}
    for _ in range(count):
        roll = rng.random()
        if roll < 0.60:
            data = build_ibeacon(MALL_UUID, rng.randint(1, 3), rng.randint(1, 50), rng.randint(-75, -55))
            frames.append(Frame(raw_advertisement(manufacturer_data={APPLE_COMPANY_ID: data}), data, None))
            mix["ibeacon"] += 1
            continue
        if roll < 0.85:
            data = build_eddystone_tlm(rng.randint(2400, 3300), rng.randint(0, 40 * 256) / 256,
                                       rng.randint(0, 2**31), rng.randint(0, 2**31) / 10)
            mix["tlm"] += 1
        else:
            data = build_eddystone_uid(rng.randint(-30, -10), rng.randbytes(10).hex(), rng.randbytes(6).hex())
            mix["eddystone_uid"] += 1
        frames.append(Frame(raw_advertisement(service_data={EDDYSTONE_SERVICE_UUID: data}), None, data))
    return frames, mix


def _bleak_form(frame: Frame) -> Any:
    # What the listener's callback does with bleak's dicts, minus the dict lookups.
    return parse_ibeacon(frame.manufacturer) if frame.manufacturer is not None else parse_eddystone(frame.service)


def _agree(ours: Any, theirs: Any) -> bool:
    if isinstance(ours, IBeacon):
        return (ours.uuid, ours.major, ours.minor, ours.measured_power) == \
            (theirs.uuid, theirs.major, theirs.minor, theirs.tx_power)
    if isinstance(ours, EddystoneUID):
        return (ours.tx_power, ours.namespace, ours.instance) == (theirs.tx_power, theirs.namespace, theirs.instance)
    if isinstance(ours, EddystoneTLM):
        return (ours.battery_mv, ours.temperature_c, ours.adv_count, round(ours.uptime_s * 10)) == \
            (theirs.voltage, theirs.temperature, theirs.advertising_count, theirs.seconds_since_boot)
    return False


def check_agreement(frames: list[Frame], beacontools_parse: Callable[[bytes], Any] | None) -> list[str]:
    """Every frame parses, the same on both input forms and, when given, the same as beacontools."""
    problems = []
    for i, frame in enumerate(frames):
        ours = parse_advertisement(frame.raw)
        if ours is None or ours != _bleak_form(frame):
            problems.append(f"frame {i}: ours gives {ours!r} on the raw form, {_bleak_form(frame)!r} on bleak's")
        elif beacontools_parse is not None and not _agree(ours, beacontools_parse(frame.raw)):
            problems.append(f"frame {i}: ours {ours!r} != beacontools {beacontools_parse(frame.raw)}")
    return problems


def _rate(parse: Callable[[Any], Any], inputs: list[Any], seconds: float) -> float:
    """Frames per second of ``parse`` over ``inputs``, in whole passes, for about ``seconds``."""
    for item in inputs[:200]:  # warm up
        parse(item)
    done = 0
    gc.collect()  # start each parser with the same clean heap
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for item in inputs:
            parse(item)
        done += len(inputs)
        now = time.perf_counter()
        if now >= deadline:
            break
    return done / (now - start)


def _beacontools() -> tuple[Callable[[bytes], Any] | None, str | None]:
    try:
        from beacontools import parse_packet
    except ImportError:
        return None, None
    try:
        return parse_packet, version("beacontools")
    except PackageNotFoundError:
        return parse_packet, "?"


def run_parser_bench(frames: int = 2000, seconds: float = 2.0, seed: int = 1) -> ParserResult:
    """Time both parsers on the same ``frames`` raw payloads for ``seconds`` each; ValueError if they disagree."""
    mix_frames, mix = make_frames(frames, seed)
    theirs, theirs_version = _beacontools()
    problems = check_agreement(mix_frames, theirs)
    if problems:
        raise ValueError("the parsers disagree: " + "; ".join(problems[:3]))
    raws = [f.raw for f in mix_frames]
    ours_fps = _rate(parse_advertisement, raws, seconds)
    bleak_fps = _rate(_bleak_form, mix_frames, seconds)
    theirs_fps = _rate(theirs, raws, seconds) if theirs is not None else None
    return ParserResult(frames, mix, seconds, ours_fps, bleak_fps, theirs_fps, theirs_version)


def print_result(r: ParserResult) -> None:
    share = ", ".join(f"{100 * n / r.frames:.0f} % {kind}" for kind, n in r.mix.items())
    print(f"frame parsers: {r.frames} raw advertising payloads ({share}), {r.seconds:g} s each", flush=True)
    print(f"  {'beacons.frames.parse_advertisement':<40} {r.ours_fps:>12,.0f} frames/s")
    if r.beacontools_fps is None:
        print(f"  {'beacontools':<40} {'not installed':>12}  (pip install -e '.[bench]')")
    else:
        print(f"  {f'beacontools {r.beacontools_version} parse_packet':<40} {r.beacontools_fps:>12,.0f} frames/s")
        verdict = "met" if r.goal_met else "MISSED"
        print(f"  ratio {r.ratio:.1f}x (goal >= {RATIO_GOAL:g}x): {verdict}")
    print(f"  {'beacons on bleak form (mfr/service data)':<40} {r.ours_bleak_form_fps:>12,.0f} frames/s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.parser", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=2000, help="distinct frames in the mix")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds of timing per parser")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    if args.frames <= 0 or not 0 < args.seconds <= 60:
        p.error("--frames must be positive and --seconds within (0, 60]")
    try:
        result = run_parser_bench(args.frames, args.seconds, args.seed)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    print_result(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
