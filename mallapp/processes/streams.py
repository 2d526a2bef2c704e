"""The Redis Streams consumer both stream processes build on: group, claim, read, acknowledge, loop.

A :class:`GroupConsumer` is one member of a consumer group over one or more streams. Delivery is at
least once: an entry read and not acknowledged (its consumer died, or failed midway) goes idle, and
after ``claim_idle_ms`` any consumer of the group takes it over (``XAUTOCLAIM``), so every handler
must be idempotent. Subclasses say what a ``step`` does with what it reads; :meth:`run` loops it
until stopped, logging a failed step and carrying on (its entries come back).

A poison entry (one that fails however often it is tried) must not hold back the rest: a step hands
what it read to :meth:`GroupConsumer.apply`, which handles the entries together and, when that fails,
one at a time. An entry that fails on its own after Redis delivered it ``max_deliveries`` times (read,
then claimed again) is set aside on ``<stream>:dead`` with its error, acknowledged and counted
(``dead_lettered``); the others are applied once. Ops list the dead letters and put them back
(:mod:`mallapp.domain.dead_letters`: ``GET /api/v1/ops/dead-letters``, ``mallapp dead-letters``).

A Redis that lost its data (restarted without persistence) has no consumer group: a read or claim
answered ``NOGROUP`` makes the group again (from the stream's start) and carries on, and
:meth:`GroupConsumer.lost_redis` lets a subclass rebuild what else it kept there.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterable
from time import monotonic
from typing import Any

from redis import Redis
from redis.exceptions import ResponseError

from mallapp.domain.dead_letters import DEAD_FIELDS, dead_key
from mallapp.domain.dead_letters import replay as replay_dead

__all__ = ["DEAD_FIELDS", "Entry", "GroupConsumer", "consumer_name", "dead_letters", "replay_dead"]

# An entry as redis-py returns it: (id, fields).
Entry = tuple[bytes, dict[Any, Any]]

# The dead-letter stream of a stream (mallapp.domain.dead_letters, where ops read and replay them).
dead_letters = dead_key


def _is_nogroup(exc: ResponseError) -> bool:
    return str(exc).startswith("NOGROUP")


def consumer_name(given: str | None = None) -> str:
    """This consumer's name in its group: the one given, else host-pid (unique while it runs)."""
    return given or f"{socket.gethostname()}-{os.getpid()}"


def consumer_arguments(parser: argparse.ArgumentParser, *, count: int, count_help: str) -> None:
    """The command-line options every stream consumer process takes (``mallapp worker``, ``mallapp offers``)."""
    parser.add_argument("--consumer", help="this consumer's name in the group (default: host-pid)")
    parser.add_argument("--count", type=int, default=count, help=count_help)
    parser.add_argument("--block-ms", type=int, default=1000, help="how long a read waits for entries")
    parser.add_argument("--claim-idle-ms", type=int, default=30_000,
                        help="take over entries another consumer left unacknowledged this long")
    parser.add_argument("--max-deliveries", type=int, default=3,
                        help="an entry that fails on its own this many deliveries is set aside on <stream>:dead")


