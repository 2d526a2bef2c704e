"""A bleak backend that replays recorded advertisements: ``BleakScanner(cb, backend=ReplayScanner, replay=source)``.

``BleakScanner`` passes its extra keyword arguments to the backend's constructor, so the
:class:`ReplaySource` travels as ``replay=``. Advertisements go through the base class's own
``create_or_update_device`` and ``call_detection_callbacks``, the path every bleak backend takes.

A source plays its advertisements at their recorded pace times ``speed`` (0: as fast as
possible), optionally looping. Its position survives a scanner restart: a new scanner on the same
source continues where the last one stopped, and delivers at once what fell due meanwhile (the
timeline stays anchored at the first start, so a replay is never slowed down by restarts).
:meth:`ReplaySource.clock` is the capture's own timeline shifted to the start of the replay (the
``t`` of the last advertisement delivered plus the wall time the replay started at); give it to the
listener as its clock to stamp sightings with the recorded timing regardless of ``speed``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.exc import BleakError

from beacons.capture import Advert, read_capture

__all__ = ["ReplayScanner", "ReplaySource"]

# Yield to the event loop at least this often when replaying as fast as possible.
_BURST = 64


class ReplaySource:
    """Advertisements to replay, with their pace; shared by the scanners that play it in turn."""

    def __init__(self, adverts: Sequence[Advert], *, speed: float = 1.0, loop: bool = False,
                 loop_gap_s: float = 1.0, name: str = "replay") -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        if loop and not adverts:
            raise ValueError("cannot loop over an empty replay")
        self.name = name
        self.speed = speed
        self.loop = loop
        self.adverts = list(adverts)
        self.delivered = 0
        t0 = self.adverts[0].t if self.adverts else 0.0
        self._offsets = [a.t - t0 for a in self.adverts]
        # One pass lasts from the first advertisement to the last, plus a gap before the next pass.
        self._period = (self._offsets[-1] + loop_gap_s) if self.adverts else 0.0
        self._index = 0
        self._pass = 0
        self._position = 0.0  # replay seconds of the last advertisement delivered
        self._epoch: float | None = None
        self._origin: float | None = None  # event-loop time of the first start
        self.finished = asyncio.Event()
        if not self.adverts:
            self.finished.set()

    @classmethod
    def from_capture(cls, path: str | Path, **kwargs: Any) -> ReplaySource:
        """Replay a JSONL capture (see beacons/README.md); raises CaptureError on a bad line."""
        kwargs.setdefault("name", Path(path).name)
        return cls(read_capture(path), **kwargs)

    @classmethod
    def from_dataset(cls, dataset: str, *, data_dir: str | Path | None = None, uuid: str | None = None,
                     **kwargs: Any) -> ReplaySource:
        """Replay one of the RSSI data sets of /work/shared/data/ble as iBeacon advertisements."""
        from beacons.datasets import dataset_adverts

        kwargs.setdefault("name", dataset)
        return cls(dataset_adverts(dataset, data_dir=data_dir, uuid=uuid), **kwargs)

    def clock(self) -> float:
        """Unix seconds on the replay's timeline: start of the replay plus the last advertisement's offset."""
        if self._epoch is None:
            return time.time()
        return self._epoch + self._position

    async def play(self, deliver: Callable[[Advert], None]) -> None:
        """Deliver advertisements from the current position until the end (never, when looping)."""
        if self._epoch is None:
            self._epoch = time.time()
        n = len(self.adverts)
        loop = asyncio.get_running_loop()
        if self._origin is None:
            self._origin = loop.time()
        # The timeline is anchored at the first start: after a restart, what fell due meanwhile comes at once.
        origin = self._origin
        burst = 0
        while self._index < n:
            position = self._pass * self._period + self._offsets[self._index]
            if self.speed:
                delay = origin + position / self.speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                    burst = 0
            if burst >= _BURST:
                await asyncio.sleep(0)
                burst = 0
            advert = self.adverts[self._index]
            self._position = position
            self._index += 1
            if self._index == n and self.loop:
                self._index = 0
                self._pass += 1
            self.delivered += 1
            burst += 1
            deliver(advert)
        self.finished.set()


class ReplayScanner(BaseBleakScanner):
    """A bleak scanner backend that plays a :class:`ReplaySource` instead of listening to a radio."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        *,
        replay: ReplaySource | None = None,
        **kwargs: Any,  # bluez=, cb= and whatever else BleakScanner passes to every backend
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        if replay is None:
            raise TypeError("ReplayScanner needs replay=ReplaySource(...)")
        self.source = replay
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is not None:
            raise BleakError("already scanning")
        self.seen_devices = {}
        self._task = asyncio.create_task(self.source.play(self._deliver), name=f"replay {self.source.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():  # it is we who are being cancelled, not the replay
                raise

    def _deliver(self, advert: Advert) -> None:
        if not self.is_allowed_uuid(advert.service_uuids):
            return
        data = AdvertisementData(
            local_name=advert.name,
            manufacturer_data=advert.manufacturer_data,
            service_data=advert.service_data,
            service_uuids=advert.service_uuids,
            tx_power=advert.tx_power,
            rssi=advert.rssi,
            platform_data=(advert,),
        )
        device = self.create_or_update_device(advert.address, advert.address, advert.name,
                                              {"replay": self.source.name}, data)
        self.call_detection_callbacks(device, data)
