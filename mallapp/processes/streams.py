"""The Redis Streams consumer both stream processes build on: group, claim, read, acknowledge, loop.

A :class:`GroupConsumer` is one member of a consumer group over one or more streams. Delivery is at
least once: an entry read and not acknowledged (its consumer died, or failed midway) goes idle, and
after ``claim_idle_ms`` any consumer of the group takes it over (``XAUTOCLAIM``), so every handler
must be idempotent. Subclasses say what a ``step`` does with what it reads; :meth:`run` loops it
until stopped, logging a failed step and carrying on (its entries come back).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
from collections.abc import Iterable
from time import monotonic
from typing import Any

from redis import Redis
from redis.exceptions import ResponseError

__all__ = ["Entry", "GroupConsumer", "consumer_name"]

# An entry as redis-py returns it: (id, fields).
Entry = tuple[bytes, dict[Any, Any]]


def consumer_name(given: str | None = None) -> str:
    """This consumer's name in its group: the one given, else host-pid (unique while it runs)."""
    return given or f"{socket.gethostname()}-{os.getpid()}"


class GroupConsumer:
    """One consumer of ``group``; ``step()`` handles what there is, ``run()`` steps until stopped."""

    log = logging.getLogger("mallapp.streams")

    def __init__(self, redis: Redis, group: str, consumer: str | None = None, *, count: int, block_ms: int,
                 claim_idle_ms: int) -> None:
        self.redis = redis
        self.group = group
        self.consumer = consumer_name(consumer)
        self.count = count
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self._last_claim: dict[str, float] = {}

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
        reply = self.redis.xautoclaim(stream, self.group, self.consumer, self.claim_idle_ms, start_id="0-0",
                                      count=self.count)
        # [next id, entries] before Redis 7, [next id, entries, deleted ids] since; trimmed entries are empty.
        return [entry for entry in reply[1] if entry[1]]

    def read(self, streams: Iterable[str], block_ms: int | None = None) -> list[tuple[str, list[Entry]]]:
        """New entries of these streams, up to ``count`` each; wait up to ``block_ms`` when there are none."""
        # A blocked read must end well before the client's socket timeout ([redis] socket_timeout_s) cuts it
        # off, a busy Redis's answer included: at most half of it.
        timeout_s = self.redis.connection_pool.connection_kwargs.get("socket_timeout")
        if block_ms and timeout_s:
            block_ms = max(1, min(block_ms, int(timeout_s * 500)))
        reply = self.redis.xreadgroup(self.group, self.consumer, {name: ">" for name in streams}, count=self.count,
                                      block=block_ms or None)
        return [(name.decode() if isinstance(name, bytes) else name, entries) for name, entries in reply or ()
                if entries]

    def ack(self, stream: str, entry_ids: Iterable[bytes], pipe: Any = None) -> None:
        """Acknowledge entries handled (on ``pipe`` when given, to send with others)."""
        ids = list(entry_ids)
        if ids:
            (pipe or self.redis).xack(stream, self.group, *ids)

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
