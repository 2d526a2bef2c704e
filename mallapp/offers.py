"""Proximity offers: a member dwells near a store or sale item, and may hear of one live deal there.

A dwell event from the ``proximity:events`` stream (:mod:`mallapp.proximity.effects`) goes through
:func:`decide` (which deal, if any) and :func:`offer` (decide and record the delivery through
:mod:`mallapp.notifications`: the inbox always, a subscribe message when the member holds quota).
``python -m mallapp.offers`` (Procfile ``offers``) is the consumer.

Eligible deals: live, within validity, not sold out, not a new-member pack, targeted at the event
(its zone in ``zone_ids``, its store in ``store_ids`` or its sale item in ``sale_item_ids``), whose
member rule fits, followed by the member when ``followers_only``, under the member's
``per_member_limit``, and whose store the member has not muted.

Caps (``[offers]``): nothing when the member muted every push, in quiet hours (mall time), when
the event is older than ``max_event_age_s``, or when the member already had ``max_pushes_per_day``
proximity offers this mall-local day; a deal offered to the member within the last 24 h is not
eligible again.

The caps need no table of their own: every offer is a ``notifications`` row with the key
``offer:<member>:<deal>:<local date>``, written in the transaction that decides, so the row *is*
the push record (nothing is counted that was not delivered, or delivered and not counted).
Several consumers may decide for the same member at once, so :func:`decide` first locks the
member's row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's writers are serialized by
``BEGIN IMMEDIATE``): the count it reads stays true until its transaction commits. The key's
uniqueness makes a replay of the same decision deliver nothing twice.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from fractions import Fraction
from time import monotonic

from redis import Redis
from redis.exceptions import ResponseError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mallapp import deals, follows, members, notifications
from mallapp.coupons import Coupon, claims_by_deal
from mallapp.deals import Deal
from mallapp.notifications import Notification, Recorded
from mallapp.proximity.effects import EVENTS_STREAM
from mallapp.runtime import Runtime
from mallapp.settings import Settings

__all__ = ["GROUP", "Consumer", "Event", "decide", "offer", "offer_key", "rank_key"]

log = logging.getLogger("mallapp.offers")

GROUP = "offers"


@dataclass(frozen=True)
class Event:
    """A dwell event as the proximity worker publishes it."""

    id: int
    member_id: int
    zone_id: int
    store_id: int | None
    sale_item_id: int | None
    at: datetime

    @classmethod
    def from_fields(cls, fields: Mapping[bytes | str, bytes | str]) -> Event:
        """Parse a stream entry's fields (empty values are None); raises ValueError or KeyError."""
        raw = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
               for k, v in fields.items()}

        def optional(name: str) -> int | None:
            return int(raw[name]) if raw.get(name) else None

        return cls(id=int(raw["id"]), member_id=int(raw["member_id"]), zone_id=int(raw["zone_id"]),
                   store_id=optional("store_id"), sale_item_id=optional("sale_item_id"),
                   at=datetime.fromtimestamp(float(raw["at"]), UTC))


def offer_key(member_id: int, deal_id: int, local_day: str) -> str:
    return f"offer:{member_id}:{deal_id}:{local_day}"


def _key_prefix(member_id: int) -> str:
    return f"offer:{member_id}:"


# --- rules -----------------------------------------------------------------------------------------

def _parse_hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def in_quiet_hours(settings: Settings, now: datetime) -> bool:
    """Whether ``now`` falls in the quiet hours, mall time (a window may span midnight)."""
    start, end = _parse_hhmm(settings.offers.quiet_start), _parse_hhmm(settings.offers.quiet_end)
    local = now.astimezone(settings.mall.tz).time()
    if start == end:
        return False
    return start <= local < end if start < end else (local >= start or local < end)


def day_start(settings: Settings, now: datetime) -> datetime:
    """The start of the mall-local day holding ``now``, in UTC."""
    tz = settings.mall.tz
    local = now.astimezone(tz)
    return datetime.combine(local.date(), time(0), tz).astimezone(UTC)


