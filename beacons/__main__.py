"""``python -m beacons``: run the gateway (listen, batch, sign, forward, spool), or record a capture.

    python -m beacons --backend-url https://mall.example --adapter hci0 --uuid fda50693-... \\
        --spool-dir /var/lib/beacons/spool            # key in $MALL_GATEWAY_KEY or --key
    python -m beacons --backend-url http://127.0.0.1:8000 --replay-dataset uji_library --speed 10 --loop
    python -m beacons --record capture.jsonl --adapter hci0 --duration 60

SIGINT or SIGTERM stops it after sending (or spooling) what it holds; a second signal aborts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from beacons.datasets import DATASETS
from beacons.forwarder import MAX_BATCH, parse_key
from beacons.gateway import GatewayConfig, run_gateway
from beacons.listener import canonical_uuid
from beacons.replay import ReplaySource

KEY_ENV = "MALL_GATEWAY_KEY"
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; fields passed with ``extra=`` are kept."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(fmt: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname).1s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("bleak").setLevel(logging.WARNING)


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, not {text}")
        return value
    return parse


def _uuid(text: str) -> str:
    try:
        return canonical_uuid(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _batch_size(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_BATCH:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_BATCH}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m beacons", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--backend-url", help="the backend's base URL, e.g. https://mall.example")
    p.add_argument("--key", help=f"the gateway key gk_<id>.<version>.<secret> (default: ${KEY_ENV})")
    p.add_argument("--adapter", help="Bluetooth adapter (BlueZ), e.g. hci0; default: the system's")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--replay", type=Path, metavar="FILE.jsonl", help="replay a capture instead of scanning")
    source.add_argument("--replay-dataset", choices=DATASETS, help="replay a BLE RSSI data set as iBeacons")
    p.add_argument("--replay-uuid", type=_uuid, help="the iBeacon UUID of a replayed data set (default: its own)")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed factor; 0 = as fast as possible")
    p.add_argument("--loop", action="store_true", help="replay again and again")
    p.add_argument("--uuid", type=_uuid, action="append", default=[],
                   help="forward only iBeacons of this UUID (repeatable; TLM frames pass)")
    p.add_argument("--spool-dir", type=Path, default=Path("var/gateway-spool"),
                   help="where batches wait while the backend is away")
    p.add_argument("--spool-max-bytes", type=_positive(int), default=64 << 20, help="spool bound; oldest dropped")
    p.add_argument("--batch-size", type=_batch_size, default=500, help="sightings per batch at most")
    p.add_argument("--batch-interval", type=_positive(float), default=1.0, help="seconds a batch stays open")
    p.add_argument("--queue-size", type=_positive(int), default=10_000, help="sightings between listener and forwarder")
    p.add_argument("--http-timeout", type=_positive(float), default=10.0, help="seconds per request")
    p.add_argument("--silence-restart", type=float, default=120.0,
                   help="restart a scanner that heard nothing this long (0: never)")
    p.add_argument("--stats-interval", type=float, default=60.0, help="seconds between counter logs (0: never)")
    p.add_argument("--log-format", choices=("json", "text"), default="text")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--record", type=Path, metavar="FILE.jsonl",
                   help="only record what the adapter hears as a capture (no backend needed)")
    p.add_argument("--duration", type=_positive(float), help="with --record: stop after this many seconds")
    args = p.parse_args(argv)
    if args.speed < 0:
        p.error("--speed must be >= 0")
    if args.record is None:
        if not args.backend_url:
            p.error("--backend-url is required")
        args.key = args.key or os.environ.get(KEY_ENV)
        if not args.key:
            p.error(f"give the gateway key with --key or ${KEY_ENV}")
        try:
            parse_key(args.key)
        except ValueError as exc:
            p.error(str(exc))
    return args


async def record(path: Path, adapter: str | None, duration: float | None) -> int:
    """Write what the adapter hears to ``path`` until a signal or ``duration``."""
    from bleak import BleakScanner

    from beacons.capture import CaptureWriter

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with path.open("w", encoding="utf-8") as fh:
        writer = CaptureWriter(fh)
        async with BleakScanner(detection_callback=writer.on_advertisement,
                                bluez={"adapter": adapter} if adapter else {}):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)
    logging.getLogger("beacons").info("recorded %d advertisements to %s", writer.written, path)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    if args.record is not None:
        return asyncio.run(record(args.record, args.adapter, args.duration))
    replay = None
    if args.replay is not None:
        replay = ReplaySource.from_capture(args.replay, speed=args.speed, loop=args.loop)
    elif args.replay_dataset is not None:
        replay = ReplaySource.from_dataset(args.replay_dataset, uuid=args.replay_uuid, speed=args.speed,
                                           loop=args.loop)
    config = GatewayConfig(
        backend_url=args.backend_url, key=args.key, spool_dir=args.spool_dir, adapter=args.adapter,
        uuids=tuple(args.uuid), replay=replay, spool_max_bytes=args.spool_max_bytes,
        batch_size=args.batch_size, batch_interval=args.batch_interval, queue_size=args.queue_size,
        http_timeout=args.http_timeout, stats_interval=args.stats_interval or None,
        silence_restart_s=args.silence_restart or None,
    )
    try:
        run_gateway(config)
    except asyncio.CancelledError:  # a second signal: abort without flushing
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
