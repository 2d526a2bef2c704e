"""The restaurant host's read: the numbers called today (the caller display on a TV). The store picker reads
``GET /api/v1/merchant/stores``; calling, seating and skipping are the queue's own endpoints."""

from __future__ import annotations

from datetime import date, datetime

from flask import Blueprint
from pydantic import Field

from mallapp.api.core import Out, Query, current_merchant_id, operation, runtime, transaction
from mallapp.domain import queueing
from mallapp.domain.queueing import host

Day = date  # a field named date would shadow the type in the class body

bp = Blueprint("merchant_host", __name__, url_prefix="/api/v1/merchant")


class CallsQuery(Query):
    per_band: int = Field(default=5, ge=1, le=20, description="numbers per band, newest call first")


class CallOut(Out):
    ticket_no: str
    called_at: datetime
    status: str = Field(description="called (the party may still come), seated, skipped or lapsed")


class BandCallsOut(Out):
    code: str
    label: str
    min_party: int
    max_party: int | None = Field(description="null: no upper limit")
    open: bool
    waiting: int = Field(description="parties waiting")
    calls: list[CallOut] = Field(description="the numbers called today, newest first; the first is the last called")


class CallsOut(Out):
    store_id: int
    store_name: str
    date: Day = Field(description="the mall's day these calls belong to")
    now: datetime = Field(description="the server's time, for a display's clock")
    bands: list[BandCallsOut]


@operation(bp, "/stores/<int:store_id>/queue/calls", "GET",
           summary="The caller display: each band's numbers called today, the last called first (numbers only, "
                   "no member data)", auth="merchant", query=CallsQuery, response=CallsOut, errors=("store.not_found",))
def calls(store_id: int, query: CallsQuery) -> CallsOut:
    rt = runtime()
    now = rt.now()
    day = rt.settings.mall.local_day(now)
    with transaction() as session:
        store = queueing.own_store(session, current_merchant_id(), store_id)
        found = host.recent_calls(session, store.id, day, query.per_band)
        states = queueing.states(session, rt.settings, store.id, now)
        return CallsOut(store_id=store.id, store_name=store.name, date=day, now=now, bands=[BandCallsOut(
            code=s.band.code, label=s.band.label, min_party=s.band.min_party, max_party=s.band.max_party,
            open=s.band.is_open, waiting=s.waiting,
            calls=[CallOut(ticket_no=t.ticket_no, called_at=t.called_at, status=t.status)
                   for t in found.get(s.band.code, [])]) for s in states])