def relevance(deal: Deal, event: Event) -> int:
    """How closely the deal targets where the member is: sale item 3, store 2, zone 1, none 0."""
    if event.sale_item_id is not None and event.sale_item_id in deal.sale_item_ids:
        return 3
    if event.store_id is not None and event.store_id in deal.store_ids:
        return 2
    return 1 if event.zone_id in deal.zone_ids else 0


def rank_key(deal: Deal, event: Event, claims_at_store: int) -> tuple[int, Fraction, Fraction, int]:
    """The deal's rank (higher is better), compared in order:

    1. relevance to the place: sale item match 3 > store match 2 > zone match 1;
    2. the member's history, a small term: ``1 / (1 + coupons the member holds of the store's
       deals)``, so a store the member has not yet taken coupons from comes first (spread the
       member's attention; don't train them to chase one store's discounts);
    3. the remaining quota fraction, ``(quota - claimed) / quota``, as the tie-breaker;
    4. the lower deal id (older deal), so the choice is deterministic.
    """
    return (relevance(deal, event), Fraction(1, 1 + claims_at_store),
            Fraction(deal.quota - deal.claimed, deal.quota), -deal.id)


def _claims_by_store(session: Session, member_id: int, store_ids: set[int]) -> dict[int, int]:
    if not store_ids:
        return {}
    rows = session.execute(select(Deal.store_id, func.count()).select_from(Coupon)
                           .join(Deal, Deal.id == Coupon.deal_id)
                           .where(Coupon.member_id == member_id, Deal.store_id.in_(store_ids))
                           .group_by(Deal.store_id))
    return {store_id: n for store_id, n in rows}


def decide(session: Session, settings: Settings, event: Event, now: datetime) -> Deal | None:
    """The deal to offer the member for this dwell event, or None (nothing eligible, or a cap holds).

    Locks the member's row: call it in the transaction that records the offer (see :func:`offer`).
    """
    caps = settings.offers
    if now - event.at > timedelta(seconds=caps.max_event_age_s) or in_quiet_hours(settings, now):
        return None
    # The lock makes the day's count below hold until this transaction commits (see the module doc).
    member = session.scalar(select(members.Member).where(members.Member.id == event.member_id)
                            .with_for_update().execution_options(populate_existing=True))
    if member is None:
        return None
    muted_all, muted_stores = follows.mutes(session, member.id)
    if muted_all:
        return None
    since = min(day_start(settings, now), now - timedelta(hours=24))
    earlier = session.execute(select(Notification.deal_id, Notification.created_at)
                              .where(Notification.member_id == member.id,
                                     Notification.key.startswith(_key_prefix(member.id), autoescape=True),
                                     Notification.created_at >= since)).all()
    today = day_start(settings, now)
    if sum(1 for _, at in earlier if at >= today) >= caps.max_pushes_per_day:
        return None
    recent = {deal_id for deal_id, at in earlier if at > now - timedelta(hours=24)}

    live = session.scalars(select(Deal).where(Deal.status == "live", Deal.starts_at <= now, Deal.ends_at > now,
                                              Deal.claimed < Deal.quota, Deal.pack_key.is_(None)))
    candidates = [d for d in live if relevance(d, event) and d.id not in recent and d.store_id not in muted_stores
                  and deals.member_matches(settings, d.member_rule, member, now)]
    if any(d.followers_only for d in candidates):
        followed = set(session.scalars(select(follows.Follow.store_id).where(follows.Follow.member_id == member.id)))
        candidates = [d for d in candidates if not d.followers_only or d.store_id in followed]
    held = claims_by_deal(session, member.id, [d.id for d in candidates])
    candidates = [d for d in candidates if held.get(d.id, 0) < d.per_member_limit]
    if not candidates:
        return None
    history = _claims_by_store(session, member.id, {d.store_id for d in candidates})
    return max(candidates, key=lambda d: rank_key(d, event, history.get(d.store_id, 0)))


def offer(session: Session, settings: Settings, event: Event, now: datetime) -> Recorded | None:
    """Decide, and record the chosen deal's message (inbox, and a reserved subscribe message); None: no offer.

    The caller commits, then sends ``recorded.outbound`` (``notifications.dispatch``).
    """
    deal = decide(session, settings, event, now)
    if deal is None:
        return None
    local_day = now.astimezone(settings.mall.tz).date().isoformat()
    message = notifications.deal_message(session, settings, deal, offer_key(event.member_id, deal.id, local_day))
    return notifications.record(session, settings, event.member_id, message, now)


