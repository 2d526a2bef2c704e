"""Proximity offers: a member dwells near a store or sale item, and may hear of one live deal there.

A dwell event from the ``proximity:events`` stream (:mod:`mallapp.domain.proximity.effects`) goes through
:func:`decide` (which deal, if any) and :func:`offer` (decide and record the delivery through
:mod:`mallapp.domain.notifications`: the inbox always, a subscribe message when the member holds quota).
``mallapp offers`` (Procfile ``offers``, :mod:`mallapp.processes.offers`) is the consumer.

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

import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from fractions import Fraction

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mallapp.domain import deals, follows, members, notifications, venue
from mallapp.domain.coupons import Coupon
from mallapp.domain.deals import Deal
from mallapp.domain.notifications import Notification, Recorded, Senders
from mallapp.settings import Settings

__all__ = ["GROUP", "Event", "decide", "offer", "offer_key", "rank_key"]

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
    return f"{OFFER_PREFIX}{member_id}:{deal_id}:{local_day}"


OFFER_PREFIX = "offer:"


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


def _claims(session: Session, member_ids: list[int], deals_: list[Deal]) -> tuple[Counter[tuple[int, int]],
                                                                                  Counter[tuple[int, int]]]:
    """Coupons held per (member, deal) of these deals, and per (member, store) of any deal of those stores."""
    by_deal: Counter[tuple[int, int]] = Counter()
    by_store: Counter[tuple[int, int]] = Counter()
    if not member_ids or not deals_:
        return by_deal, by_store
    store_ids = {d.store_id for d in deals_}
    rows = session.execute(select(Coupon.member_id, Coupon.deal_id, Deal.store_id, func.count())
                           .join(Deal, Deal.id == Coupon.deal_id)
                           .where(Coupon.member_id.in_(member_ids), Deal.store_id.in_(store_ids))
                           .group_by(Coupon.member_id, Coupon.deal_id, Deal.store_id))
    for member_id, deal_id, store_id, n in rows:
        by_deal[member_id, deal_id] += n
        by_store[member_id, store_id] += n
    return by_deal, by_store


def live_deals(session: Session, now: datetime) -> list[Deal]:
    """The deals a proximity offer may choose from now: live, open, not sold out, not a pack's."""
    return list(session.scalars(select(Deal).where(Deal.status == "live", Deal.starts_at <= now, Deal.ends_at > now,
                                                   Deal.claimed < Deal.quota, Deal.pack_key.is_(None))))


