"""Members' rotating advertising identities: what a phone broadcasts so that gateways can hear it.

The mini-program advertises an iBeacon frame (``BLEPeripheralServer.startAdvertising``) with the
mall's identity UUID and a random 32-bit token as major (high 16 bits) and minor (low 16 bits).
The token resolves to the member only while it is valid (``identity_ttl_s``), so a token
recorded yesterday resolves to nobody today, and a bystander cannot follow a member from day to day.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis import Redis

from mallapp.settings import Settings


@dataclass(frozen=True)
class Identity:
    uuid: str
    major: int
    minor: int
    valid_until: datetime


def _token_key(token: int) -> str:
    return f"beacon-identity:token:{token}"


def _member_key(member_id: int) -> str:
    return f"beacon-identity:member:{member_id}"


def issue(redis: Redis, settings: Settings, member_id: int, now: datetime) -> Identity:
    """The member's current identity; a new one once less than a third of the current one's life is left."""
    ttl = settings.beacons.identity_ttl_s
    current = redis.get(_member_key(member_id))
    if current is not None:
        token_s, _, until_s = (current.decode() if isinstance(current, bytes) else current).partition(":")
        until = float(until_s)
        if until - now.timestamp() > ttl / 3:
            token = int(token_s)
            return Identity(settings.beacons.identity_uuid, token >> 16, token & 0xFFFF,
                            datetime.fromtimestamp(until, now.tzinfo))
    until = now + timedelta(seconds=ttl)
    while True:
        token = secrets.randbits(32)
        # NX: two members never share a live token; on the rare collision draw again. The value
        # carries the validity too, so resolution follows the sighting's time, not only Redis's TTL.
        if redis.set(_token_key(token), f"{member_id}:{until.timestamp()}", nx=True, ex=ttl):
            break
    redis.set(_member_key(member_id), f"{token}:{until.timestamp()}", ex=ttl)
    return Identity(settings.beacons.identity_uuid, token >> 16, token & 0xFFFF, until)


def _lookup(redis: Redis, pairs: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[int, float]]:
    """The (member, valid until) of each (major, minor) pair that is a live identity."""
    out = {}
    for pair, value in zip(pairs, redis.mget([_token_key((major << 16) | minor) for major, minor in pairs]),
                           strict=True):
        if value is not None:
            member_s, _, until_s = (value.decode() if isinstance(value, bytes) else value).partition(":")
            out[pair] = (int(member_s), float(until_s))
    return out


def resolve_many(redis: Redis, heard: dict[tuple[int, int], float]) -> dict[tuple[int, int], int]:
    """Map (major, minor) pairs heard by gateways at the given times to members; identities that were
    not valid at that time, or are unknown, are left out."""
    if not heard:
        return {}
    return {pair: member for pair, (member, until) in _lookup(redis, list(heard)).items() if heard[pair] <= until}


class Resolver:
    """``resolve_many`` with a memory, for a worker that hears the same identities all day.

    A token is set once (``SET NX``) for its whole validity, so while it is valid its member cannot
    change: only tokens never seen, or heard after the validity known for them, go to Redis.
    """

    def __init__(self, redis: Redis, max_known: int = 500_000) -> None:
        self.redis = redis
        self.max_known = max_known
        self._known: dict[tuple[int, int], tuple[int, float]] = {}

    def resolve(self, heard: dict[tuple[int, int], float]) -> dict[tuple[int, int], int]:
        known = self._known
        out, ask = {}, []
        for pair, t in heard.items():
            entry = known.get(pair)
            if entry is not None and t <= entry[1]:
                out[pair] = entry[0]
            else:
                ask.append(pair)
        if ask:
            if len(known) > self.max_known:
                known.clear()
            found = _lookup(self.redis, ask)
            known.update(found)
            out.update((pair, member) for pair, (member, until) in found.items() if heard[pair] <= until)
        return out
