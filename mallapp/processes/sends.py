"""The sends consumer: messages to large audiences, off the request (``mallapp sends``, Procfile ``sends``).

Reads the ``sends:jobs`` stream (group ``sends``; :mod:`mallapp.domain.sends`). A ``fanout`` entry
draws a campaign's audience into treated and control (:func:`mallapp.domain.campaigns.fan_out`) or
lists an announced deal's followers (:func:`mallapp.domain.notifications.fan_out_announcement`), and
puts them back on the stream as ``batch`` entries; each ``batch`` entry is delivered in one
transaction, whose commit sends the live and subscribe messages, and acknowledged after it. A
consumer killed mid-batch leaves its entries pending: another claims them after ``--claim-idle-ms``
and finds done what was committed (assignments moved to their next step, message keys used), so
nobody is reached twice.
"""

from __future__ import annotations

import argparse
import logging
import threading

from mallapp.domain import campaigns, notifications
from mallapp.domain.sends import GROUP, STREAM, Entry
from mallapp.processes.runner import Process
from mallapp.processes.streams import Entry as StreamEntry
from mallapp.processes.streams import GroupConsumer, consumer_arguments
from mallapp.runtime import Runtime

log = logging.getLogger("mallapp.sends")


class Consumer(GroupConsumer):
    """One consumer of the ``sends`` group: fan-outs and batches, each acknowledged once committed."""

    log = log

    def __init__(self, rt: Runtime, consumer: str | None = None, *, count: int = 4, block_ms: int = 1000,
                 claim_idle_ms: int = 30_000, max_deliveries: int = 3) -> None:
        super().__init__(rt.redis, GROUP, consumer, count=count, block_ms=block_ms, claim_idle_ms=claim_idle_ms,
                         max_deliveries=max_deliveries)
        self.rt = rt
        self.reached = 0  # members messaged since this consumer started

    def streams(self) -> list[str]:
        return [STREAM]

    def step(self, block_ms: int | None = None) -> int:
        """Handle what others left pending too long, then new entries; the number handled."""
        entries = self.claim(STREAM) if self.claim_due(STREAM) else []
        for _name, new in self.read([STREAM], self.block_ms if block_ms is None else block_ms):
            entries.extend(new)
        self.apply(STREAM, entries)
        return len(entries)

    def handle_batch(self, stream: str, entries: list[StreamEntry]) -> None:
        """Each entry in its own transaction, acknowledged after its commit (a replay finds it done)."""
        for entry_id, fields in entries:
            self.handle(fields)
            self.ack(stream, [entry_id])

    def handle(self, fields: dict) -> int:
        """Handle one entry; how many members it reached (a fan-out: how many it put in batches)."""
        try:
            entry = Entry.from_fields(fields)
        except (KeyError, ValueError):
            log.warning("malformed sends entry skipped: %r", fields)
            return 0
        rt, now = self.rt, self.rt.now()
        if entry.op == "fanout":
            if entry.kind == "campaign":
                return campaigns.fan_out(rt.sessions, rt.redis, rt.settings, entry.ref, now)
            return notifications.fan_out_announcement(rt.sessions, rt.redis, rt.settings, entry.ref, now)
        with rt.sessions.begin() as session:
            if entry.kind == "campaign":
                reached = campaigns.deliver_batch(session, rt.settings, rt.senders, entry.ref, entry.members, now)
            else:
                reached = notifications.announce_batch(session, rt.settings, rt.senders, entry.ref, entry.members,
                                                       now)
        self.reached += reached
        return reached

    def drain(self, max_steps: int = 10_000) -> int:
        """Step until the stream has nothing new (tests, benchmarks, ``mallapp sends --drain``); entries handled."""
        self.ensure_group()
        total = 0
        for _ in range(max_steps):
            handled = self.step(block_ms=0)
            total += handled
            if not handled:
                break
        return total


def _arguments(parser: argparse.ArgumentParser) -> None:
    consumer_arguments(parser, count=4, count_help="entries read per step (a batch entry holds up to "
                                                   "[campaigns] batch_size members)")


def _run(rt: Runtime, args: argparse.Namespace, stop: threading.Event) -> None:
    consumer = Consumer(rt, args.consumer, count=args.count, block_ms=args.block_ms, claim_idle_ms=args.claim_idle_ms,
                        max_deliveries=args.max_deliveries)
    log.info("sends consumer %s consuming", consumer.consumer)
    consumer.run(stop)


PROCESS = Process("sends", "Deliver campaigns and deal announcements to large audiences, a batch per transaction "
                  "(any number: they share the stream's consumer group).", _run, _arguments)
