"""The one notification service: every message goes to the inbox, and by WeChat when it may.

A :class:`Message` for a member is delivered in three steps, so no database transaction stays
open across the call to WeChat::

    record(session, ...)  -> Recorded     the inbox row, its deliveries, a reserved quota (commit)
    send(wechat, outbound) -> Sent        the subscribe message, outside any transaction
    settle(session, ...)                  the outcome; quota zeroed on 43101, given back on failure (commit)

:func:`notify` runs the three with its own transactions. The message's ``key`` is unique per member:
a second message with the same key delivers nothing. A subscribe message goes only when the kind
has a template in ``[notifications.templates]`` and the member holds quota for it (one per accepted
``wx.requestSubscribeMessage`` opt-in); a deal message whose store (or every push) the member muted
goes to the inbox only. Every delivery is a ``deliveries`` row (channel, outcome, errcode), and a
deal's ``pushes`` figure moves in the transaction that records the delivery, so it is exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from mallapp import deals, follows, members, wechat
from mallapp.db import Base, UTCDateTime, insert_or_nothing
from mallapp.deals import Deal
from mallapp.errors import Conflict, MallError, NotFound
from mallapp.points import BigId
from mallapp.settings import Settings
from mallapp.venue import Store

if TYPE_CHECKING:
    from mallapp.wechat import MallWeChatClient

KINDS = ("deal", "reminder")
# Muting (a store, or every push) silences these kinds on WeChat; the inbox still gets them.
MUTABLE_KINDS = ("deal",)
CHANNELS = ("inbox", "subscribe", "live")
# pending: reserved and being sent; muted / no_quota: not sent to WeChat; refused: WeChat's 43101;
# missed: the member's live connection closed before the message reached it; unknown: a send that a
# crash cut off between the call and its settlement (whether WeChat delivered it cannot be known).
OUTCOMES = ("sent", "pending", "muted", "no_quota", "refused", "failed", "missed", "unknown")
OPT_IN_RESULTS = ("accept", "reject", "ban", "filter")
NO_QUOTA_ERRCODE = 43101
_MAX_ID = 2**31 - 1


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
class Message:
    """What to tell a member. ``fields`` are extra values a template's data may name."""

    kind: str
    key: str
    title: str
    body: str = ""
    deal_id: int | None = None
    store_id: int | None = None
    page: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outbound:
    """A subscribe message recorded as pending, to send after the transaction commits."""

    delivery_id: int
    member_id: int
    openid: str
    template_id: str
    data: dict[str, dict[str, str]]
    page: str | None
    deal_id: int | None


@dataclass(frozen=True)
class Recorded:
    notification_id: int
    created: bool  # False: the key was used before, and nothing was delivered now
    subscribe: str | None  # the subscribe outcome so far (None: no template for the kind, or a replay)
    outbound: Outbound | None = None


@dataclass(frozen=True)
class Sent:
    outcome: str  # sent, refused or failed
    errcode: int | None = None
    msgid: int | None = None


# --- delivering ------------------------------------------------------------------------------------

def _fit(key: str, value: str) -> str:
    # WeChat refuses empty values and thing values longer than 20 characters.
    if key.startswith("thing"):
        value = value.strip()[:20]
    return value.strip() or "-"


def _data(template: Mapping[str, str], message: Message) -> dict[str, dict[str, str]]:
    values = {**message.fields, "title": message.title, "body": message.body}
    return {key: {"value": _fit(key, values.get(name, ""))} for key, name in template.items()}


def _deliver(session: Session, notification_id: int, channel: str, outcome: str, now: datetime,
             template_id: str | None = None) -> int:
    row = Delivery(notification_id=notification_id, channel=channel, outcome=outcome, template_id=template_id,
                   at=now)
    session.add(row)
    session.flush()
    return row.id


def _count_push(session: Session, deal_id: int | None) -> None:
    if deal_id is not None:
        session.execute(update(Deal).where(Deal.id == deal_id).values(pushes=Deal.pushes + 1))


