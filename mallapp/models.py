"""Every table, imported in one place so Alembic and the tests see the whole schema."""

from mallapp import checkin, gifts, members, merchants, points, purchases  # noqa: F401
from mallapp.db import Base

metadata = Base.metadata
