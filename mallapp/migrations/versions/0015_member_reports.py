"""member reports: precomputed report bodies per month, and the indexes the live member lists read by

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 15:00:00
"""

import sqlalchemy as sa
from alembic import op

import mallapp.db

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'member_reports',
        sa.Column('month', sa.Date(), nullable=False),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('as_of', sa.Date(), nullable=False),
        sa.Column('computed_at', mallapp.db.UTCDateTime(), nullable=False),
        sa.Column('body', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('month', 'kind', name=op.f('pk_member_reports')),
    )
    op.create_index('ix_member_snapshots_month_last_purchase', 'member_snapshots',
                    ['month', 'last_purchase_at', 'member_id'])
    op.create_index('ix_member_snapshots_month_lifecycle_member', 'member_snapshots',
                    ['month', 'lifecycle', 'member_id'])
    op.create_index('ix_members_created_at', 'members', ['created_at'])


def downgrade() -> None:
    op.drop_index('ix_members_created_at', table_name='members')
    op.drop_index('ix_member_snapshots_month_lifecycle_member', table_name='member_snapshots')
    op.drop_index('ix_member_snapshots_month_last_purchase', table_name='member_snapshots')
    op.drop_table('member_reports')
