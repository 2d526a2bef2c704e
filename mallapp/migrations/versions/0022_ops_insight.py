"""ops insight: the indexes the operations dashboard and the footfall by hour read a day or a period by

Revision ID: 0022
Revises: 0020
Create Date: 2026-12-05 19:10:00
"""

from alembic import op

revision = '0022'
down_revision = '0020'
branch_labels = None
depends_on = None

# Each lets a day's (or a period's) rows be found by a range scan instead of reading the whole table:
# 20,000,000 purchases, tens of millions of points entries and visits on the members issue's benchmark set.
INDEXES = (
    # amount_fen included: a day's sales summed by an index-only scan (about 30,000 purchases a day on the
    # benchmark set, each on its own heap page: 300 ms through the heap, 10 ms from the index).
    ('ix_purchases_occurred_at', 'purchases', ['occurred_at'], ['amount_fen']),
    ('ix_points_entries_created_at', 'points_entries', ['created_at'], []),
    ('ix_checkins_day', 'checkins', ['day'], []),
    ('ix_mall_visits_entered_at', 'mall_visits', ['entered_at'], []),
    # What the footfall reports read of a visit rides in the index: an index-only scan of the period.
    ('ix_zone_visits_entered_at', 'zone_visits', ['entered_at'], ['zone_id', 'member_id', 'dwell_seconds']),
)


def upgrade() -> None:
    for name, table, columns, include in INDEXES:
        op.create_index(name, table, columns, postgresql_include=include)


def downgrade() -> None:
    for name, table, _, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