class GroupConsumer:
    """One consumer of ``group``; ``step()`` handles what there is, ``run()`` steps until stopped."""

    log = logging.getLogger("mallapp.streams")

    def __init__(self, redis: Redis, group: str, consumer: str | None = None, *, count: int, block_ms: int,
                 claim_idle_ms: int, max_deliveries: int = 3) -> None:
        if max_deliveries < 1:
            raise ValueError("max_deliveries is at least 1")
        self.redis = redis
        self.group = group
        self.consumer = consumer_name(consumer)
        self.count = count
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self._last_claim: dict[str, float] = {}
        self.dead_lettered = 0  # entries set aside since this consumer started
        self.groups_lost = 0  # times Redis had lost the group (and so, likely, all its data)

    def streams(self) -> Iterable[str]:
        """Every stream the group reads (its group is made on each)."""
        raise NotImplementedError

    def step(self, block_ms: int | None = None) -> int:
        """Handle what there is to handle now; how many entries."""
        raise NotImplementedError

    def ensure_group(self) -> None:
        """Make the group on each stream (and the stream), from its start; one already there is kept."""
        for name in self.streams():
            try:
                self.redis.xgroup_create(name, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def lost_redis(self) -> None:
        """Called when the group was gone (Redis lost its data), after it is made again: rebuild what
        else this consumer keeps in Redis. The default does nothing."""

    def _regroup(self, exc: ResponseError) -> None:
        self.groups_lost += 1
        self.log.warning("%s: Redis lost the consumer group (%s); making it again", self.group, exc)
        self.ensure_group()
        self.lost_redis()

    def claim_due(self, stream: str) -> bool:
        """Whether to look for idle entries on ``stream`` now: entries go idle only after
        ``claim_idle_ms``, so a few looks per idle period are enough."""
        now = monotonic()
        if now - self._last_claim.get(stream, -math.inf) < self.claim_idle_ms / 3000:
            return False
        self._last_claim[stream] = now
        return True

    def claim(self, stream: str) -> list[Entry]:
        """Take over entries of ``stream`` that other consumers left unacknowledged for ``claim_idle_ms``."""
        try:
            reply = self.redis.xautoclaim(stream, self.group, self.consumer, self.claim_idle_ms, start_id="0-0",
                                          count=self.count)
        except ResponseError as exc:
            if not _is_nogroup(exc):
                raise
            self._regroup(exc)
            return []  # a new group has nothing pending
        # [next id, entries] before Redis 7, [next id, entries, deleted ids] since; trimmed entries are empty.
        return [entry for entry in reply[1] if entry[1]]

    def read(self, streams: Iterable[str], block_ms: int | None = None) -> list[tuple[str, list[Entry]]]:
        """New entries of these streams, up to ``count`` each; wait up to ``block_ms`` when there are none."""
        streams = list(streams)
        # A blocked read must end well before the client's socket timeout ([redis] socket_timeout_s) cuts it
        # off, a busy Redis's answer included: at most half of it.
        timeout_s = self.redis.connection_pool.connection_kwargs.get("socket_timeout")
        if block_ms and timeout_s:
            block_ms = max(1, min(block_ms, int(timeout_s * 500)))
        try:
            reply = self.redis.xreadgroup(self.group, self.consumer, {name: ">" for name in streams},
                                          count=self.count, block=block_ms or None)
        except ResponseError as exc:
            if not _is_nogroup(exc):
                raise
            self._regroup(exc)
            reply = self.redis.xreadgroup(self.group, self.consumer, {name: ">" for name in streams},
                                          count=self.count, block=block_ms or None)
        return [(name.decode() if isinstance(name, bytes) else name, entries) for name, entries in reply or ()
                if entries]

    def ack(self, stream: str, entry_ids: Iterable[bytes], pipe: Any = None) -> None:
        """Acknowledge entries handled (on ``pipe`` when given, to send with others)."""
        ids = list(entry_ids)
        if ids:
            (pipe or self.redis).xack(stream, self.group, *ids)

    # --- a poison entry ------------------------------------------------------------------------

    def handle_batch(self, stream: str, entries: list[Entry]) -> None:
        """Handle entries of ``stream`` read together (acknowledged now, or by a later chore). Raising
        leaves none of them applied in part once :meth:`reset` has run."""
        raise NotImplementedError

    def handle_alone(self, stream: str, entry: Entry) -> None:
        """Handle one entry and acknowledge it (the one-at-a-time pass after its batch failed)."""
        self.handle_batch(stream, [entry])

    def reset(self) -> None:
        """Drop what a failed handling may have left half done in memory. The default has nothing to drop."""

    def apply(self, stream: str, entries: list[Entry]) -> None:
        """Handle ``entries`` together; if that fails, one at a time, setting aside one that fails alone
        and was delivered ``max_deliveries`` times. Raises when none could be handled (likely an outage,
        not a poison entry: the step fails and is retried)."""
        if not entries:
            return
        try:
            self.handle_batch(stream, entries)
            return
        except Exception as exc:
            self.reset()
            if len(entries) == 1:
                if self._failed(stream, entries[0], exc):
                    return
                raise
            self.log.warning("%s: a batch of %s entries of %s failed (%r); handling them one at a time",
                             self.group, len(entries), stream, exc)
        last: Exception | None = None
        handled = 0
        for entry in entries:
            try:
                self.handle_alone(stream, entry)
                handled += 1
            except Exception as exc:
                self.reset()
                if not self._failed(stream, entry, exc):
                    last = exc
        if last is not None and not handled:
            raise last

    def _failed(self, stream: str, entry: Entry, exc: Exception) -> bool:
        """An entry failed on its own: set it aside when delivered ``max_deliveries`` times; whether it was."""
        entry_id = entry[0]
        pending = self.redis.xpending_range(stream, self.group, min=entry_id, max=entry_id, count=1)
        delivered = pending[0]["times_delivered"] if pending else 1
        if delivered < self.max_deliveries:
            self.log.warning("%s: entry %s of %s failed (delivery %s of %s before it is set aside): %r",
                             self.group, entry_id, stream, delivered, self.max_deliveries, exc)
            return False
        self.dead_letter(stream, entry, exc, delivered)
        return True

    def dead_letter(self, stream: str, entry: Entry, exc: BaseException, delivered: int) -> None:
        """Set ``entry`` aside on ``<stream>:dead`` with its error, and acknowledge it."""
        entry_id, fields = entry
        error = f"{type(exc).__name__}: {exc}"[:2000]
        pipe = self.redis.pipeline()
        pipe.xadd(dead_key(stream), {"dead:id": entry_id, "dead:group": self.group, "dead:error": error,
                                         "dead:delivered": delivered, "dead:at": f"{time.time():.3f}", **fields})
        pipe.xack(stream, self.group, entry_id)
        pipe.execute()
        self.dead_lettered += 1
        self.log.error("%s: entry %s of %s set aside on %s after %s deliveries: %s", self.group, entry_id, stream,
                       dead_key(stream), delivered, error)

    def after_step(self) -> None:
        """Called after each step that did not fail (periodic chores)."""

    def close(self) -> None:
        """Called once when the loop ends (a clean stop)."""

    def run(self, stop: threading.Event) -> None:
        """Step until ``stop`` is set; a failed step is logged and retried a second later."""
        self.ensure_group()
        try:
            while not stop.is_set():
                try:
                    self.step()
                    self.after_step()
                except Exception:  # keep consuming; unacknowledged entries come back
                    self.log.exception("%s step failed", self.group)
                    stop.wait(1.0)
        finally:
            self.close()
