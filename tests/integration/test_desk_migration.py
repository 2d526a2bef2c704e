"""Migration 0017 on a database that already holds members: their last four digits are filled in, and it undoes."""

from __future__ import annotations

import secrets

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from mallapp.schema import alembic_config, upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return request.getfixturevalue("pg_server").create_database(f"desk_{secrets.token_hex(4)}")


def test_0017_fills_the_last_four_digits_of_existing_phones_and_downgrades(fresh_url):
    upgrade(fresh_url, "0014")
    engine = create_engine(fresh_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO members (id, openid, gender, phone, referral_code, created_at) VALUES "
                          "(1, 'o-1', 'unknown', '+8613800138000', 'AAAAAAAA', '2026-01-01 00:00:00'), "
                          "(2, 'o-2', 'unknown', NULL, 'BBBBBBBB', '2026-01-01 00:00:00')"))
    upgrade(fresh_url, "0017")
    with engine.begin() as conn:
        assert list(conn.execute(text("SELECT id, phone_last4 FROM members ORDER BY id"))) == [(1, "8000"), (2, None)]
    command.downgrade(alembic_config(fresh_url), "0014")
    with engine.begin() as conn:
        assert list(conn.execute(text("SELECT id, phone FROM members ORDER BY id"))) == [(1, "+8613800138000"),
                                                                                       (2, None)]
    engine.dispose()
