"""mallapp.db.get_or_404: the one lookup by id that answers NotFound, with the id-range guard."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text, update

from mallapp.db import MAX_BIG_ID, MAX_ID, get_or_404, id_in_range, reading
from mallapp.domain.notifications import Notification
from mallapp.domain.venue import Store
from mallapp.errors import NotFound

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


def _store(rt, **values) -> int:
    with rt.sessions.begin() as s:
        store = Store(name="Noodle Bar", floor=1, x=0.0, y=0.0, created_at=NOW, **values)
        s.add(store)
        s.flush()
        return store.id


def test_id_range_is_the_column_types():
    assert id_in_range(1) and id_in_range(MAX_ID) and not id_in_range(MAX_ID + 1)
    assert not id_in_range(0) and not id_in_range(-1)
    assert id_in_range(MAX_ID + 1, big=True) and id_in_range(MAX_BIG_ID, big=True)
    assert not id_in_range(MAX_BIG_ID + 1, big=True)


def test_get_or_404_finds_the_row_or_answers_not_found_with_the_callers_code(rt):
    store_id = _store(rt)
    with rt.sessions.begin() as s:
        assert get_or_404(s, Store, store_id, code="store.not_found").name == "Noodle Bar"
        # Out of range is not found before the database sees it (PostgreSQL would refuse the parameter).
        for missing in (store_id + 1000, 0, -5, MAX_ID + 1, 2**70):
            with pytest.raises(NotFound) as exc:
                get_or_404(s, Store, missing, code="store.not_found", what="store")
            assert exc.value.code == "store.not_found"
            assert exc.value.message == f"no store with id {missing}"
        with pytest.raises(NotFound, match="no store 9 of yours"):
            get_or_404(s, Store, 9, code="store.not_found", message="no store 9 of yours")
        # A big-id table takes ids past 2**31 to the database (and finds nothing there).
        with pytest.raises(NotFound, match="no notifications with id"):
            get_or_404(s, Notification, MAX_ID + 1, code="notification.not_found")


def test_a_row_the_caller_does_not_accept_is_not_found(rt):
    store_id = _store(rt, active=False)
    with rt.sessions.begin() as s:
        with pytest.raises(NotFound) as exc:
            get_or_404(s, Store, store_id, code="store.not_found", what="store", accept=lambda st: st.active)
        assert exc.value.message == f"no store with id {store_id}"
        assert get_or_404(s, Store, store_id, code="store.not_found", accept=lambda st: not st.active).id == store_id


def test_the_locked_lookup_reads_the_row_afresh(rt):
    store_id = _store(rt)
    with rt.sessions.begin() as s:
        stale = get_or_404(s, Store, store_id, code="store.not_found")
        assert stale.name == "Noodle Bar"
        # Renamed behind the session's back, as by another writer: the session keeps its copy.
        s.execute(update(Store).where(Store.id == store_id).values(name="Dumpling House")
                  .execution_options(synchronize_session=False))
        assert get_or_404(s, Store, store_id, code="store.not_found").name == "Noodle Bar"  # the session's copy
        locked = get_or_404(s, Store, store_id, code="store.not_found", lock=True)
        assert locked is stale and locked.name == "Dumpling House"
        with pytest.raises(NotFound):
            get_or_404(s, Store, store_id + 1000, code="store.not_found", lock=True)


def test_reading_runs_each_statement_on_its_own_on_postgresql_and_in_a_transaction_elsewhere(rt, backend):
    """now() is the transaction's start: equal across statements inside one, apart without (autocommit)."""
    if backend != "postgresql":
        with reading(rt.sessions) as session:
            assert session.in_transaction()
        return
    with reading(rt.sessions) as session:
        first = session.scalar(text("SELECT now()"))
        session.execute(text("SELECT pg_sleep(0.01)"))
        assert session.scalar(text("SELECT now()")) > first
    with rt.sessions.begin() as session:
        first = session.scalar(text("SELECT now()"))
        session.execute(text("SELECT pg_sleep(0.01)"))
        assert session.scalar(text("SELECT now()")) == first
