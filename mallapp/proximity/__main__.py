"""``python -m mallapp.proximity`` (Procfile ``worker``): one consumer of the sightings stream.

Run as many as the load needs; they share the partitions of the stream by lease and read them
through the ``proximity`` consumer group. SIGTERM saves what is in memory and gives the partitions back.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from mallapp import logs
from mallapp.proximity.worker import Worker
from mallapp.runtime import build_runtime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mallapp.proximity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--consumer", help="this consumer's name in the group (default: host-pid)")
    parser.add_argument("--count", type=int, default=200, help="stream entries read per partition per step")
    parser.add_argument("--block-ms", type=int, default=1000, help="how long a read waits for entries")
    parser.add_argument("--claim-idle-ms", type=int, default=30_000,
                        help="take over entries another consumer left unacknowledged this long")
    parser.add_argument("--flush-every", type=float, default=1.0,
                        help="seconds between saves of the member states kept in memory (and acknowledgements)")
    parser.add_argument("--stats-interval", type=float, default=10.0, help="seconds between stats log lines")
    args = parser.parse_args(argv)
    rt = build_runtime()
    logs.configure(rt.settings.log_format, rt.settings.log_level)
    worker = Worker(rt, args.consumer, count=args.count, block_ms=args.block_ms, claim_idle_ms=args.claim_idle_ms,
                    flush_every_s=args.flush_every)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger("mallapp.proximity").info("proximity worker %s starting", worker.consumer)
    try:
        worker.run(stop, stats_every_s=args.stats_interval)
    finally:
        rt.close()


if __name__ == "__main__":
    main()
