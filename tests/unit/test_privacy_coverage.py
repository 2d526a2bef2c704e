"""Every table keyed by member_id is in the member's data export (or left out with a stated reason)."""

from __future__ import annotations

from mallapp.domain import models, privacy


def test_every_table_with_a_member_id_column_is_exported_or_excused():
    tables = {t.name for t in models.metadata.sorted_tables if "member_id" in t.columns}
    covered = set(privacy.EXPORTED) | set(privacy.NOT_EXPORTED)
    assert tables - covered == set(), "add the new table to privacy.EXPORTED (or NOT_EXPORTED with a reason)"
    assert covered - tables == set(), "privacy lists a table that has no member_id column"


def test_what_erasure_deletes_is_exported_first():
    assert set(privacy.ERASED) <= set(privacy.EXPORTED)
