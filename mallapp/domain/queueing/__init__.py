"""Restaurant queues (排队取号): take a number remotely, see the parties ahead and the wait, be told.

The rules are in :mod:`mallapp.domain.queueing.service` (re-exported here), the tables in
:mod:`~mallapp.domain.queueing.models`, the wait estimate in :mod:`~mallapp.domain.queueing.estimator` (pure) and
its evaluation in ``python -m mallapp.domain.queueing.evaluate``.
"""

from mallapp.domain.queueing.service import (
    BandSpec,
    BandState,
    Done,
    Place,
    active_tickets,
    bands,
    call_next,
    cancel,
    lapse_due,
    member_ticket,
    member_tickets,
    model,
    open_store,
    own_store,
    place,
    seat,
    set_bands,
    set_open,
    skip,
    states,
    take,
    walk_in,
)

__all__ = ["BandSpec", "BandState", "Done", "Place", "active_tickets", "bands", "call_next", "cancel", "lapse_due",
           "member_ticket", "member_tickets", "model", "open_store", "own_store", "place", "seat", "set_bands", "set_open", "skip",
           "states", "take", "walk_in"]
