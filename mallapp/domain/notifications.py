"""The one notification service: every message goes to the inbox, and by WeChat when it may.

A :class:`Message` for a member is delivered in three steps, so no database transaction stays
open across the call to WeChat and nothing leaves before the record of it is committed::

    record(session, ...)   -> Recorded    the inbox row, its deliveries, a reserved quota; the pending
                                          sends join the unit of work's outbox (the caller commits)
    send(senders, outbound) -> Sent       after the commit: live frames and subscribe messages
    settle(session, ...)                  the outcome; quota zeroed on 43101, given back on failure (commit)

The runtime hooks the last two to the commit of every unit of work (:func:`dispatch` on the
session's :class:`Outbox`), so a service only records: whoever commits sends, and a rolled-back
unit of work sends nothing. Messages leave by the :class:`Senders` port, which the runtime fills
with the live channel and WeChat (:mod:`mallapp.adapters`). The message's ``key`` is unique per member:
a second message with the same key delivers nothing. A subscribe message goes only when the kind
has a template in ``[notifications.templates]`` and the member holds quota for it (one per accepted
``wx.requestSubscribeMessage`` opt-in); a deal message whose store (or every push) the member muted
goes to the inbox only. Every delivery is a ``deliveries`` row (channel, outcome, errcode), and a
deal's ``pushes`` figure moves in the transaction that records the delivery, so it is exact.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from mallapp import i18n
from mallapp.db import Base, UTCDateTime, get_or_404, insert_many_or_nothing, insert_or_nothing
from mallapp.domain import deals, follows, members, sends
from mallapp.domain.benefits import describe_benefit
from mallapp.domain.deals import Deal
from mallapp.domain.points import BigId
from mallapp.domain.venue import store_names
from mallapp.errors import Conflict, MallError
from mallapp.settings import Settings

# deal: a deal (announcements, proximity offers); reminder: coupons and the like; queue: a restaurant
# queue ticket (tables ahead, table ready, lapsed); reservation: a table booking (reminder, released);
# campaign: a member campaign's step (mallapp.domain.campaigns).
KINDS = ("deal", "reminder", "queue", "reservation", "campaign")
# Muting (a store, or every push) silences these kinds on WeChat; the inbox still gets them.
MUTABLE_KINDS = ("deal", "campaign")
CHANNELS = ("inbox", "subscribe", "live")
# pending: reserved and being sent; muted / no_quota: not sent to WeChat; refused: WeChat's 43101;
# missed: the member's live connection closed before the message reached it; unknown: a send that a
# crash cut off between the call and its settlement (whether WeChat delivered it cannot be known).
OUTCOMES = ("sent", "pending", "muted", "no_quota", "refused", "failed", "missed", "unknown")
OPT_IN_RESULTS = ("accept", "reject", "ban", "filter")
NO_QUOTA_ERRCODE = 43101


class Notification(Base):
    """An inbox item: what the member was told, once per key."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("member_id", "key"),
                      Index("ix_notifications_member_id_id", "member_id", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(80))
    body: Mapped[str] = mapped_column(String(1000))
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    page: Mapped[str | None] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Delivery(Base):
    """One delivery of a notification on one channel, and how it went."""

    __tablename__ = "deliveries"
    __table_args__ = (CheckConstraint(f"channel IN {CHANNELS}", name="channel"),
                      CheckConstraint(f"outcome IN {OUTCOMES}", name="outcome"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    outcome: Mapped[str] = mapped_column(String(10))
    template_id: Mapped[str | None] = mapped_column(String(64))
    errcode: Mapped[int | None] = mapped_column(Integer)
    msgid: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class SubscribeQuota(Base):
    """How many subscribe messages of a template the member has agreed to receive."""

    __tablename__ = "subscribe_quotas"
    __table_args__ = (UniqueConstraint("member_id", "template_id"),
                      CheckConstraint("remaining >= 0", name="remaining_non_negative"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    template_id: Mapped[str] = mapped_column(String(64))
    remaining: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class Text:
    """What a member reads: the inbox item's title and body, and ``fields``, the values a subscribe
    template's data may name besides them (store, starts_at, benefit...)."""

    title: str
    body: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    """What to tell a member. ``text`` writes it in the member's locale: a function of the locale
    (``zh-CN``, ``en``) that renders the ``member`` catalogue's keys, called once per locale in a
    batch; a plain :class:`Text` reads the same in every locale (tests, a benchmark's baseline)."""

    kind: str
    key: str
    text: Text | Callable[[str], Text]
    deal_id: int | None = None
    store_id: int | None = None
    page: str | None = None

    def render(self, locale: str) -> Text:
        return self.text if isinstance(self.text, Text) else self.text(locale)


@dataclass(frozen=True)
class SubscribeOutbound:
    """A subscribe message recorded as pending, to send after the transaction commits."""

    delivery_id: int
    member_id: int
    deal_id: int | None
    openid: str
    template_id: str
    data: dict[str, dict[str, str]]
    page: str | None


@dataclass(frozen=True)
class LiveOutbound:
    """A live message recorded as pending: the JSON frame for the member's open mini-program."""

    delivery_id: int
    member_id: int
    deal_id: int | None
    text: str


Outbound = SubscribeOutbound | LiveOutbound


@dataclass(frozen=True)
class Recorded:
    notification_id: int
    created: bool  # False: the key was used before, and nothing was delivered now
    subscribe: str | None  # the subscribe outcome so far (None: not attempted, or a replay)
    outbound: Outbound | None = None
    live: str | None = None  # the live outcome so far (None: the member had no live connection)


@dataclass(frozen=True)
class Sent:
    outcome: str  # sent, refused or failed; a live message: sent or missed
    errcode: int | None = None
    msgid: int | None = None


class Senders(Protocol):
    """The port messages leave by; the runtime plugs in the live channel and WeChat (:mod:`mallapp.adapters`)."""

    def online(self, member_ids: Iterable[int]) -> set[int]:
        """Which of these members have a live connection open now."""
        ...

    def publish_live(self, messages: Collection[tuple[int, str]]) -> list[int]:
        """Hand each (member, JSON frame) to the member's live connections; how many servers took each."""
        ...

    def send_subscribe(self, openid: str, template_id: str, data: dict[str, dict[str, str]],
                       page: str | None) -> int:
        """Send a WeChat subscribe message; its msgid. WeChat's refusal raises a MallError with its errcode."""
        ...


OUTBOX = "mallapp.outbox"


@dataclass
class Outbox:
    """The sends a unit of work recorded, and how each went once the runtime sent them after its commit."""

    pending: list[Outbound] = field(default_factory=list)
    sent: dict[int, Sent] = field(default_factory=dict)  # delivery id -> outcome


def outbox(session: Session) -> Outbox:
    """The session's outbox (made on first use)."""
    box = session.info.get(OUTBOX)
    if box is None:
        box = session.info[OUTBOX] = Outbox()
    return box


def take_outbox(session: Session) -> Outbox | None:
    """Remove and return the session's outbox: after a commit to send it, after a rollback to drop it."""
    return session.info.pop(OUTBOX, None)


# --- delivering ------------------------------------------------------------------------------------

# WeChat's longest value per data type (characters, Chinese or not); longer ones are refused.
_LIMITS = {"thing": 20, "phrase": 5, "character_string": 32, "number": 32, "letter": 32, "car_number": 8,
           "name": 10}


def _fit(key: str, value: str) -> str:
    # WeChat refuses empty values and values past their type's length (thing: 20 characters).
    value = value.strip()
    kind = key.rstrip("0123456789")
    if kind in _LIMITS:
        value = value[:_LIMITS[kind]].strip()
    return value or "-"


def _data(template: Mapping[str, str], text: Text) -> dict[str, dict[str, str]]:
    values = {**text.fields, "title": text.title, "body": text.body}
    return {key: {"value": _fit(key, values.get(name, ""))} for key, name in template.items()}


def live_frame(notification_id: int, member_id: int, message: Message, text: Text, now: datetime) -> str:
    """The live frame: the inbox item's fields, as ``GET /api/v1/me/inbox`` shows them."""
    return _frame("notification", id=notification_id, kind=message.kind, title=text.title[:80],
                      body=text.body[:1000], deal_id=message.deal_id, store_id=message.store_id,
                      page=message.page, read_at=None,
                      created_at=now.astimezone(UTC).isoformat().replace("+00:00", "Z"))  # as the API writes it


def _frame(frame_type: str, /, **fields: Any) -> str:
    return json.dumps({"type": frame_type, **fields}, separators=(",", ":"), default=str)


def _count_pushes(session: Session, deal_ids: Iterable[int | None]) -> None:
    counts = Counter(d for d in deal_ids if d is not None)
    if counts:
        deals_table = Deal.__table__  # Core: an executemany of one UPDATE, not the ORM's per-key bulk mode
        session.execute(update(deals_table).where(deals_table.c.id == bindparam("deal"))
                        .values(pushes=deals_table.c.pushes + bindparam("n")),
                        # In id order: two batches counting the same deals never deadlock.
                        [{"deal": deal_id, "n": n} for deal_id, n in sorted(counts.items())])


def _reserve(session: Session, template_id: str, member_ids: list[int], now: datetime) -> Counter[int]:
    """Take one quota of the template per occurrence of a member holding some; how many each gave."""
    taken: Counter[int] = Counter()
    wanted = Counter(member_ids)
    # One statement per round: a member twice in the batch is in two rounds.
    for round_no in range(max(wanted.values(), default=0)):
        round_ids = [m for m, n in wanted.items() if n > round_no]
        taken.update(session.scalars(
            update(SubscribeQuota).where(SubscribeQuota.template_id == template_id,
                                         SubscribeQuota.member_id.in_(round_ids), SubscribeQuota.remaining > 0)
            .values(remaining=SubscribeQuota.remaining - 1, updated_at=now).returning(SubscribeQuota.member_id)
            .execution_options(synchronize_session=False)))
    return taken


def record(session: Session, settings: Settings, member_id: int, message: Message, now: datetime,
           online: Collection[int] = ()) -> Recorded:
    """Record one message (see :func:`record_many`)."""
    return record_many(session, settings, [(member_id, message)], now, online)[0]


def record_many(session: Session, settings: Settings, items: Sequence[tuple[int, Message]], now: datetime,
                online: Collection[int] = ()) -> list[Recorded]:
    """Write each (member, message)'s inbox item and deliveries; reserve what goes out after the commit.

    The channel, for a message not delivered before under its key: live when the member is in
    ``online`` (:meth:`Senders.online`), else a subscribe message when the kind has a template
    and the member holds quota for it (one is reserved). A deal message whose store the member
    muted goes to the inbox only. Each member reads the message in their locale; a message shared
    by many members is rendered once per locale. Statements are per batch, not per message.
    """
    for _, message in items:
        if message.kind not in KINDS or not 0 < len(message.key) <= 80:
            raise ValueError(f"a message has a kind in {KINDS} and a key of 1-80 characters")
    details = members.delivery_details(session, {member_id for member_id, _ in items})
    # (the id of a message's text, a locale) -> the text: messages sharing a text render it once per locale
    rendered: dict[tuple[int, str], Text] = {}

    def text_for(member_id: int, m: Message) -> Text:
        locale = details[member_id][1] if member_id in details else i18n.DEFAULT
        text = rendered.get((id(m.text), locale))
        if text is None:
            text = rendered[id(m.text), locale] = m.render(locale)
        return text

    texts = [text_for(member_id, m) for member_id, m in items]
    created = {(row.member_id, row.key): row.id for row in insert_many_or_nothing(
        session, Notification, [
            {"member_id": member_id, "kind": m.kind, "title": text.title[:80], "body": text.body[:1000],
             "deal_id": m.deal_id, "store_id": m.store_id, "page": m.page, "key": m.key, "created_at": now,
             "read_at": None} for (member_id, m), text in zip(items, texts, strict=True)],
        ["member_id", "key"], returning=("id", "member_id", "key"))}
    fresh = [(member_id, m, created.pop((member_id, m.key))) for member_id, m in items
             if (member_id, m.key) in created]  # pop: the same key twice in a batch is delivered once
    replays = {(member_id, m.key) for member_id, m in items} - {(member_id, m.key) for member_id, m, _ in fresh}
    earlier = _existing_ids(session, replays)

    deliveries: list[dict[str, Any]] = [
        {"notification_id": nid, "channel": "inbox", "outcome": "sent", "template_id": None} for _, _, nid in fresh]
    outcomes: dict[int, tuple[str | None, str | None]] = {}  # notification -> (subscribe, live)
    muted = follows.muted(session, [(member_id, m.store_id) for member_id, m, _ in fresh
                                    if m.kind in MUTABLE_KINDS])
    want_quota: dict[str, list[tuple[int, Message, int]]] = defaultdict(list)
    for member_id, m, nid in fresh:
        template = settings.notifications.templates.get(m.kind)  # type: ignore[call-overload]
        if m.kind in MUTABLE_KINDS and (member_id, m.store_id) in muted:
            if template is not None:
                deliveries.append({"notification_id": nid, "channel": "subscribe", "outcome": "muted",
                                   "template_id": template.template_id})
            outcomes[nid] = ("muted" if template is not None else None, None)
        elif member_id in online:
            deliveries.append({"notification_id": nid, "channel": "live", "outcome": "pending", "template_id": None})
            outcomes[nid] = (None, "pending")
        elif template is not None:
            want_quota[template.template_id].append((member_id, m, nid))
        else:
            outcomes[nid] = (None, None)
    for tid, wanting in want_quota.items():
        reserved = _reserve(session, tid, [member_id for member_id, _, _ in wanting], now)
        for member_id, _, nid in wanting:
            got = reserved[member_id] > 0
            reserved[member_id] -= got
            deliveries.append({"notification_id": nid, "channel": "subscribe",
                               "outcome": "pending" if got else "no_quota", "template_id": tid})
            outcomes[nid] = ("pending" if got else "no_quota", None)
    for row in deliveries:
        row.update(errcode=None, msgid=None, at=now)
    pending = {(row.notification_id, row.channel): row.id for row in insert_many_or_nothing(
        session, Delivery, deliveries, None, returning=("id", "notification_id", "channel", "outcome"))
        if row.outcome == "pending"}
    _count_pushes(session, [m.deal_id for _, m, _ in fresh])

    by_key: dict[tuple[int, str], Recorded] = {}
    for member_id, m, nid in fresh:
        subscribe, live_outcome = outcomes[nid]
        outbound: Outbound | None = None
        if live_outcome == "pending":
            outbound = LiveOutbound(pending[nid, "live"], member_id, m.deal_id,
                                    live_frame(nid, member_id, m, text_for(member_id, m), now))
        elif subscribe == "pending":
            template = settings.notifications.templates[m.kind]  # type: ignore[index]
            outbound = SubscribeOutbound(pending[nid, "subscribe"], member_id, m.deal_id, details[member_id][0],
                                         template.template_id, _data(template.data, text_for(member_id, m)), m.page)
        by_key[member_id, m.key] = Recorded(nid, True, subscribe, outbound, live_outcome)
    results = [by_key.get((member_id, m.key)) or Recorded(earlier[member_id, m.key], False, None)
               for member_id, m in items]
    outbox(session).pending.extend(r.outbound for r in results if r.outbound is not None)
    return results


def _existing_ids(session: Session, keys: set[tuple[int, str]]) -> dict[tuple[int, str], int]:
    if not keys:
        return {}
    rows = session.execute(select(Notification.id, Notification.member_id, Notification.key)
                           .where(Notification.member_id.in_({m for m, _ in keys}),
                                  Notification.key.in_({k for _, k in keys})))
    return {(row.member_id, row.key): row.id for row in rows if (row.member_id, row.key) in keys}


def send(senders: Senders, outbound: Sequence[Outbound]) -> list[Sent]:
    """Send each message; WeChat's refusal, or a live connection gone, is an outcome, not an error."""
    lives = [o for o in outbound if isinstance(o, LiveOutbound)]
    taken = iter(senders.publish_live([(o.member_id, o.text) for o in lives]) if lives else [])
    results = []
    for item in outbound:
        if isinstance(item, LiveOutbound):
            results.append(Sent("sent" if next(taken) else "missed"))
            continue
        try:
            msgid = senders.send_subscribe(item.openid, item.template_id, item.data, item.page)
        except MallError as exc:
            errcode = exc.details.get("errcode")
            results.append(Sent("refused" if errcode == NO_QUOTA_ERRCODE else "failed", errcode))
        else:
            results.append(Sent("sent", msgid=msgid))
    return results


def settle(session: Session, outbound: Sequence[Outbound], sent: Sequence[Sent], now: datetime) -> None:
    """Record how pending messages went, each once; fix the members' quotas to match."""
    live_by_outcome: dict[str, list[LiveOutbound]] = defaultdict(list)
    pushed: list[int | None] = []
    for item, result in zip(outbound, sent, strict=True):
        if isinstance(item, LiveOutbound):
            live_by_outcome[result.outcome].append(item)
        elif _settle_subscribe(session, item, result, now) and result.outcome == "sent":
            pushed.append(item.deal_id)
    for outcome, items in live_by_outcome.items():
        deal_of = {item.delivery_id: item.deal_id for item in items}
        settled = session.scalars(
            update(Delivery).where(Delivery.id.in_(deal_of), Delivery.outcome == "pending")
            .values(outcome=outcome, at=now).returning(Delivery.id).execution_options(synchronize_session=False))
        if outcome == "sent":
            pushed.extend(deal_of[delivery_id] for delivery_id in settled)
    _count_pushes(session, pushed)


def _settle_subscribe(session: Session, item: SubscribeOutbound, sent: Sent, now: datetime) -> bool:
    settled = session.execute(
        update(Delivery).where(Delivery.id == item.delivery_id, Delivery.outcome == "pending")
        .values(outcome=sent.outcome, errcode=sent.errcode, msgid=sent.msgid, at=now)).rowcount
    if not settled:
        return False
    quota = update(SubscribeQuota).where(SubscribeQuota.member_id == item.member_id,
                                         SubscribeQuota.template_id == item.template_id)
    if sent.outcome == "refused":
        # WeChat holds no quota for this member and template: ours was wrong, start again from none.
        session.execute(quota.values(remaining=0, updated_at=now))
    elif sent.outcome != "sent":
        # Not delivered: give the reserved message back. Should WeChat have used it after all, the
        # next send meets 43101 and the count is corrected then.
        session.execute(quota.values(remaining=SubscribeQuota.remaining + 1, updated_at=now))
    return True


def dispatch(sessions: sessionmaker[Session], senders: Senders, outbound: Sequence[Outbound],
             now: datetime, chunk: int = 200) -> list[Sent]:
    """Send the outbound messages and settle them, a chunk per short transaction.

    The runtime calls this with a unit of work's outbox after its commit; services only record.
    """
    results: list[Sent] = []
    for start in range(0, len(outbound), chunk):
        part = outbound[start:start + chunk]
        sent = send(senders, part)
        with sessions.begin() as session:
            settle(session, part, sent, now)
        results.extend(sent)
    return results


def notify(sessions: sessionmaker[Session], settings: Settings, senders: Senders, member_id: int,
           message: Message, now: datetime) -> Recorded:
    """Deliver one message: inbox always, live or WeChat when it can; once per key."""
    # Owns its transaction: its commit sends (the runtime's hook), so the outcome is known here.
    online = senders.online([member_id])
    with sessions.begin() as session:
        recorded = record(session, settings, member_id, message, now, online)
        box = outbox(session)
    if recorded.outbound is None:
        return recorded
    sent = box.sent.get(recorded.outbound.delivery_id)
    outcome = "pending" if sent is None else sent.outcome
    if isinstance(recorded.outbound, LiveOutbound):
        return replace(recorded, live=outcome)
    return replace(recorded, subscribe=outcome)


def settle_abandoned(session: Session, before: datetime) -> int:
    """Mark deliveries still pending since before ``before`` as unknown (a crash cut them off); how many.

    Whether WeChat delivered such a message cannot be known, so its quota is not given back.
    """
    return session.execute(update(Delivery).where(Delivery.outcome == "pending", Delivery.at < before)
                           .values(outcome="unknown").execution_options(synchronize_session=False)).rowcount


# --- quota -----------------------------------------------------------------------------------------

def known_templates(settings: Settings) -> set[str]:
    return {t.template_id for t in settings.notifications.templates.values()}


def quotas(session: Session, settings: Settings, member_id: int) -> dict[str, int]:
    """The member's remaining subscribe messages per configured template."""
    held = {tid: remaining for tid, remaining in session.execute(
        select(SubscribeQuota.template_id, SubscribeQuota.remaining).where(SubscribeQuota.member_id == member_id))}
    return {tid: held.get(tid, 0) for tid in sorted(known_templates(settings))}


def record_opt_ins(session: Session, settings: Settings, member_id: int, results: Mapping[str, str],
                   now: datetime) -> list[str]:
    """Add one quota per accepted template (a wx.requestSubscribeMessage result); return those ignored."""
    known = known_templates(settings)
    ignored = sorted(tid for tid in results if tid not in known)
    for tid, result in results.items():
        if result != "accept" or tid not in known:
            continue
        insert_or_nothing(session, SubscribeQuota, {"member_id": member_id, "template_id": tid, "remaining": 0,
                                                    "updated_at": now}, ["member_id", "template_id"])
        session.execute(update(SubscribeQuota).where(SubscribeQuota.member_id == member_id,
                                                     SubscribeQuota.template_id == tid)
                        .values(remaining=SubscribeQuota.remaining + 1, updated_at=now))
    return ignored


# --- the inbox -------------------------------------------------------------------------------------

def inbox(session: Session, member_id: int, cursor: int | None, limit: int) -> tuple[list[Notification], int | None]:
    """A page of the member's inbox, newest first, and the cursor of the next page (None at the end)."""
    query = select(Notification).where(Notification.member_id == member_id)
    if cursor is not None:
        query = query.where(Notification.id < cursor)
    rows = list(session.scalars(query.order_by(Notification.id.desc()).limit(limit + 1)))
    return rows[:limit], rows[limit - 1].id if len(rows) > limit else None


def unread(session: Session, member_id: int) -> int:
    return session.scalar(select(func.count()).where(Notification.member_id == member_id,
                                                     Notification.read_at.is_(None))) or 0


def mark_read(session: Session, member_id: int, notification_id: int, now: datetime) -> Notification:
    """Mark one of the member's inbox items read (the first time counts); another's is NotFound."""
    item = get_or_404(session, Notification, notification_id, code="notification.not_found",
                      what="inbox item", accept=lambda item: item.member_id == member_id)
    if item.read_at is None:
        item.read_at = now
        session.flush()
    return item


# --- deal announcements ----------------------------------------------------------------------------

def announce_key(deal_id: int) -> str:
    return f"deal:{deal_id}:announce"


def deal_text(settings: Settings, deal: Deal, store_name: str) -> Callable[[str], Text]:
    """How a deal reads in each locale: its title and text are the merchant's own words; the benefit, and
    the body when the merchant wrote none, come from the catalogue. Share it between the members told of
    the same deal (:func:`record_many` renders a shared text once per locale)."""
    local = settings.mall.tz
    starts_at = deal.starts_at.astimezone(local).strftime("%Y-%m-%d %H:%M")  # WeChat's time data format
    ends_at = deal.ends_at.astimezone(local).strftime("%Y-%m-%d %H:%M")
    title, body, benefit_data = deal.title, deal.text, dict(deal.benefit)

    def render(locale: str) -> Text:
        benefit = describe_benefit(benefit_data, locale)
        return Text(title=title, body=body or i18n.t(locale, "member.deal.body", store=store_name, benefit=benefit),
                    fields={"store": store_name, "benefit": benefit, "starts_at": starts_at, "ends_at": ends_at})
    return render


def deal_message(settings: Settings, deal: Deal, store_name: str, key: str,
                 text: Callable[[str], Text] | None = None) -> Message:
    """The message telling a member about a deal (an announcement, a proximity offer); ``text``: the
    deal's :func:`deal_text`, when several members' messages share it."""
    return Message(kind="deal", key=key, text=text or deal_text(settings, deal, store_name), deal_id=deal.id,
                   store_id=deal.store_id, page=f"{settings.notifications.deal_page}?id={deal.id}")


@dataclass(frozen=True)
class Announcement:
    deal: Deal
    replayed: bool  # True: announced before; nothing was delivered now


def announce(session: Session, settings: Settings, merchant_id: int, deal_id: int, now: datetime) -> Announcement:
    """Mark a live deal announced to its store's followers, once per deal (before it opens or while on).

    Nothing is sent here: the announcement's fan-out is recorded (:func:`mallapp.domain.sends.request_fanout`)
    and, once the caller commits, put on the sends stream, whose consumers message the followers a batch
    at a time (:func:`announcement_audience`, :func:`announce_batch`).
    """
    deal = deals.get_own(session, merchant_id, deal_id, lock=True)
    if deal.status != "live" or deal.pack_key is not None or now >= deal.ends_at:
        raise Conflict("only a live deal that has not ended can be announced", code="deal.invalid_state",
                       details={"status": deal.status})
    if deal.announced_at is not None:
        return Announcement(deal, True)
    deal.announced_at = now
    sends.request_fanout(session, "announcement", deal.id, now)
    session.flush()
    return Announcement(deal, False)


def announcement_audience(session: Session, settings: Settings, deal_id: int, now: datetime) -> list[int]:
    """The followers of an announced deal's store that its member rule lets claim (a message they cannot
    act on is noise), in the order they followed; none for a deal that was not announced."""
    deal = session.get(Deal, deal_id)
    if deal is None or deal.announced_at is None:
        return []
    followers = follows.followers(session, deal.store_id)
    return [m.id for m in members.get_many(session, followers)
            if deals.member_matches(settings, deal.member_rule, m, now)]


def fan_out_announcement(sessions: sessionmaker[Session], redis: Any, settings: Settings, deal_id: int,
                         now: datetime) -> int:
    """Put an announced deal's audience on the sends stream in batches and mark its fan-out done; how many."""
    with sessions.begin() as session:
        audience = announcement_audience(session, settings, deal_id, now)
    sends.enqueue_batches(redis, "announcement", deal_id, audience, settings.campaigns.batch_size)
    with sessions.begin() as session:
        sends.finish_fanout(session, "announcement", deal_id, len(audience), now)
    return len(audience)


def announce_batch(session: Session, settings: Settings, senders: Senders, deal_id: int,
                   member_ids: Sequence[int], now: datetime) -> int:
    """Tell these followers about an announced deal (once each: the message key); how many were told now."""
    deal = session.get(Deal, deal_id)
    if deal is None or deal.announced_at is None or not member_ids:
        return 0
    message = deal_message(settings, deal, store_names(session, [deal.store_id]).get(deal.store_id, ""),
                           announce_key(deal.id))
    recorded = record_many(session, settings, [(m, message) for m in member_ids], now, senders.online(member_ids))
    session.flush()
    return sum(1 for r in recorded if r.created)


def announcement_figures(session: Session, deal_id: int) -> tuple[int, int, int]:
    """How many members a deal's announcement reached: in the inbox, by subscribe message, live."""
    key = announce_key(deal_id)
    inbox_items = session.scalar(select(func.count()).where(Notification.deal_id == deal_id,
                                                            Notification.key == key)) or 0
    reached = {channel: n for channel, n in session.execute(
        select(Delivery.channel, func.count()).join(Notification, Notification.id == Delivery.notification_id)
        .where(Notification.deal_id == deal_id, Notification.key == key, Delivery.channel.in_(("subscribe", "live")),
               Delivery.outcome == "sent").group_by(Delivery.channel))}
    return inbox_items, reached.get("subscribe", 0), reached.get("live", 0)


@dataclass(frozen=True)
class Announced:
    """An announcement as its merchant sees it, once its messages went out."""

    deal_id: int
    announced_at: datetime | None
    replayed: bool
    inbox: int
    subscribe_sent: int
    live_sent: int
    pushes: int


def announced(session: Session, deal_id: int, replayed: bool) -> Announced:
    """A deal's announcement as its merchant sees it: read after the commit, once its messages went out."""
    inbox_items, subscribed, lived = announcement_figures(session, deal_id)
    deal = session.get_one(Deal, deal_id)
    return Announced(deal_id, deal.announced_at, replayed, inbox_items, subscribed, lived, deal.pushes)
