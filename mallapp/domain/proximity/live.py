"""Live presence in Redis: who is in the mall and in each zone right now.

Sets of member ids, so that a repeated enter or exit (at-least-once delivery) changes nothing.
The worker keeps them; ops reads the counts. Rebuildable: presence expires within the exit timeout.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis import Redis

MALL = 0  # the zone id used for "in the mall"


def zone_key(zone_id: int) -> str:
    return f"presence:zone:{zone_id}"


def enter(pipe: Redis, zone_id: int, member_id: int) -> None:
    pipe.sadd(zone_key(zone_id), member_id)


def leave(pipe: Redis, zone_id: int, member_id: int) -> None:
    pipe.srem(zone_key(zone_id), member_id)


def zone_counts(redis: Redis, zone_ids: Iterable[int]) -> dict[int, int]:
    """Members present now per zone (zone 0 is the whole mall)."""
    ids = list(zone_ids)
    pipe = redis.pipeline(transaction=False)
    for zone_id in ids:
        pipe.scard(zone_key(zone_id))
    return dict(zip(ids, (int(n) for n in pipe.execute()), strict=True))


def members_in(redis: Redis, zone_id: int) -> set[int]:
    return {int(m) for m in redis.smembers(zone_key(zone_id))}
