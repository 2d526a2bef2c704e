"""The listener: a bleak scanner whose callback parses beacon frames into a bounded queue of Sightings.

The detection callback only parses and enqueues (``put_nowait``; a full queue drops and counts).
:meth:`Listener.run` keeps a scanner running: when ``start``/``stop`` fail (BleakError, OSError,
a D-Bus error, a timeout) or, optionally, when the scanner falls silent, it builds a new scanner
after an exponential backoff, and counts the restart.

Multi-frame beacons interleave iBeacon and Eddystone-TLM frames on one address; the listener
remembers the last iBeacon identity of each address so that a TLM sighting names its beacon.
BlueZ reports an address's advertisement data cumulatively (the last manufacturer data and the
last service data together), so one callback may carry both frames: the iBeacon is reported with
every callback (its RSSI is fresh), a TLM frame only when its bytes changed since the last one of
that address (a live TLM frame always changes: it carries the PDU count and the uptime).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner

from beacons.frames import (
    APPLE_COMPANY_ID,
    EDDYSTONE_SERVICE_UUID,
    EddystoneTLM,
    EddystoneUID,
    EddystoneURL,
    parse_eddystone,
    parse_ibeacon,
)
from beacons.sighting import Sighting

__all__ = ["Listener", "ListenerCounters", "canonical_uuid"]

log = logging.getLogger(__name__)

# Addresses remembered for the iBeacon identity and the last TLM frame; phones with rotating
# random addresses must not grow these without bound.
_MAX_ADDRESSES = 4096
_DROP_LOG_EVERY_S = 10.0


def canonical_uuid(text: str) -> str:
    """``text`` as a lowercase UUID with dashes; ValueError when it is not 32 hex digits."""
    h = text.strip().replace("-", "").lower()
    if len(h) != 32 or any(c not in "0123456789abcdef" for c in h):
        raise ValueError(f"not a UUID: {text!r}")
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class ListenerCounters:
    """What the listener did since it started.

    ``heard`` advertisements arrived; of those, ``ignored`` carried no beacon frame we parse. Each
    recognised frame counts in ``parsed``, and then in exactly one of ``filtered`` (outside the
    UUID filter), ``tlm_repeats`` (a TLM frame unchanged since the last), ``enqueued`` or
    ``dropped_queue_full``.
    """

    heard: int = 0
    parsed: int = 0
    ignored: int = 0
    filtered: int = 0
    tlm_repeats: int = 0
    enqueued: int = 0
    dropped_queue_full: int = 0
    restarts: int = 0
    callback_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Listener:
    """Scan with bleak and turn beacon frames into Sightings on ``queue``.

    ``backend`` and ``backend_kwargs`` go to ``BleakScanner`` (None: the platform's backend; the
    replay backend: ``backend=ReplayScanner, backend_kwargs={"replay": source}``). ``uuids``
    keeps only those iBeacon UUIDs (plus TLM frames, except those of an address whose iBeacon is
    outside the filter); Eddystone UID and URL frames pass only when there is no filter.
    ``silence_restart_s`` restarts a scanner that heard nothing for that long (None: never).
    ``clock`` stamps sightings (unix seconds). Call :meth:`run` and :meth:`stop` on one event loop.
    """

    def __init__(
        self,
        queue: asyncio.Queue[Sighting],
        *,
        uuids: Iterable[str] | None = None,
        adapter: str | None = None,
        backend: type[BaseBleakScanner] | None = None,
        backend_kwargs: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        start_timeout: float = 20.0,
        silence_restart_s: float | None = None,
    ) -> None:
        self.queue = queue
        self.counters = ListenerCounters()
        self._uuids = frozenset(canonical_uuid(u) for u in uuids) if uuids else None
        self._adapter = adapter
        self._backend = backend
        self._backend_kwargs = dict(backend_kwargs or {})
        self._clock = clock
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._start_timeout = start_timeout
        self._silence = silence_restart_s
        self._identity: dict[str, tuple[str, int, int]] = {}
        self._last_tlm: dict[str, bytes] = {}
        self._stopping = asyncio.Event()
        self._last_drop_log = float("-inf")
        self.scanning = False

    # --- the detection callback: parse and enqueue, nothing else ---------------------------------

    def on_advertisement(self, device: BLEDevice, adv: AdvertisementData) -> None:
        """Bleak's detection callback: parse the beacon frames of one advertisement and enqueue them."""
        c = self.counters
        c.heard += 1
        try:
            found = False
            t = self._clock()
            address = device.address
            mfr = adv.manufacturer_data.get(APPLE_COMPANY_ID) if adv.manufacturer_data else None
            if mfr is not None:
                ib = parse_ibeacon(mfr)
                if ib is not None:
                    found = True
                    c.parsed += 1
                    identity = (ib.uuid, ib.major, ib.minor)
                    if self._identity.get(address) != identity:
                        self._remember(self._identity, address, identity)
                    if self._uuids is not None and ib.uuid not in self._uuids:
                        c.filtered += 1
                    else:
                        self._put(Sighting(t, "ibeacon", address, adv.rssi, uuid=ib.uuid, major=ib.major,
                                           minor=ib.minor, measured_power=ib.measured_power))
            data = adv.service_data.get(EDDYSTONE_SERVICE_UUID) if adv.service_data else None
            if data is not None:
                frame = parse_eddystone(data)
                if frame is not None:
                    found = True
                    c.parsed += 1
                    self._on_eddystone(t, address, adv.rssi, frame, data)
            if not found:
                c.ignored += 1
        except Exception:  # a callback that raises would break the backend's dispatch loop
            c.callback_errors += 1
            if c.callback_errors == 1:
                log.exception("beacon callback failed on %s", getattr(device, "address", device))

    def _on_eddystone(self, t: float, address: str, rssi: int,
                      frame: EddystoneTLM | EddystoneUID | EddystoneURL, data: bytes) -> None:
        c = self.counters
        if isinstance(frame, EddystoneTLM):
            if self._last_tlm.get(address) == data:
                c.tlm_repeats += 1
                return
            self._remember(self._last_tlm, address, data)
            identity = self._identity.get(address)
            if identity is None:
                self._put(Sighting(t, "tlm", address, rssi, battery_mv=frame.battery_mv,
                                   temperature_c=frame.temperature_c, adv_count=frame.adv_count,
                                   uptime_s=frame.uptime_s))
            elif self._uuids is not None and identity[0] not in self._uuids:
                c.filtered += 1
            else:
                self._put(Sighting(t, "tlm", address, rssi, uuid=identity[0], major=identity[1],
                                   minor=identity[2], battery_mv=frame.battery_mv,
                                   temperature_c=frame.temperature_c, adv_count=frame.adv_count,
                                   uptime_s=frame.uptime_s))
        elif self._uuids is not None:
            c.filtered += 1
        elif isinstance(frame, EddystoneUID):
            self._put(Sighting(t, "eddystone_uid", address, rssi, namespace=frame.namespace,
                               instance=frame.instance, tx_power=frame.tx_power))
        else:
            self._put(Sighting(t, "eddystone_url", address, rssi, url=frame.url, tx_power=frame.tx_power))

    @staticmethod
    def _remember(table: dict[str, Any], address: str, value: Any) -> None:
        # Re-insert so that the dict's order is least recently changed first; evict from the front.
        table.pop(address, None)
        if len(table) >= _MAX_ADDRESSES:
            del table[next(iter(table))]
        table[address] = value

    def _put(self, sighting: Sighting) -> None:
        try:
            self.queue.put_nowait(sighting)
            self.counters.enqueued += 1
        except asyncio.QueueFull:
            self.counters.dropped_queue_full += 1
            now = time.monotonic()
            if now - self._last_drop_log >= _DROP_LOG_EVERY_S:
                self._last_drop_log = now
                log.warning("sighting queue full: dropping sightings (%d so far)", self.counters.dropped_queue_full)

    # --- the scanning loop -----------------------------------------------------------------------

    def _make_scanner(self) -> BleakScanner:
        return BleakScanner(
            detection_callback=self.on_advertisement,
            bluez={"adapter": self._adapter} if self._adapter else {},
            backend=self._backend,
            **self._backend_kwargs,
        )

    async def run(self) -> None:
        """Scan until :meth:`stop` (or cancellation), restarting the scanner after errors with backoff."""
        backoff = self._backoff_initial
        first = True
        while not self._stopping.is_set():
            if not first:
                self.counters.restarts += 1
            first = False
            heard_before = self.counters.heard
            scanner: BleakScanner | None = None
            try:
                scanner = self._make_scanner()
                await asyncio.wait_for(scanner.start(), self._start_timeout)
                self.scanning = True
                log.info("scanning (adapter %s, backend %s)", self._adapter or "default", scanner.backend_id)
                await self._watch()
            except Exception as exc:  # adapter gone, D-Bus hiccup, timeout: scan again after a pause
                log.warning("scanner failed: %s: %s; restarting in %.2f s", type(exc).__name__, exc, backoff)
            finally:
                self.scanning = False
                if scanner is not None:
                    await self._stop_scanner(scanner)
            if self._stopping.is_set():
                break
            if self.counters.heard > heard_before:
                backoff = self._backoff_initial  # it worked for a while: start the backoff over
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            backoff = min(backoff * 2, self._backoff_max)
        log.info("listener stopped: %s", self.counters.as_dict())

    async def _watch(self) -> None:
        """Return when stopping; raise when the scanner heard nothing for ``silence_restart_s``."""
        if self._silence is None:
            await self._stopping.wait()
            return
        while True:
            heard = self.counters.heard
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._silence)
                return
            if self.counters.heard == heard:
                raise TimeoutError(f"nothing heard for {self._silence:g} s")

    async def _stop_scanner(self, scanner: BleakScanner) -> None:
        try:
            await asyncio.wait_for(scanner.stop(), self._start_timeout)
        except Exception as exc:
            log.warning("scanner stop failed: %s: %s", type(exc).__name__, exc)

    def stop(self) -> None:
        """Ask :meth:`run` to stop the scanner and return (call on the listener's event loop)."""
        self._stopping.set()
