"""Changes to the walkable graph at the same moment (PostgreSQL): each bumps the version once, none is lost, and
two first imports do not trip over the state row."""

from __future__ import annotations

import pytest
from factories import build_venue, race_in_transactions, small_graph

from mallapp.domain.wayfinding import edits, store
from mallapp.errors import MallError

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def test_two_first_imports_at_once_both_land_one_after_the_other(rt):
    build_venue(rt)
    results = race_in_transactions(rt, 2, lambda s, i: store.replace_graph(
        s, small_graph(), by=None, now=rt.now(), costs=rt.settings.wayfinding).version)
    assert sorted(results) == [1, 2], results
    with rt.sessions.begin() as s:
        assert store.graph_version(s) == 2 and len(store.load_graph(s).nodes) == 14


def test_concurrent_edits_each_bump_the_version_once(rt):
    build_venue(rt)
    with rt.sessions.begin() as s:
        store.replace_graph(s, small_graph(), by=None, now=rt.now(), costs=rt.settings.wayfinding)
    edges = ["stairs-1-2", "lift-1-2", "esc-1-2", "1-c4"]

    def close(session, i):
        return edits.set_closed(session, edges[i], True, by=None, now=rt.now(), costs=rt.settings.wayfinding).version

    results = race_in_transactions(rt, 4, close)
    done = [r for r in results if isinstance(r, int)]
    assert all(isinstance(r, int | MallError) for r in results), results
    with rt.sessions.begin() as s:
        assert store.graph_version(s) == 1 + len(done)
        assert sorted(done) == list(range(2, 2 + len(done)))
