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
    ('ix_purchases_occurred_at', 'purchases', ['occurred_at']),
    ('ix_points_entries_created_at', 'points_entries', ['created_at']),
    ('ix_checkins_day', 'checkins', ['day']),
    ('ix_mall_visits_entered_at', 'mall_visits', ['entered_at']),
    ('ix_zone_visits_entered_at', 'zone_visits', ['entered_at']),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
