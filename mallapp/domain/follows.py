"""Members follow stores (to hear of their specials first) and mute stores or all pushes.

Both are sets keyed by the database: following twice is one follow, unfollowing what is not
followed does nothing, and the same holds for mutes. A mute is ``all`` (every deal push) or
``store:<id>``; :mod:`mallapp.domain.notifications` reads them when it chooses channels.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mallapp.db import Base, UTCDateTime, get_or_404, insert_or_nothing
from mallapp.domain.points import BigId
from mallapp.domain.venue import Store

ALL = "all"


class Follow(Base):
    __tablename__ = "follows"
    __table_args__ = (UniqueConstraint("member_id", "store_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Mute(Base):
    __tablename__ = "mutes"
    __table_args__ = (UniqueConstraint("member_id", "scope"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    # "all", or "store:<id>" (with store_id set): one row per member and scope.
    scope: Mapped[str] = mapped_column(String(24))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


def store_scope(store_id: int) -> str:
    return f"store:{store_id}"


def _active_store(session: Session, store_id: int) -> Store:
    return get_or_404(session, Store, store_id, code="store.not_found", what="store", accept=lambda store: store.active)


# --- follows ---------------------------------------------------------------------------------------

def follow(session: Session, member_id: int, store_id: int, now: datetime) -> tuple[Follow, Store]:
    """Follow an active store; following again keeps the first follow."""
    store = _active_store(session, store_id)
    insert_or_nothing(session, Follow, {"member_id": member_id, "store_id": store_id, "created_at": now},
                      ["member_id", "store_id"])
    row = session.scalars(select(Follow).where(Follow.member_id == member_id, Follow.store_id == store_id)).one()
    return row, store


def unfollow(session: Session, member_id: int, store_id: int) -> None:
    """Stop following a store (nothing happens when the member did not follow it)."""
    session.execute(delete(Follow).where(Follow.member_id == member_id, Follow.store_id == store_id))


def following(session: Session, member_id: int) -> list[tuple[Follow, Store]]:
    """The stores the member follows, most recent first."""
    rows = session.execute(select(Follow, Store).join(Store, Store.id == Follow.store_id)
                           .where(Follow.member_id == member_id).order_by(Follow.id.desc()))
    return [(f, s) for f, s in rows]


def followers(session: Session, store_id: int) -> list[int]:
    """The ids of the members who follow the store, in the order they followed."""
    return list(session.scalars(select(Follow.member_id).where(Follow.store_id == store_id).order_by(Follow.id)))


# --- mutes -----------------------------------------------------------------------------------------

def mute(session: Session, member_id: int, store_id: int | None, now: datetime) -> None:
    """Mute one store's pushes, or every push when ``store_id`` is None."""
    if store_id is not None:
        _active_store(session, store_id)
    scope = ALL if store_id is None else store_scope(store_id)
    insert_or_nothing(session, Mute, {"member_id": member_id, "scope": scope, "store_id": store_id,
                                      "created_at": now}, ["member_id", "scope"])


def unmute(session: Session, member_id: int, store_id: int | None) -> None:
    """Lift a mute of one store, or the mute of every push when ``store_id`` is None."""
    scope = ALL if store_id is None else store_scope(store_id)
    session.execute(delete(Mute).where(Mute.member_id == member_id, Mute.scope == scope))


def mutes(session: Session, member_id: int) -> tuple[bool, list[int]]:
    """Whether the member muted every push, and the stores muted one by one (ascending)."""
    everything, stores = mutes_of(session, [member_id]).get(member_id, (False, set()))
    return everything, sorted(stores)


def mutes_of(session: Session, member_ids: Iterable[int]) -> dict[int, tuple[bool, set[int]]]:
    """For each of these members who muted anything: (every push muted, the stores muted)."""
    ids = list(set(member_ids))
    found: dict[int, tuple[bool, set[int]]] = {}
    if not ids:
        return found
    for member_id, scope, store_id in session.execute(
            select(Mute.member_id, Mute.scope, Mute.store_id).where(Mute.member_id.in_(ids))):
        everything, stores = found.get(member_id, (False, set()))
        if store_id is not None:
            stores.add(store_id)
        found[member_id] = (everything or scope == ALL, stores)
    return found


def muted(session: Session, pairs: Iterable[tuple[int, int | None]]) -> set[tuple[int, int | None]]:
    """Which (member, store) pairs are muted: every push, or that store's (a None store: every push only)."""
    pairs = list(pairs)
    held = mutes_of(session, (member_id for member_id, _ in pairs))
    out = set()
    for member_id, store_id in pairs:
        everything, stores = held.get(member_id, (False, set()))
        if everything or store_id in stores:
            out.add((member_id, store_id))
    return out
