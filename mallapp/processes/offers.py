"""The offers consumer: proximity events in, deal offers out (``mallapp offers``, Procfile ``offers``)."""

from __future__ import annotations

import argparse
import logging
import math
import os
import socket
import threading
from collections.abc import Iterable, Mapping
from time import monotonic

from redis import Redis
from redis.exceptions import ResponseError

from mallapp.domain.notifications import Recorded
from mallapp.domain.offers import GROUP, Event, offer_many
from mallapp.domain.proximity.effects import EVENTS_STREAM
from mallapp.processes.runner import Process
from mallapp.runtime import Runtime

log = logging.getLogger("mallapp.offers")


class Consumer:
    """One consumer of the ``offers`` group on the proximity-events stream.

    Each batch read: decide and record in one transaction (commit), send the live and subscribe
    messages that were reserved (settled in short transactions of their own), then acknowledge. Entries another consumer left
    pending for ``claim_idle_ms`` are claimed (``XAUTOCLAIM``). A crash after the commit and before
    the acknowledgement replays the entry: the deal already offered is not offered again (its key,
    and the 24 h rule), but another eligible deal may be, still within the daily cap.
    """

    def __init__(self, rt: Runtime, consumer: str | None = None, *, count: int = 100, block_ms: int = 1000,
                 claim_idle_ms: int = 30_000) -> None:
        self.rt = rt
        self.redis: Redis = rt.redis
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.count = count
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.offered = 0
        self._last_claim = -math.inf

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(EVENTS_STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def step(self, block_ms: int | None = None) -> int:
        """Handle what others left pending too long, then new entries; the number handled."""
        entries = []
        now = monotonic()
        # Entries go idle only after claim_idle_ms: looking a few times per idle period is enough.
        if now - self._last_claim >= self.claim_idle_ms / 3000:
            self._last_claim = now
            reply = self.redis.xautoclaim(EVENTS_STREAM, GROUP, self.consumer, self.claim_idle_ms,
                                          start_id="0-0", count=self.count)
            entries = [e for e in reply[1] if e[1]]  # trimmed entries come back empty
        block = self.block_ms if block_ms is None else block_ms
        read = self.redis.xreadgroup(GROUP, self.consumer, {EVENTS_STREAM: ">"}, count=self.count,
                                     block=block or None)
        for _name, new in read or ():
            entries.extend(new)
        if entries:
            self.handle(fields for _id, fields in entries)
            self.redis.xack(EVENTS_STREAM, GROUP, *(entry_id for entry_id, _ in entries))
        return len(entries)

    def handle(self, entries: Iterable[Mapping[bytes | str, bytes | str]]) -> list[Recorded]:
        """Decide and deliver for a batch of entries in one transaction; the offers recorded.

        A malformed entry is logged and skipped.
        """
        events = []
        for fields in entries:
            try:
                events.append(Event.from_fields(fields))
            except (KeyError, ValueError):
                log.warning("malformed proximity event skipped: %r", fields)
        rt = self.rt
        now = rt.now()
        with rt.sessions.begin() as session:
            recorded = [r for r in offer_many(session, rt.senders, rt.settings, events, now)
                        if r is not None and r.created]
        self.offered += len(recorded)
        return recorded

    def run(self, stop: threading.Event) -> None:
        self.ensure_group()
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # keep consuming; unacknowledged entries come back
                log.exception("offers step failed")
                stop.wait(1.0)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--consumer", help="this consumer's name in the group (default: host-pid)")
    parser.add_argument("--count", type=int, default=100, help="entries read per step")
    parser.add_argument("--block-ms", type=int, default=1000, help="how long a read waits for entries")
    parser.add_argument("--claim-idle-ms", type=int, default=30_000,
                        help="take over entries another consumer left unacknowledged this long")


def _run(rt: Runtime, args: argparse.Namespace, stop: threading.Event) -> None:
    consumer = Consumer(rt, args.consumer, count=args.count, block_ms=args.block_ms, claim_idle_ms=args.claim_idle_ms)
    log.info("offers consumer %s consuming", consumer.consumer)
    consumer.run(stop)


PROCESS = Process("offers", "Turn dwell events into deal offers (any number: they share the stream's consumer "
                  "group).", _run, _arguments)
