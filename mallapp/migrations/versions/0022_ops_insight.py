"""ops insight: the indexes the operations dashboard reads a day by, and zone_hours, the hourly rollup of zone
visits the footfall heat maps read a period from (filled here from the visits recorded so far)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 19:10:00
"""

import sqlalchemy as sa
from alembic import op

import mallapp.db

revision = '0022'
down_revision = '0021'
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
    op.create_table(
        'zone_hours',
        sa.Column('zone_id', sa.Integer(), nullable=False),
        sa.Column('hour_start', mallapp.db.UTCDateTime(), nullable=False),
        sa.Column('visits', sa.Integer(), nullable=False),
        sa.Column('dwell_seconds', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['zone_id'], ['zones.id'], name=op.f('fk_zone_hours_zone_id_zones')),
        sa.PrimaryKeyConstraint('zone_id', 'hour_start', name=op.f('pk_zone_hours')),
    )
    op.create_index('ix_zone_hours_hour_start', 'zone_hours', ['hour_start'])
    hour = ("date_trunc('hour', entered_at)" if op.get_bind().dialect.name == 'postgresql'
            else "strftime('%Y-%m-%d %H:00:00.000000', entered_at)")
    op.execute(f"INSERT INTO zone_hours (zone_id, hour_start, visits, dwell_seconds) "
               f"SELECT zone_id, {hour}, count(*), sum(dwell_seconds) FROM zone_visits GROUP BY zone_id, {hour}")


def downgrade() -> None:
    op.drop_index('ix_zone_hours_hour_start', table_name='zone_hours')
    op.drop_table('zone_hours')
    for name, table, _, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
