"""Dead letters: the stream entries a consumer group set aside after failing them ``max_deliveries`` times.

A :class:`mallapp.processes.streams.GroupConsumer` puts such an entry on ``<stream>:dead`` (:func:`dead_key`)
with its own fields first (:data:`DEAD_FIELDS`: the original id, the group, the error, how many deliveries,
when), then the entry's fields under their own names. Here is everything else that touches them, for the
ops API and the CLI alike: which streams have consumers (:func:`consumer_streams`), reading them newest
first (:func:`listing`), counting them, and putting them back on their stream (:func:`replay`), where the
group reads them as new entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from mallapp.domain.proximity.effects import EVENTS_STREAM
from mallapp.domain.proximity.ingest import streams as sighting_streams
from mallapp.domain.sends import STREAM as SENDS_STREAM
from mallapp.errors import RuleViolation
from mallapp.settings import Settings

__all__ = ["DEAD_FIELDS", "DeadLetter", "consumer_streams", "count", "dead_key", "known_stream", "listing",
           "replay"]

# A dead letter's own fields; the entry's fields follow them, under their own names.
DEAD_FIELDS = ("dead:id", "dead:group", "dead:error", "dead:delivered", "dead:at")


def dead_key(stream: str) -> str:
    """The stream where a group's consumers set aside the entries of ``stream`` they could not handle."""
    return f"{stream}:dead"


def consumer_streams(settings: Settings) -> list[str]:
    """Every stream a consumer group reads (and so may set entries aside from): the sightings partitions
    (``[beacons.ingest] stream_partitions``), the proximity events, and the sends (campaigns, announcements)."""
    return [*sighting_streams(settings), EVENTS_STREAM, SENDS_STREAM]


def known_stream(settings: Settings, stream: str) -> str:
    """``stream`` if a consumer group reads it; else a refusal naming the streams that are."""
    known = consumer_streams(settings)
    if stream not in known:
        raise RuleViolation(f"no consumer reads the stream {stream!r}; the streams are: {', '.join(known)}",
                            code="dead_letters.unknown_stream", details={"streams": known})
    return stream


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class DeadLetter:
    id: str  # on the dead-letter stream
    stream: str
    original_id: str
    group: str
    deliveries: int | None
    error: str
    at: datetime | None
    fields: dict[str, str]  # the entry's own, decoded as UTF-8 (undecodable bytes replaced)


def _letter(stream: str, entry_id: Any, raw: Mapping[Any, Any]) -> DeadLetter:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    try:
        deliveries: int | None = int(fields.get("dead:delivered", ""))
    except ValueError:
        deliveries = None
    try:
        at: datetime | None = datetime.fromtimestamp(float(fields.get("dead:at", "")), UTC)
    except (ValueError, OverflowError, OSError):
        at = None
    return DeadLetter(id=_text(entry_id), stream=stream, original_id=fields.get("dead:id", ""),
                      group=fields.get("dead:group", ""), deliveries=deliveries, error=fields.get("dead:error", ""),
                      at=at, fields={k: v for k, v in fields.items() if k not in DEAD_FIELDS})


def listing(redis: Redis, stream: str, limit: int = 50) -> list[DeadLetter]:
    """The latest ``limit`` entries set aside from ``stream``, newest first."""
    return [_letter(stream, entry_id, raw) for entry_id, raw in redis.xrevrange(dead_key(stream), count=limit)]


def count(redis: Redis, stream: str) -> int:
    """How many entries of ``stream`` are set aside."""
    return int(redis.xlen(dead_key(stream)))


def replay(redis: Redis, stream: str, ids: Sequence[bytes | str] | None = None) -> int:
    """Put dead letters of ``stream`` back on it as new entries (all, or those ``ids`` of the dead-letter
    stream; an id not there is skipped) and remove them from the dead letters; how many. For ops, once
    the cause is fixed: the group reads them again like any new entry."""
    dead = dead_key(stream)
    entries = redis.xrange(dead) if ids is None else [e for i in dict.fromkeys(ids) for e in redis.xrange(dead, i, i)]
    for entry_id, fields in entries:
        original = {k: v for k, v in fields.items() if _text(k) not in DEAD_FIELDS}
        pipe = redis.pipeline()  # a transaction: never both on the stream and still set aside
        pipe.xadd(stream, original)
        pipe.xdel(dead, entry_id)
        pipe.execute()
    return len(entries)
