"""Which proximity worker reads which partition of the sightings stream.

A worker holds its fair share of the partitions, ``ceil(partitions / live workers)``, and keeps
them while it lives, so the member states it caches stay its own and nothing is handed over
between chunks. A lease is a Redis key (``SET NX PX``) the holder renews every second; the live
workers are a sorted set of heartbeats. When a worker joins, the others give back what is beyond
their new share within a second; when one dies, its leases lapse after ``LEASE_MS`` and the
others take them up.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable

from redis import Redis

WORKERS = "proximity:workers"
LEASE_MS = 10_000  # a dead worker's partitions wait this long for a new reader
RENEW_EVERY_S = 1.0

# Renew the leases this consumer still holds: KEYS are lease keys, ARGV the consumer and the
# lease's length; 1 per key renewed, 0 where the lease lapsed and is someone else's (or nobody's).
_RENEW = """
local held = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    held[i] = 1
  else
    held[i] = 0
  end
end
return held
"""

_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 0
"""


def lease_key(partition: int) -> str:
    return f"proximity:partition-lease:{partition}"


class Leases:
    """The partitions one consumer holds; ``rebalance()`` renews, gives back and takes up."""

    def __init__(self, redis: Redis, consumer: str, partitions: int) -> None:
        self.redis = redis
        self.consumer = consumer
        self.partitions = partitions
        self.held: set[int] = set()
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._last = -math.inf

    def due(self) -> bool:
        return not self.held or time.monotonic() - self._last >= RENEW_EVERY_S

    def rebalance(self, before_giving_back: Callable[[], None]) -> None:
        """Heartbeat, renew what is held, give back what is beyond the fair share, take up free ones.

        ``before_giving_back`` runs before any partition is given back (the worker saves its states).
        """
        self._last = time.monotonic()
        now_ms = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(WORKERS, {self.consumer: now_ms})
        pipe.zremrangebyscore(WORKERS, "-inf", now_ms - LEASE_MS)
        pipe.zcard(WORKERS)
        live = max(1, pipe.execute()[2])
        share = math.ceil(self.partitions / live)
        if self.held:
            held = sorted(self.held)
            renewed = self._renew(keys=[lease_key(p) for p in held], args=[self.consumer, LEASE_MS])
            self.held = {p for p, ok in zip(held, renewed, strict=True) if ok}
        if len(self.held) > share:
            before_giving_back()
            extra = sorted(self.held)[share:]
            self._release(keys=[lease_key(p) for p in extra], args=[self.consumer])
            self.held.difference_update(extra)
        # Start the search at a place of our own, so that joining workers do not all race for partition 0.
        start = zlib.crc32(self.consumer.encode()) % self.partitions
        for i in range(self.partitions):
            if len(self.held) >= share:
                break
            p = (start + i) % self.partitions
            if p not in self.held and self.redis.set(lease_key(p), self.consumer, nx=True, px=LEASE_MS):
                self.held.add(p)

    def release_all(self) -> None:
        """Give every partition back and leave the live set (on a clean stop)."""
        if self.held:
            self._release(keys=[lease_key(p) for p in sorted(self.held)], args=[self.consumer])
            self.held.clear()
        self.redis.zrem(WORKERS, self.consumer)
