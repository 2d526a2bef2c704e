"""What the restaurant host's screens read: the merchant's restaurants, the board's places, the numbers called today.

The caller display on a TV shows numbers only, so :func:`recent_calls` gives tickets' numbers and times and
never who holds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mallapp.domain.queueing.estimator import Model
from mallapp.domain.queueing.models import QueueTicket
from mallapp.domain.queueing.service import Place, local_minute
from mallapp.settings import Settings


def recent_calls(session: Session, store_id: int, day: date, per_band: int) -> dict[str, list[QueueTicket]]:
    """Each band's tickets of ``day`` that staff called (call-next), newest call first, at most ``per_band`` each.

    A party seated or skipped straight from the line was never called out, so it is not here.
    """
    ranked = (select(QueueTicket.id, func.row_number().over(partition_by=QueueTicket.band,
                                                            order_by=(QueueTicket.called_at.desc(),
                                                                      QueueTicket.id.desc())).label("rank"))
              .where(QueueTicket.store_id == store_id, QueueTicket.day == day,
                     QueueTicket.call_request_id.is_not(None))
              .subquery())
    found = session.scalars(select(QueueTicket).join(ranked, ranked.c.id == QueueTicket.id)
                            .where(ranked.c.rank <= per_band)
                            .order_by(QueueTicket.band, QueueTicket.called_at.desc(), QueueTicket.id.desc()))
    out: dict[str, list[QueueTicket]] = {}
    for ticket in found:
        out.setdefault(ticket.band, []).append(ticket)
    return out


def places(settings: Settings, tickets: Sequence[QueueTicket], fitted: Model, now: datetime) -> dict[int, Place]:
    """Where each waiting ticket of a board stands, from the board's own rows: no query per ticket.

    ``tickets`` are all the store's active tickets (as :func:`~mallapp.domain.queueing.active_tickets` gives
    them), so the waiting ones before a ticket in its band are exactly the parties ahead that
    :func:`~mallapp.domain.queueing.place` counts.
    """
    minute = local_minute(settings, now)
    ahead: dict[str, tuple[int, int]] = {}
    out = {}
    for ticket in sorted(tickets, key=lambda t: (t.band, t.day, t.number or 0)):
        if ticket.status != "waiting":
            continue
        parties, people = ahead.get(ticket.band, (0, 0))
        out[ticket.id] = Place(parties, people, fitted.estimate(ticket.band, minute, parties))
        ahead[ticket.band] = (parties + 1, people + ticket.party_size)
    return out
