"""Every table, imported in one place so Alembic and the tests see the whole schema."""

from mallapp import checkin, coupons, deals, gifts, members, merchants, ops, points, purchases, venue  # noqa: F401
from mallapp.db import Base
from mallapp.proximity import history  # noqa: F401

metadata = Base.metadata
