"""The offers consumer: proximity events in, deal offers out (``mallapp offers``, Procfile ``offers``)."""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Iterable, Mapping

from mallapp.domain.notifications import Recorded
from mallapp.domain.offers import GROUP, Event, offer_many
from mallapp.domain.proximity.effects import EVENTS_STREAM
from mallapp.processes.runner import Process
from mallapp.processes.streams import Entry, GroupConsumer, consumer_arguments
from mallapp.runtime import Runtime

log = logging.getLogger("mallapp.offers")


class Consumer(GroupConsumer):
    """One consumer of the ``offers`` group on the proximity-events stream.

    Each batch read: decide and record in one transaction, whose commit sends the live and subscribe
    messages reserved (each settled in a short transaction of its own), then acknowledge. Entries
    another consumer left pending for ``claim_idle_ms`` are claimed (``XAUTOCLAIM``). A crash after the commit and before
    the acknowledgement replays the entry: the deal already offered is not offered again (its key,
    and the 24 h rule), but another eligible deal may be, still within the daily cap.
    """

    log = log

    def __init__(self, rt: Runtime, consumer: str | None = None, *, count: int = 100, block_ms: int = 1000,
                 claim_idle_ms: int = 30_000, max_deliveries: int = 3) -> None:
        super().__init__(rt.redis, GROUP, consumer, count=count, block_ms=block_ms, claim_idle_ms=claim_idle_ms,
                         max_deliveries=max_deliveries)
        self.rt = rt
        self.offered = 0

    def streams(self) -> list[str]:
        return [EVENTS_STREAM]

    def step(self, block_ms: int | None = None) -> int:
        """Handle what others left pending too long, then new entries; the number handled."""
        entries = self.claim(EVENTS_STREAM) if self.claim_due(EVENTS_STREAM) else []
        for _name, new in self.read([EVENTS_STREAM], self.block_ms if block_ms is None else block_ms):
            entries.extend(new)
        self.apply(EVENTS_STREAM, entries)
        return len(entries)

    def handle_batch(self, stream: str, entries: list[Entry]) -> None:
        """One transaction for the batch, then its acknowledgement (a failed batch is retried entry by entry)."""
        self.handle(fields for _id, fields in entries)
        self.ack(stream, (entry_id for entry_id, _ in entries))

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


def _arguments(parser: argparse.ArgumentParser) -> None:
    consumer_arguments(parser, count=100, count_help="entries read per step")


def _run(rt: Runtime, args: argparse.Namespace, stop: threading.Event) -> None:
    consumer = Consumer(rt, args.consumer, count=args.count, block_ms=args.block_ms, claim_idle_ms=args.claim_idle_ms,
                        max_deliveries=args.max_deliveries)
    log.info("offers consumer %s consuming", consumer.consumer)
    consumer.run(stop)


PROCESS = Process("offers", "Turn dwell events into deal offers (any number: they share the stream's consumer "
                  "group).", _run, _arguments)