# --- the consumer ----------------------------------------------------------------------------------

class Consumer:
    """One consumer of the ``offers`` group on the proximity-events stream.

    Each entry: decide and record in one transaction (commit), send the subscribe message if one
    was reserved (settled in its own transaction), then acknowledge. Entries another consumer left
    pending for ``claim_idle_ms`` are claimed (``XAUTOCLAIM``). A crash after the commit and before
    the acknowledgement replays the entry: the deal already offered is not offered again (its key,
    and the 24 h rule), but another eligible deal may be, still within the daily cap.
    """

    def __init__(self, rt: Runtime, consumer: str | None = None, *, count: int = 100, block_ms: int = 1000,
                 claim_idle_ms: int = 30_000) -> None:
        self.rt = rt
        self.redis: Redis = rt.redis
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.count = count
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.offered = 0
        self._last_claim = -math.inf

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(EVENTS_STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def step(self, block_ms: int | None = None) -> int:
        """Handle what others left pending too long, then new entries; the number handled."""
        entries = []
        now = monotonic()
        # Entries go idle only after claim_idle_ms: looking a few times per idle period is enough.
        if now - self._last_claim >= self.claim_idle_ms / 3000:
            self._last_claim = now
            reply = self.redis.xautoclaim(EVENTS_STREAM, GROUP, self.consumer, self.claim_idle_ms,
                                          start_id="0-0", count=self.count)
            entries = [e for e in reply[1] if e[1]]  # trimmed entries come back empty
        block = self.block_ms if block_ms is None else block_ms
        read = self.redis.xreadgroup(GROUP, self.consumer, {EVENTS_STREAM: ">"}, count=self.count,
                                     block=block or None)
        for _name, new in read or ():
            entries.extend(new)
        for entry_id, fields in entries:
            self.handle(fields)
            self.redis.xack(EVENTS_STREAM, GROUP, entry_id)
        return len(entries)

    def handle(self, fields: Mapping[bytes | str, bytes | str]) -> Recorded | None:
        """Decide and deliver for one entry (a malformed entry is logged and skipped)."""
        try:
            event = Event.from_fields(fields)
        except (KeyError, ValueError):
            log.warning("malformed proximity event skipped: %r", fields)
            return None
        rt = self.rt
        now = rt.now()
        with rt.sessions.begin() as session:
            recorded = offer(session, rt.settings, event, now)
        if recorded is None or not recorded.created:
            return recorded
        self.offered += 1
        if recorded.outbound is not None:
            notifications.dispatch(rt.sessions, rt.senders, [recorded.outbound], now)
        return recorded

    def run(self, stop: threading.Event) -> None:
        self.ensure_group()
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # keep consuming; unacknowledged entries come back
                log.exception("offers step failed")
                stop.wait(1.0)


def main(argv: list[str] | None = None) -> None:
    """``python -m mallapp.offers`` (Procfile ``offers``): one consumer of the proximity events."""
    from mallapp import logs
    from mallapp.runtime import build_runtime

    parser = argparse.ArgumentParser(prog="python -m mallapp.offers", description=main.__doc__)
    parser.add_argument("--consumer", help="this consumer's name in the group (default: host-pid)")
    parser.add_argument("--count", type=int, default=100, help="entries read per step")
    parser.add_argument("--block-ms", type=int, default=1000, help="how long a read waits for entries")
    parser.add_argument("--claim-idle-ms", type=int, default=30_000,
                        help="take over entries another consumer left unacknowledged this long")
    args = parser.parse_args(argv)
    rt = build_runtime()
    logs.configure(rt.settings.log_format, rt.settings.log_level)
    consumer = Consumer(rt, args.consumer, count=args.count, block_ms=args.block_ms,
                        claim_idle_ms=args.claim_idle_ms)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info("offers consumer %s starting", consumer.consumer)
    try:
        consumer.run(stop)
    finally:
        rt.close()


if __name__ == "__main__":
    main()