def record(session: Session, settings: Settings, member_id: int, message: Message, now: datetime) -> Recorded:
    """Write the inbox item and its deliveries; reserve one quota when a subscribe message will go."""
    if message.kind not in KINDS or not 0 < len(message.key) <= 80:
        raise ValueError(f"a message has a kind in {KINDS} and a key of 1-80 characters")
    notification_id = insert_or_nothing(session, Notification, {
        "member_id": member_id, "kind": message.kind, "title": message.title[:80], "body": message.body[:1000],
        "deal_id": message.deal_id, "store_id": message.store_id, "page": message.page, "key": message.key,
        "created_at": now, "read_at": None}, ["member_id", "key"])
    if notification_id is None:
        existing = session.scalar(select(Notification.id).where(Notification.member_id == member_id,
                                                                Notification.key == message.key))
        return Recorded(notification_id=existing, created=False, subscribe=None)
    _deliver(session, notification_id, "inbox", "sent", now)
    _count_push(session, message.deal_id)
    template = settings.notifications.templates.get(message.kind)  # type: ignore[call-overload]
    if template is None:
        return Recorded(notification_id, True, None)
    tid = template.template_id
    if message.kind in MUTABLE_KINDS and follows.is_muted(session, member_id, message.store_id):
        _deliver(session, notification_id, "subscribe", "muted", now, tid)
        return Recorded(notification_id, True, "muted")
    reserved = session.execute(
        update(SubscribeQuota).where(SubscribeQuota.member_id == member_id, SubscribeQuota.template_id == tid,
                                     SubscribeQuota.remaining > 0)
        .values(remaining=SubscribeQuota.remaining - 1, updated_at=now)).rowcount
    if not reserved:
        _deliver(session, notification_id, "subscribe", "no_quota", now, tid)
        return Recorded(notification_id, True, "no_quota")
    delivery_id = _deliver(session, notification_id, "subscribe", "pending", now, tid)
    openid = members.get(session, member_id).openid
    return Recorded(notification_id, True, "pending", Outbound(
        delivery_id=delivery_id, member_id=member_id, openid=openid, template_id=tid,
        data=_data(template.data, message), page=message.page, deal_id=message.deal_id))


def send(client: MallWeChatClient, outbound: Outbound) -> Sent:
    """Send one subscribe message; WeChat's refusal is an outcome, not an error."""
    try:
        msgid = wechat.send_subscribe_message(client, outbound.openid, outbound.template_id, outbound.data,
                                              page=outbound.page)
    except MallError as exc:
        errcode = exc.details.get("errcode")
        return Sent("refused" if errcode == NO_QUOTA_ERRCODE else "failed", errcode)
    return Sent("sent", msgid=msgid)


def settle(session: Session, outbound: Outbound, sent: Sent, now: datetime) -> None:
    """Record how a pending subscribe message went, once; fix the member's quota to match."""
    settled = session.execute(
        update(Delivery).where(Delivery.id == outbound.delivery_id, Delivery.outcome == "pending")
        .values(outcome=sent.outcome, errcode=sent.errcode, msgid=sent.msgid, at=now)).rowcount
    if not settled:
        return
    quota = update(SubscribeQuota).where(SubscribeQuota.member_id == outbound.member_id,
                                         SubscribeQuota.template_id == outbound.template_id)
    if sent.outcome == "sent":
        _count_push(session, outbound.deal_id)
    elif sent.outcome == "refused":
        # WeChat holds no quota for this member and template: ours was wrong, start again from none.
        session.execute(quota.values(remaining=0, updated_at=now))
    else:
        # Not delivered: give the reserved message back. Should WeChat have used it after all, the
        # next send meets 43101 and the count is corrected then.
        session.execute(quota.values(remaining=SubscribeQuota.remaining + 1, updated_at=now))


def dispatch(sessions: sessionmaker[Session], client: MallWeChatClient, outbound: Sequence[Outbound],
             now: datetime) -> list[Sent]:
    """Send each outbound message, settling each in its own short transaction."""
    results = []
    for item in outbound:
        sent = send(client, item)
        with sessions.begin() as session:
            settle(session, item, sent, now)
        results.append(sent)
    return results


def notify(sessions: sessionmaker[Session], settings: Settings, client: MallWeChatClient, member_id: int,
           message: Message, now: datetime) -> Recorded:
    """Deliver one message: inbox always, WeChat when the member holds quota; once per key."""
    # Owns its transactions (unlike other services): the WeChat call must happen between two commits.
    with sessions.begin() as session:
        recorded = record(session, settings, member_id, message, now)
    if recorded.outbound is None:
        return recorded
    sent = dispatch(sessions, client, [recorded.outbound], now)[0]
    return Recorded(recorded.notification_id, True, sent.outcome)


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
    item = session.get(Notification, notification_id) if 0 < notification_id <= 2**62 else None
    if item is None or item.member_id != member_id:
        raise NotFound(f"no inbox item with id {notification_id}", code="notification.not_found")
    if item.read_at is None:
        item.read_at = now
        session.flush()
    return item


