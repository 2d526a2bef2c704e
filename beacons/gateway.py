"""The gateway: a listener and a forwarder around one queue, started in-process or by ``python -m beacons``.

    gw = Gateway(GatewayConfig(backend_url="http://127.0.0.1:8000", key="gk_1.1.secret",
                               spool_dir="var/gateway-spool",
                               replay=ReplaySource.from_dataset("uji_library", speed=10, loop=True)))
    gw.start_in_thread()      # or: await gw.run() on your own event loop
    ...
    stats = gw.stop_and_join()

With a replay that does not loop, the gateway stops by itself once the replay has played and
everything has been sent or spooled. Sightings are stamped with the wall clock, replay or not (the
backend refuses sightings from the future).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bleak.backends.scanner import BaseBleakScanner

from beacons.forwarder import Forwarder, Transport, parse_key
from beacons.listener import Listener
from beacons.replay import ReplayScanner, ReplaySource
from beacons.sighting import Sighting
from beacons.spool import Spool

__all__ = ["Gateway", "GatewayConfig", "run_gateway"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewayConfig:
    """Everything a gateway needs; only the backend, the key and the spool directory have no default."""

    backend_url: str
    key: str = field(repr=False)
    spool_dir: str | Path
    adapter: str | None = None
    uuids: tuple[str, ...] = ()
    replay: ReplaySource | None = None
    spool_max_bytes: int = 64 << 20
    batch_size: int = 500
    batch_interval: float = 1.0
    queue_size: int = 10_000
    http_timeout: float = 10.0
    stats_interval: float | None = 60.0
    # A scanner that heard nothing for this long is restarted (not for replays, which may just end).
    silence_restart_s: float | None = 120.0
    backend: type[BaseBleakScanner] | None = None  # None: the platform's (ReplayScanner with a replay)
    transport: Transport | None = None  # None: urllib

    def __post_init__(self) -> None:
        parse_key(self.key)  # fail at configuration, not at the first batch


class Gateway:
    """One gateway process's work: scan, batch, sign, send, spool. :meth:`stop` is thread-safe."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.listener: Listener | None = None
        self.forwarder: Forwarder | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._result: dict[str, Any] | None = None
        self._error: BaseException | None = None

    def stats(self) -> dict[str, Any]:
        """The listener's and the forwarder's counters (read them on the gateway's loop for exact values)."""
        return {
            "listener": self.listener.counters.as_dict() if self.listener else {},
            "forwarder": self.forwarder.stats() if self.forwarder else {},
        }

    async def run(self) -> dict[str, Any]:
        """Run until :meth:`stop` (or the end of a replay that does not loop); return the final counters."""
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        if self._stop_requested.is_set():
            self._stopping.set()
        queue: asyncio.Queue[Sighting] = asyncio.Queue(maxsize=cfg.queue_size)
        spool = Spool(cfg.spool_dir, max_bytes=cfg.spool_max_bytes)
        replay = cfg.replay
        self.listener = Listener(
            queue, uuids=cfg.uuids or None, adapter=cfg.adapter,
            backend=cfg.backend or (ReplayScanner if replay else None),
            backend_kwargs={"replay": replay} if replay else None,
            silence_restart_s=None if replay else cfg.silence_restart_s,
        )
        self.forwarder = Forwarder(queue, backend_url=cfg.backend_url, key=cfg.key, spool=spool,
                                   batch_size=cfg.batch_size, batch_interval=cfg.batch_interval,
                                   timeout=cfg.http_timeout, transport=cfg.transport)
        log.info("gateway %s: %s -> %s (spool %s)", self.forwarder.key.key_id,
                 f"replay {replay.name}" if replay else f"adapter {cfg.adapter or 'default'}",
                 self.forwarder.url, cfg.spool_dir)
        listening = asyncio.create_task(self.listener.run(), name="listener")
        forwarding = asyncio.create_task(self.forwarder.run(), name="forwarder")
        waits = [asyncio.create_task(self._stopping.wait(), name="stop"), listening, forwarding]
        if replay is not None and not replay.loop:
            waits.append(asyncio.create_task(replay.finished.wait(), name="replay end"))
        stats_task = (asyncio.create_task(self._log_stats(cfg.stats_interval), name="stats")
                      if cfg.stats_interval else None)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.listener.stop()
            await asyncio.gather(listening, return_exceptions=True)
            self.forwarder.stop()
            try:
                await forwarding
            finally:
                for task in [*waits, stats_task]:
                    if task is not None and not task.done():
                        task.cancel()
                spool.close()
        self._result = self.stats()
        log.info("gateway stopped", extra={"stats": self._result})
        return self._result

    async def _log_stats(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            stats = self.stats()
            flat = {**stats["listener"], **{f"fwd_{k}": v for k, v in stats["forwarder"].items()}}
            log.info("stats %s", " ".join(f"{k}={v}" for k, v in flat.items()), extra={"stats": stats})

    def stop(self) -> None:
        """Ask the gateway to stop: send or spool what it holds, then return from :meth:`run`."""
        self._stop_requested.set()
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing left to stop
                loop.call_soon_threadsafe(stopping.set)

    def start_in_thread(self) -> threading.Thread:
        """Run the gateway on an event loop of its own in a daemon thread."""

        def target() -> None:
            try:
                asyncio.run(self.run())
            except BaseException as exc:  # handed to join()
                self._error = exc
                log.exception("gateway thread failed")

        self._thread = threading.Thread(target=target, name="beacons-gateway", daemon=True)
        self._thread.start()
        return self._thread

    def join(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the thread of :meth:`start_in_thread`; the final counters (TimeoutError if still running)."""
        if self._thread is None:
            raise RuntimeError("the gateway was not started in a thread")
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the gateway is still running")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def stop_and_join(self, timeout: float | None = 30.0) -> dict[str, Any]:
        """:meth:`stop`, then :meth:`join`."""
        self.stop()
        return self.join(timeout)


def run_gateway(config: GatewayConfig) -> dict[str, Any]:
    """Run a gateway on a new event loop until it is stopped (SIGINT/SIGTERM) or its replay ends."""
    import signal

    gateway = Gateway(config)

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            if signals == 1:
                log.info("stopping: sending or spooling what is held (signal again to abort)")
                gateway.stop()
            elif task is not None:
                task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        return await gateway.run()

    return asyncio.run(main())
