"""Migration 0027 on a database that already holds stores: free-text categories become codes (unknown ones
"other"), existing names get their pinyin so the search works at once, and it undoes."""

from __future__ import annotations

import json
import secrets

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from mallapp.schema import alembic_config, upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return request.getfixturevalue("pg_server").create_database(f"dir_{secrets.token_hex(4)}")


def test_0027_maps_old_categories_computes_pinyin_and_downgrades(fresh_url):
    upgrade(fresh_url, "0026")
    engine = create_engine(fresh_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO stores (id, name, unit, category, floor, x, y, active, created_at) VALUES "
                          "(1, '星巴克', 'L2-05', 'cafe', 2, 0, 0, true, '2026-01-01 00:00:00'), "
                          "(2, 'Jade Garden Restaurant', 'L2-01', 'Restaurant', 2, 0, 0, true, '2026-01-01 00:00:00'), "
                          "(3, '重庆火锅', 'L3-01', 'hotpot', 3, 0, 0, true, '2026-01-01 00:00:00'), "
                          "(4, 'Desk', 'L1-01', '', 1, 0, 0, true, '2026-01-01 00:00:00')"))
    upgrade(fresh_url, "0027")
    with engine.begin() as conn:
        rows = [(r.id, r.category, r.pinyin_initials, r.pinyin_full, r.name_en, r.logo_url, r.hours,
                 json.loads(r.tags) if isinstance(r.tags, str) else r.tags)
                for r in conn.execute(text("SELECT * FROM stores ORDER BY id"))]
    assert rows == [(1, "cafe", "xbk", "xingbake", "", "", None, []),
                    (2, "dining", "jadegardenrestaurant", "jadegardenrestaurant", "", "", None, []),
                    (3, "other", "cqhg", "chongqinghuoguo", "", "", None, []),
                    (4, "other", "desk", "desk", "", "", None, [])]
    command.downgrade(alembic_config(fresh_url), "0026")
    with engine.begin() as conn:
        assert list(conn.execute(text("SELECT id, name FROM stores WHERE id = 1"))) == [(1, "星巴克")]
    engine.dispose()
