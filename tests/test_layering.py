"""Layering: domain code, the CLI and the gateway package import no Flask; the schema matches the models."""

from __future__ import annotations

import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from mallapp.domain.models import metadata


def test_domain_modules_the_worker_and_the_gateway_do_not_import_flask():
    code = ("import sys, mallapp, mallapp.domain.points, mallapp.domain.purchases, mallapp.domain.checkin, mallapp.domain.members, "
            "mallapp.domain.gifts, mallapp.domain.deals, mallapp.domain.coupons, mallapp.domain.follows, mallapp.domain.notifications, mallapp.domain.auth, "
            "mallapp.domain.offers, mallapp.adapters.live, mallapp.domain.staff, mallapp.runtime, mallapp.adapters.wechat, "
            "mallapp.cli, mallapp.domain.venue, mallapp.domain.reservations, mallapp.domain.reservation_admin, mallapp.processes.clock, mallapp.domain.alerts, "
            "mallapp.domain.queueing, mallapp.domain.queueing.service, mallapp.domain.queueing.estimator, mallapp.domain.queueing.evaluate, "
            "mallapp.domain.venue_admin, mallapp.domain.ops, mallapp.processes.worker, mallapp.processes.worker, "
            "mallapp.domain.proximity.evaluate, mallapp.devtools.walks, beacons, beacons.__main__; "
            "sys.exit(1 if 'flask' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


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
