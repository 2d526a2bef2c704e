"""The schema Alembic builds, on SQLite and on PostgreSQL: exactly the models', and a ledger that only grows."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from mallapp.domain.models import metadata


def test_migrations_build_exactly_the_models_schema(database_url, backend):
    engine = create_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    engine.dispose()
    assert diff == []


@pytest.mark.parametrize("statement", ["UPDATE points_entries SET delta = 1", "DELETE FROM points_entries"])
def test_ledger_entries_cannot_be_changed_or_deleted(rt, statement):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from mallapp.domain import members, points

    with rt.sessions.begin() as session:
        member, _ = members.sign_in(session, openid="o-1", unionid=None, now=rt.now())
        points.credit(session, rt.settings, member.id, 10, "adjustment", source_ref="test", idempotency_key="k",
                      now=rt.now())
    with pytest.raises(DBAPIError, match="append-only"), rt.sessions.begin() as session:
        session.execute(text(statement))
