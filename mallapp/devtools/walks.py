"""Demo beacon traffic: shoppers walk through the demo mall and its gateways hear them.

``python -m mallapp.devtools.walks --backend-url URL`` runs one ``beacons`` gateway per demo
gateway, each on bleak's replay backend, fed with what it would hear in a cycle of a few minutes:
the shoppers' phones advertising their rotating identity (fresh each cycle, from
``mallapp.domain.proximity.identity``), the mall's beacons' iBeacon frames, and their Eddystone-TLM
telemetry (one beacon's battery is low, so fleet health has a problem to show). Signal strength
follows the log-distance model with Gaussian noise. ``mallapp demo`` starts this next to the web
server and the proximity worker, so members appear, check in, dwell and leave.

Tests drive the same traffic on their own clock with :class:`SteppedGateways`: each step plays a
stretch of what the gateways heard through the beacons listener (bleak's replay backend) and
forwarder (batched, signed, POSTed), stamped with the walk's own times, so a dwell of half a
minute takes milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import random
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beacons import Forwarder, Gateway, GatewayConfig, Listener, ReplayScanner, ReplaySource, Sighting, Spool
from beacons.capture import Advert
from beacons.forwarder import Transport
from beacons.frames import build_eddystone_tlm, build_ibeacon
from mallapp import logs
from mallapp.devtools.demo import DemoBeacon, DemoGateway, DemoMall, seed_venue
from mallapp.domain.proximity import identity
from mallapp.runtime import build_runtime
from mallapp.settings import DEMO_SETTINGS_FILE, load_settings

log = logging.getLogger("mallapp.walks")

APPLE = 0x004C
EDDYSTONE = "0000feaa-0000-1000-8000-00805f9b34fb"
PHONE_POWER = -59  # what the mini-program advertises as its 1 m power
HEARING_M = 25.0
WALK_SPEED = 1.2  # m/s
LOW_BATTERY_MINOR = 9

# Who walks where: (zone key, seconds there), starting at an entrance and leaving through one.
ITINERARIES = (
    (("north-entrance", 8), ("atrium", 10), ("coffee", 35), ("winter-blend", 15), ("north-entrance", 5)),
    (("south-entrance", 8), ("sports", 30), ("trail-runners", 15), ("south-entrance", 5)),
    (("north-entrance", 8), ("coffee", 25), ("north-entrance", 5)),
    (("north-entrance", 6), ("atrium", 20), ("books", 30), ("north-entrance", 5)),
)


@dataclass(frozen=True)
class Step:
    t: float
    floor: int
    x: float
    y: float


def path(mall: DemoMall, itinerary: tuple[tuple[str, int], ...], start: float, rng: random.Random) -> Iterator[Step]:
    """One position a second: stay at each stop (with a little fidgeting), walk between them."""
    t = start
    previous = None
    for key, stay in itinerary:
        floor, x, y = mall.zones[key]
        if previous is not None:
            _, px, py = previous
            steps = max(1, int(math.dist((px, py), (x, y)) / WALK_SPEED))
            for i in range(1, steps):
                yield Step(t, floor, px + (x - px) * i / steps, py + (y - py) * i / steps)
                t += 1.0
        for _ in range(stay):
            yield Step(t, floor, x + rng.uniform(-0.5, 0.5), y + rng.uniform(-0.5, 0.5))
            t += 1.0
        previous = (floor, x, y)


def rssi_at(distance: float, power: int, rng: random.Random) -> int:
    # Indoors, with people and shelves about: path-loss exponent 3 (the library data's fit is 3.09).
    return max(-100, min(-30, round(power - 30 * math.log10(max(distance, 0.5)) + rng.gauss(0, 2.5))))


def cycle(mall: DemoMall, identities: list[tuple[int, int]], uuid: str, rng: random.Random,
          cycle_s: float, itineraries: Sequence[tuple[tuple[str, int], ...]] = ITINERARIES,
          start: float = 0.0) -> dict[int, list[Advert]]:
    """What each gateway hears in one cycle from ``start``, by gateway id, in time order.

    The n-th identity walks the n-th itinerary, setting off 10 s after the one before.
    """
    heard: dict[int, list[Advert]] = {g.id: [] for g in mall.gateways}
    for n, ((major, minor), itinerary) in enumerate(zip(identities, itineraries, strict=False)):
        frame = {APPLE: build_ibeacon(uuid, major, minor, PHONE_POWER)}
        address = f"5E:00:00:00:{n:02X}:{rng.randrange(256):02X}"  # phones rotate their address too
        for step in path(mall, itinerary, start=start + 10.0 * n, rng=rng):
            for g in mall.gateways:
                d = math.dist((g.x, g.y), (step.x, step.y))
                if g.floor == step.floor and d <= HEARING_M:
                    heard[g.id].append(Advert(step.t + rng.uniform(0, 0.9), address, rssi_at(d, PHONE_POWER, rng),
                                              manufacturer_data=frame))
    for b in mall.beacons:
        _beacon_traffic(b, mall.gateways, heard, rng, cycle_s, start)
    return {g: sorted(adverts, key=lambda a: a.t) for g, adverts in heard.items()}


def _beacon_traffic(b: DemoBeacon, gateways: list[DemoGateway], heard: dict[int, list[Advert]],
                    rng: random.Random, cycle_s: float, start: float = 0.0) -> None:
    address = f"C0:FF:EE:00:{b.major:02X}:{b.minor:02X}"
    ibeacon = {APPLE: build_ibeacon(b.uuid, b.major, b.minor, b.measured_power)}
    battery = 2300 if b.minor == LOW_BATTERY_MINOR else 2950 - 10 * b.minor
    for g in gateways:
        d = math.dist((g.x, g.y), (b.x, b.y))
        if g.floor != b.floor or d > HEARING_M:
            continue
        t = rng.uniform(0, 1)
        while t < cycle_s:
            heard[g.id].append(Advert(start + t, address, rssi_at(d, b.measured_power, rng),
                                      manufacturer_data=ibeacon))
            t += 2.0
        for t in range(5, int(cycle_s), 30):
            tlm = build_eddystone_tlm(battery, 21.5 + b.minor / 10, 100_000 + t * 10, 86_400.0 + t)
            heard[g.id].append(Advert(start + t, address, rssi_at(d, b.measured_power, rng),
                                      service_data={EDDYSTONE: tlm}))


class SteppedGateways:
    """The demo gateways on the caller's clock: :meth:`play_until` sends what each heard before a time.

    ``heard`` is :func:`cycle`'s answer with ``start`` on the caller's clock (unix seconds). Each
    call runs, per gateway with something to send, the ``beacons`` Listener on bleak's replay
    backend over that stretch of advertisements (as fast as possible) and a Forwarder that
    batches, signs and POSTs them (``transport`` as in :class:`beacons.GatewayConfig`). A sighting
    is stamped with its advertisement's own time and a batch is signed at ``clock()``: a test that
    moves its clock a step, plays until then and runs the worker sees the walk at its own pace.
    (``beacons.Gateway`` stamps and signs with the wall clock, so a dwell would take as long as it
    does in a mall.)
    """

    def __init__(self, mall: DemoMall, heard: dict[int, list[Advert]], *, backend_url: str, uuids: Sequence[str],
                 spool_root: Path, clock: Callable[[], float], transport: Transport | None = None) -> None:
        self.backend_url = backend_url
        self.uuids = tuple(uuids)
        self.clock = clock
        self.transport = transport
        self._gateways = [g for g in mall.gateways if heard.get(g.id)]
        self._heard = heard
        self._next = {g.id: 0 for g in self._gateways}
        self._spools = {g.id: Spool(spool_root / str(g.id)) for g in self._gateways}
        self.totals: dict[str, int] = {}  # the forwarders' counters, summed
        self._runner = asyncio.Runner()

    def remaining(self) -> int:
        """Advertisements not played yet."""
        return sum(len(self._heard[g]) - n for g, n in self._next.items())

    def play_until(self, t: float) -> int:
        """Play, send and return the sightings heard before ``t`` (unix seconds) not played yet."""
        stretches = []
        for g in self._gateways:
            adverts = self._heard[g.id]
            first = last = self._next[g.id]
            while last < len(adverts) and adverts[last].t < t:
                last += 1
            if last > first:
                self._next[g.id] = last
                stretches.append((g, adverts[first:last]))
        if not stretches:
            return 0
        results = self._runner.run(self._play_all(stretches))
        for stats in results:
            for name, value in stats.items():
                self.totals[name] = self.totals.get(name, 0) + value
        return sum(len(adverts) for _, adverts in stretches)

    async def _play_all(self, stretches: list[tuple[DemoGateway, list[Advert]]]) -> list[dict[str, int]]:
        return list(await asyncio.gather(*(self._play(g, adverts) for g, adverts in stretches)))

    async def _play(self, gateway: DemoGateway, adverts: list[Advert]) -> dict[str, int]:
        source = ReplaySource(adverts, speed=0, name=gateway.name)
        queue: asyncio.Queue[Sighting] = asyncio.Queue()

        def heard_at() -> float:  # the listener's clock: the time of the advertisement being delivered
            return source.adverts[source.delivered - 1].t

        listener = Listener(queue, uuids=self.uuids, backend=ReplayScanner, backend_kwargs={"replay": source},
                            clock=heard_at)
        # A stretch goes in one batch: it is sealed when the forwarder stops, not by the interval.
        forwarder = Forwarder(queue, backend_url=self.backend_url, key=gateway.key, spool=self._spools[gateway.id],
                              batch_size=1000, batch_interval=60.0, transport=self.transport, clock=self.clock)
        listening = asyncio.create_task(listener.run(), name=f"listener {gateway.name}")
        forwarding = asyncio.create_task(forwarder.run(), name=f"forwarder {gateway.name}")
        await source.finished.wait()
        listener.stop()
        await listening
        forwarder.stop()
        await forwarding
        return forwarder.stats()

    def close(self) -> None:
        self._runner.close()
        for spool in self._spools.values():
            spool.close()

    def __enter__(self) -> SteppedGateways:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def run(backend_url: str, cycles: int | None = None, gap_s: float = 40.0, seed: int | None = None,
        stop: threading.Event | None = None) -> None:
    """Play cycles of demo traffic through one gateway per demo gateway until stopped."""
    stop = stop or threading.Event()
    rt = build_runtime()
    rng = random.Random(seed)
    settings = rt.settings
    spool_root = Path(tempfile.mkdtemp(prefix="demo-gateways-", dir=settings.var_path))
    try:
        mall = seed_venue(rt)
        n = 0
        while not stop.is_set() and (cycles is None or n < cycles):
            n += 1
            now = rt.now()
            idents = []
            for member_id in mall.shoppers:
                ident = identity.issue(rt.redis, settings, member_id, now)
                idents.append((ident.major, ident.minor))
            cycle_s = max(sum(s for _, s in it) for it in ITINERARIES) + 60.0
            heard = cycle(mall, idents, settings.beacons.identity_uuid, rng, cycle_s)
            gateways = []
            for g in mall.gateways:
                if not heard[g.id]:
                    continue
                config = GatewayConfig(backend_url=backend_url, key=g.key, spool_dir=spool_root / str(g.id),
                                       uuids=(*settings.beacons.uuids, settings.beacons.identity_uuid),
                                       replay=ReplaySource(heard[g.id], speed=1.0, name=g.name),
                                       stats_interval=None)
                gateway = Gateway(config)
                gateway.start_in_thread()
                gateways.append(gateway)
            log.info("demo cycle %s: %s shoppers walking past %s gateways", n, len(idents), len(gateways))
            for gateway in gateways:
                while not stop.is_set():
                    try:
                        stats = gateway.join(timeout=0.5)
                    except TimeoutError:
                        continue
                    log.info("demo gateway done", extra={"stats": stats})
                    break
            if stop.is_set():
                for gateway in gateways:
                    with contextlib.suppress(Exception):
                        gateway.stop_and_join()
                break
            stop.wait(gap_s)  # everybody has left; the mall is quiet for a moment
    finally:
        rt.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mallapp.devtools.walks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend-url", required=True)
    parser.add_argument("--cycles", type=int, help="stop after this many cycles (default: run until stopped)")
    parser.add_argument("--gap", type=float, default=40.0, help="quiet seconds between cycles")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    settings = load_settings(overlay=DEMO_SETTINGS_FILE)
    logs.configure(settings.log_format, settings.log_level)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run(args.backend_url, args.cycles, args.gap, args.seed, stop)


if __name__ == "__main__":
    main()
