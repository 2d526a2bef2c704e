"""The model registry: every table, imported in one place.

Whatever builds a session (the runtime of every process, Alembic, the tests) imports this, so every
mapper can resolve every foreign key whichever modules the process itself uses.
"""

from sqlalchemy.orm import configure_mappers

from mallapp.db import Base
from mallapp.domain import (  # noqa: F401
    alerts,
    campaigns,
    checkin,
    coupons,
    deals,
    desk,
    floors,
    follows,
    gifts,
    member_reports,
    members,
    merchants,
    notifications,
    ops,
    points,
    privacy,
    purchases,
    reservations,
    rewards,
    segments,
    sends,
    staff,
    venue,
)
from mallapp.domain.parking import models as parking_models  # noqa: F401
from mallapp.domain.proximity import history  # noqa: F401
from mallapp.domain.queueing import models as queueing_models  # noqa: F401
from mallapp.domain.wayfinding import store as wayfinding_store  # noqa: F401

metadata = Base.metadata


def check() -> None:
    """Configure every mapper and resolve every foreign key now, so a broken schema fails at start-up."""
    configure_mappers()
    for table in metadata.tables.values():
        for key in table.foreign_keys:
            _ = key.column  # resolves it, or raises NoReferencedTableError
