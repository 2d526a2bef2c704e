"""Sends to large audiences: the Redis stream the ``sends`` consumers read, and the fan-outs it carries.

A request never messages a large audience itself: it records a :class:`Fanout` (a campaign's
audience to draw, a deal's announcement to its store's followers) in its own transaction and,
once that commits, puts one ``fanout`` entry on :data:`STREAM` (:func:`enqueue_fanout`). A
``sends`` consumer (``mallapp sends``) turns the fan-out into ``batch`` entries of member ids
(:func:`enqueue_batches`) and marks it done; each batch is recorded and messaged in one
transaction of its own. Every step is idempotent by a natural key (an assignment per campaign and
member, a message key per member), so an entry read twice (a consumer killed mid-batch, its entries
claimed by another) reaches nobody twice; and a fan-out whose entry was lost (Redis down right after
the commit, a crash) is put back on the stream by the ``campaigns`` clock job (:func:`stale_fanouts`).

Entries: ``{"op": "fanout", "kind": KIND, "ref": id}`` and ``{"op": "batch", "kind": KIND,
"ref": id, "members": "1,2,3"}``, where KIND is ``campaign`` or ``announcement`` (the ref a deal id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from sqlalchemy import Integer, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime, insert_many_or_nothing

STREAM = "sends:jobs"
GROUP = "sends"
KINDS = ("campaign", "announcement")
OPS = ("fanout", "batch")
BATCH = 500  # members per batch entry: one transaction each
# The stream keeps about this many entries (acknowledged ones too, until trimmed): at 500 members an entry,
# a backlog of 50 million member-sends before an unread entry could be trimmed.
MAXLEN = 100_000
# A fan-out requested this long ago and not done is put back on the stream by the clock (its entry was
# lost, or its consumer died): longer than a consumer's claim of an idle entry, so a live one finishes first.
STALE = timedelta(minutes=5)


class Fanout(Base):
    """A fan-out asked for (``requested_at``), put on the stream (``enqueued_at``), and finished (``done_at``)."""

    __tablename__ = "send_fanouts"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    ref_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    members: Mapped[int] = mapped_column(Integer, default=0)  # members put in batches


@dataclass(frozen=True)
class Entry:
    op: str
    kind: str
    ref: int
    members: tuple[int, ...] = ()

    @classmethod
    def from_fields(cls, fields: Mapping[Any, Any]) -> Entry:
        """Decode a stream entry; KeyError or ValueError when it is malformed."""
        text = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                for k, v in fields.items()}
        op, kind = text["op"], text["kind"]
        if op not in OPS or kind not in KINDS:
            raise ValueError(f"unknown op or kind: {op!r} {kind!r}")
        members = tuple(int(m) for m in text.get("members", "").split(",") if m)
        return cls(op, kind, int(text["ref"]), members)

    def fields(self) -> dict[str, str]:
        out = {"op": self.op, "kind": self.kind, "ref": str(self.ref)}
        if self.members:
            out["members"] = ",".join(map(str, self.members))
        return out


def request_fanout(session: Session, kind: str, ref_id: int, now: datetime) -> bool:
    """Record that ``kind``/``ref_id`` is to be fanned out (in the caller's transaction); False if it was before."""
    return bool(insert_many_or_nothing(session, Fanout, [{"kind": kind, "ref_id": ref_id, "requested_at": now,
                                                          "enqueued_at": None, "done_at": None, "members": 0}],
                                       ["kind", "ref_id"], returning=("kind",)))


def enqueue_fanout(redis: Redis, kind: str, ref_id: int) -> None:
    """Put a committed fan-out on the stream (after the commit that requested it: a consumer must find it)."""
    redis.xadd(STREAM, Entry("fanout", kind, ref_id).fields(), maxlen=MAXLEN, approximate=True)


def mark_enqueued(session: Session, kind: str, ref_id: int, now: datetime) -> None:
    """Note a fan-out put back on the stream, so the clock's sweep leaves it alone for :data:`STALE`."""
    session.execute(update(Fanout).where(Fanout.kind == kind, Fanout.ref_id == ref_id).values(enqueued_at=now))


def enqueue_batches(redis: Redis, kind: str, ref_id: int, member_ids: Sequence[int], size: int = BATCH) -> int:
    """Put ``member_ids`` on the stream in batch entries of ``size``; how many entries."""
    if not member_ids:
        return 0
    pipe = redis.pipeline(transaction=False)
    entries = 0
    for start in range(0, len(member_ids), size):
        pipe.xadd(STREAM, Entry("batch", kind, ref_id, tuple(member_ids[start:start + size])).fields(), maxlen=MAXLEN,
                  approximate=True)
        entries += 1
    pipe.execute()
    return entries


def finish_fanout(session: Session, kind: str, ref_id: int, members: int, now: datetime) -> None:
    session.execute(update(Fanout).where(Fanout.kind == kind, Fanout.ref_id == ref_id, Fanout.done_at.is_(None))
                    .values(done_at=now, members=members))


def fanout_done(session: Session, kind: str, ref_id: int) -> bool:
    return session.scalar(select(Fanout.done_at).where(Fanout.kind == kind, Fanout.ref_id == ref_id)) is not None


def stale_fanouts(session: Session, now: datetime) -> list[tuple[str, int]]:
    """Fan-outs not done whose entry went on the stream over :data:`STALE` ago (or never did)."""
    rows = session.execute(select(Fanout.kind, Fanout.ref_id).where(
        Fanout.done_at.is_(None), Fanout.requested_at < now - STALE,
        (Fanout.enqueued_at.is_(None)) | (Fanout.enqueued_at < now - STALE)).order_by(Fanout.requested_at))
    return [(kind, ref_id) for kind, ref_id in rows]


def chunks(items: Iterable[int], size: int) -> Iterable[list[int]]:
    batch: list[int] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