def decide_many(session: Session, settings: Settings, events: Sequence[Event], now: datetime
                ) -> list[Deal | None]:
    """The deal to offer for each dwell event, in order, or None (nothing eligible, or a cap holds).

    An event counts against the caps of the events after it in the batch. Locks the members' rows
    (in id order, so two consumers never deadlock): call it in the transaction that records the
    offers (see :func:`offer_many`). A few statements per batch, whatever its size.
    """
    caps = settings.offers
    if not events or in_quiet_hours(settings, now):
        return [None] * len(events)
    ids = sorted({e.member_id for e in events if now - e.at <= timedelta(seconds=caps.max_event_age_s)})
    if not ids:
        return [None] * len(events)
    # The lock makes the counts below hold until this transaction commits (see the module doc).
    people = {m.id: m for m in session.scalars(
        select(members.Member).where(members.Member.id.in_(ids)).order_by(members.Member.id)
        .with_for_update().execution_options(populate_existing=True))}
    muted = follows.mutes_of(session, ids)
    today = settings.mall.day_bounds(settings.mall.local_day(now))[0]
    since = min(today, now - timedelta(hours=24))
    pushed_today: Counter[int] = Counter()
    recent: set[tuple[int, int]] = set()  # (member, deal) offered within 24 h
    for member_id, deal_id, at in session.execute(
            select(Notification.member_id, Notification.deal_id, Notification.created_at)
            .where(Notification.member_id.in_(ids), Notification.key.startswith(OFFER_PREFIX),
                   Notification.created_at >= since)):
        pushed_today[member_id] += at >= today
        if at > now - timedelta(hours=24):
            recent.add((member_id, deal_id))
    on_offer = live_deals(session, now)
    followed: set[tuple[int, int]] = set()
    if any(d.followers_only for d in on_offer):
        followed = {(member_id, store_id) for member_id, store_id in session.execute(
            select(follows.Follow.member_id, follows.Follow.store_id).where(follows.Follow.member_id.in_(ids)))}
    held, history = _claims(session, ids, on_offer)

    by_place: dict[tuple[str, int], list[Deal]] = defaultdict(list)
    for d in on_offer:
        for kind, place_ids in (("zone", d.zone_ids), ("store", d.store_ids), ("item", d.sale_item_ids)):
            for place_id in place_ids:
                by_place[kind, place_id].append(d)

    chosen: list[Deal | None] = [None] * len(events)
    for i, event in enumerate(events):
        member = people.get(event.member_id)
        if now - event.at > timedelta(seconds=caps.max_event_age_s):
            continue
        if member is None or pushed_today[member.id] >= caps.max_pushes_per_day:
            continue
        muted_all, muted_stores = muted.get(member.id, (False, set()))
        if muted_all:
            continue
        targeted = {d.id: d for kind, place_id in (("zone", event.zone_id), ("store", event.store_id),
                                                    ("item", event.sale_item_id))
                    for d in by_place.get((kind, place_id), ())}  # type: ignore[arg-type]
        candidates = [d for d in targeted.values()
                      if (member.id, d.id) not in recent and d.store_id not in muted_stores
                      and (not d.followers_only or (member.id, d.store_id) in followed)
                      and held[member.id, d.id] < d.per_member_limit
                      and deals.member_matches(settings, d.member_rule, member, now)]
        if not candidates:
            continue
        best = max(candidates, key=lambda d: rank_key(d, event, history[member.id, d.store_id]))
        chosen[i] = best
        pushed_today[member.id] += 1
        recent.add((member.id, best.id))
    return chosen


def decide(session: Session, settings: Settings, event: Event, now: datetime) -> Deal | None:
    """The deal to offer the member for this dwell event, or None (see :func:`decide_many`)."""
    return decide_many(session, settings, [event], now)[0]


def offer_many(session: Session, senders: Senders | None, settings: Settings, events: Sequence[Event], now: datetime
               ) -> list[Recorded | None]:
    """Decide, and record each chosen deal's message (inbox; live or a reserved subscribe message).

    ``senders`` tells who has the mini-program open (None: nobody, as in a test without live servers).
    The messages leave after the caller's commit.
    """
    picks = decide_many(session, settings, events, now)
    local_day = settings.mall.local_day(now).isoformat()
    chosen = [(e.member_id, d) for e, d in zip(events, picks, strict=True) if d is not None]
    names = venue.store_names(session, {deal.store_id for _, deal in chosen})
    texts = {deal.id: notifications.deal_text(settings, deal, names.get(deal.store_id, "")) for _, deal in chosen}
    messages = [notifications.deal_message(settings, deal, names.get(deal.store_id, ""),
                                           offer_key(member_id, deal.id, local_day), texts[deal.id])
                for member_id, deal in chosen]
    online = senders.online({m for m, _ in chosen}) if senders is not None and chosen else set()
    recorded = iter(notifications.record_many(session, settings, [(m, msg) for (m, _), msg in
                                                                  zip(chosen, messages, strict=True)], now, online))
    return [next(recorded) if d is not None else None for d in picks]


def offer(session: Session, settings: Settings, event: Event, now: datetime, senders: Senders | None = None
           ) -> Recorded | None:
    """Decide and record one event's offer (see :func:`offer_many`); None: no offer."""
    return offer_many(session, senders, settings, [event], now)[0]


# --- the consumer ----------------------------------------------------------------------------------