# --- deal announcements ----------------------------------------------------------------------------

def announce_key(deal_id: int) -> str:
    return f"deal:{deal_id}:announce"


def describe_benefit(benefit: Mapping[str, Any]) -> str:
    kind = benefit["kind"]
    if kind == "amount_off":
        return f"{benefit['amount_fen'] / 100:.2f} yuan off"
    if kind == "percent_off":
        return f"{benefit['percent']}% off"
    if kind == "bonus_points":
        return f"{benefit['points']} bonus points"
    return str(benefit["gift"])


def deal_message(session: Session, settings: Settings, deal: Deal, key: str) -> Message:
    """The message telling a member about a deal (an announcement, a proximity offer)."""
    store = session.get(Store, deal.store_id)
    local = settings.mall.tz
    return Message(
        kind="deal", key=key, title=deal.title, body=deal.text or describe_benefit(deal.benefit),
        deal_id=deal.id, store_id=deal.store_id, page=f"{settings.notifications.deal_page}?id={deal.id}",
        fields={"store": store.name if store else "", "benefit": describe_benefit(deal.benefit),
                "starts_at": deal.starts_at.astimezone(local).strftime("%Y-%m-%d %H:%M"),
                "ends_at": deal.ends_at.astimezone(local).strftime("%Y-%m-%d %H:%M")})


@dataclass(frozen=True)
class Announcement:
    deal: Deal
    replayed: bool  # True: announced before; nothing was delivered now
    outbound: list[Outbound]


def announce(session: Session, settings: Settings, merchant_id: int, deal_id: int, now: datetime) -> Announcement:
    """Tell the followers of a live deal's store about it, once per deal (before it opens or while on)."""
    deal = deals.get_own(session, merchant_id, deal_id, lock=True)
    if deal.status != "live" or deal.pack_key is not None or now >= deal.ends_at:
        raise Conflict("only a live deal that has not ended can be announced", code="deal.invalid_state",
                       details={"status": deal.status})
    if deal.announced_at is not None:
        return Announcement(deal, True, [])
    deal.announced_at = now
    message = deal_message(session, settings, deal, announce_key(deal.id))
    outbound = []
    for member_id in follows.followers(session, deal.store_id):
        # Only followers the deal's member rule lets claim: a message they cannot act on is noise.
        if not deals.member_matches(settings, deal.member_rule, members.get(session, member_id), now):
            continue
        recorded = record(session, settings, member_id, message, now)
        if recorded.outbound is not None:
            outbound.append(recorded.outbound)
    session.flush()
    return Announcement(deal, False, outbound)


def announcement_figures(session: Session, deal_id: int) -> tuple[int, int]:
    """How many members a deal's announcement reached in the inbox, and by subscribe message."""
    key = announce_key(deal_id)
    inbox_items = session.scalar(select(func.count()).where(Notification.deal_id == deal_id,
                                                            Notification.key == key)) or 0
    subscribed = session.scalar(
        select(func.count()).select_from(Delivery).join(Notification, Notification.id == Delivery.notification_id)
        .where(Notification.deal_id == deal_id, Notification.key == key, Delivery.channel == "subscribe",
               Delivery.outcome == "sent")) or 0
    return inbox_items, subscribed


@dataclass(frozen=True)
class Announced:
    """An announcement as its merchant sees it, once its WeChat messages went out."""

    deal_id: int
    announced_at: datetime | None
    replayed: bool
    inbox: int
    subscribe_sent: int
    pushes: int


def announce_and_send(sessions: sessionmaker[Session], settings: Settings, client: MallWeChatClient,
                      merchant_id: int, deal_id: int, now: datetime) -> Announced:
    """``announce``, committed, then its subscribe messages outside any transaction, then its figures."""
    # Owns its transactions, like notify: the WeChat calls must happen between two commits.
    with sessions.begin() as session:
        done = announce(session, settings, merchant_id, deal_id, now)
    dispatch(sessions, client, done.outbound, now)
    with sessions.begin() as session:
        inbox_items, sent = announcement_figures(session, deal_id)
        deal = session.get(deals.Deal, deal_id)
        assert deal is not None  # announce found it
        return Announced(deal_id, deal.announced_at, done.replayed, inbox_items, sent, deal.pushes)

