"""The live channel's addresses in Redis: who is online, and publishing to members' open mini-programs.

Fan-out goes through Redis: each live server (``mallapp live``, :mod:`mallapp.processes.live`)
SUBSCRIBEs to the channel of every member it holds a socket of, so any web worker, consumer or
clock can tell any member wherever they are connected. ``PUBLISH`` answers how many servers took
the message, which is the live delivery's outcome (sent or missed), and :func:`online` asks
``PUBSUB NUMSUB`` before a message is recorded, so a member whose mini-program is open is told
live and keeps their WeChat subscribe-message quota for when they are away.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from typing import Any

from redis import Redis

__all__ = ["CHANNEL_PREFIX", "CONTROL_CHANNEL", "channel", "frame", "online", "publish_many"]

CHANNEL_PREFIX = "live:member:"
# Every live server stays subscribed to this, so its reader never runs out of subscriptions.
CONTROL_CHANNEL = "live:control"
_NUMSUB_CHUNK = 1000


def channel(member_id: int) -> str:
    return f"{CHANNEL_PREFIX}{member_id}"


def online(redis: Redis, member_ids: Iterable[int]) -> set[int]:
    """Which of these members have a live connection open on some live server."""
    ids = list(dict.fromkeys(member_ids))
    found: set[int] = set()
    for start in range(0, len(ids), _NUMSUB_CHUNK):
        chunk = ids[start:start + _NUMSUB_CHUNK]
        for name, count in redis.pubsub_numsub(*(channel(m) for m in chunk)):
            if count:
                found.add(int((name.decode() if isinstance(name, bytes) else name)[len(CHANNEL_PREFIX):]))
    return found


def publish_many(redis: Redis, messages: Collection[tuple[int, str]]) -> list[int]:
    """Publish each (member, JSON text) to the member's channel; how many servers took each."""
    if not messages:
        return []
    pipe = redis.pipeline(transaction=False)
    for member_id, text in messages:
        pipe.publish(channel(member_id), text)
    return [int(n) for n in pipe.execute()]


def frame(frame_type: str, /, **fields: Any) -> str:
    """A JSON frame for the client: ``{"type": frame_type, **fields}``."""
    return json.dumps({"type": frame_type, **fields}, separators=(",", ":"), default=str)
