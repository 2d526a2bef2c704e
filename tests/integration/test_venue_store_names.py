"""Store names, looked up in one place (mallapp.domain.venue) for every message and page that shows them."""

from __future__ import annotations

from datetime import UTC, datetime

from mallapp.domain import venue
from mallapp.domain.venue import Store


def test_store_names_by_id_and_one_store_name(rt):
    with rt.sessions.begin() as s:
        stores = [Store(name=name, floor=1, x=0.0, y=0.0, created_at=datetime(2026, 3, 10, tzinfo=UTC))
                  for name in ("Noodle Bar", "Tea House")]
        s.add_all(stores)
        s.flush()
        a, b = (store.id for store in stores)
        assert venue.store_names(s, [a, b, a, b + 1000]) == {a: "Noodle Bar", b: "Tea House"}
        assert venue.store_names(s, []) == {}
        assert venue.store_name(s, b) == "Tea House"
        assert venue.store_name(s, b + 1000) == ""
