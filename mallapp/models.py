"""Every table, imported in one place so Alembic and the tests see the whole schema."""

from mallapp import (  # noqa: F401
    alerts,
    checkin,
    coupons,
    deals,
    follows,
    gifts,
    members,
    merchants,
    notifications,
    ops,
    points,
    purchases,
    reservations,
    rewards,
    staff,
    venue,
)
from mallapp.db import Base
from mallapp.proximity import history  # noqa: F401
from mallapp.queueing import models as queueing_models  # noqa: F401

metadata = Base.metadata
