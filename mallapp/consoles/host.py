"""The restaurant host's touch screen (the queue by band, today's bookings) and the caller display for a TV.

Every staff member of the restaurant may use them (requirement ``merchant``). The pages read and change
through the queue's and reservations' own endpoints; the store picker and the display read
``mallapp.api.host``. The display shows numbers only: it is meant to hang where guests can see it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from mallapp.consoles import web

bp = Blueprint("host_console", __name__, url_prefix="/console/host")

STORES = "/api/v1/merchant/stores"


def _config(**extra: Any) -> dict[str, Any]:
    """The page's store (``?store=``, else the one this device used last, else the first) and poll interval."""
    store = request.args.get("store", "")
    return {"page_config": {"store": int(store) if store.isascii() and store.isdigit() and len(store) < 10 else None, **extra}}


@web.page(bp, "/", audience="staff", requirement="merchant", title="host.queue.title", section="host", order=10,
          template="console/host/queue.html", data=(STORES, "/api/v1/merchant/stores/{store_id}/queue"))
def queue() -> dict[str, Any]:
    return _config(poll_ms=4000)


@web.page(bp, "/reservations", audience="staff", requirement="merchant", title="host.bookings.title",
          section="host", order=20, template="console/host/reservations.html",
          data=(STORES, "/api/v1/merchant/stores/{store_id}/reservations",
                "/api/v1/merchant/stores/{store_id}/reservation-slots"))
def reservations() -> dict[str, Any]:
    return _config(poll_ms=30000)


@web.page(bp, "/display", audience="staff", requirement="merchant", title="host.display.title", section="host",
          order=30, template="console/host/display.html", nav=False,
          data=("/api/v1/merchant/stores/{store_id}/queue/calls",))
def display() -> dict[str, Any]:
    return _config(poll_ms=3000)
