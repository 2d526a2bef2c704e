"""member segments: monthly member snapshots, lifecycle transitions and segment runs

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 14:45:00
"""

import sqlalchemy as sa
from alembic import op

import mallapp.db

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'member_snapshots',
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('month', sa.Date(), nullable=False),
        sa.Column('as_of', sa.Date(), nullable=False),
        sa.Column('window_start', sa.Date(), nullable=False),
        sa.Column('purchases', sa.Integer(), nullable=False),
        sa.Column('purchase_days', sa.Integer(), nullable=False),
        sa.Column('spend_fen', sa.BigInteger(), nullable=False),
        sa.Column('scored_spend_fen', sa.BigInteger(), nullable=False),
        sa.Column('visits', sa.Integer(), nullable=False),
        sa.Column('mean_gap_days', sa.Float(), nullable=True),
        sa.Column('first_purchase_at', mallapp.db.UTCDateTime(), nullable=True),
        sa.Column('last_purchase_at', mallapp.db.UTCDateTime(), nullable=True),
        sa.Column('t_tier', sa.String(length=2), nullable=True),
        sa.Column('pyramid', sa.String(length=8), nullable=True),
        sa.Column('rfm_r', sa.SmallInteger(), nullable=True),
        sa.Column('rfm_f', sa.SmallInteger(), nullable=True),
        sa.Column('rfm_m', sa.SmallInteger(), nullable=True),
        sa.Column('rfm_segment', sa.String(length=24), nullable=True),
        sa.Column('lifecycle', sa.String(length=12), nullable=False),
        sa.Column('p_alive', sa.Float(), nullable=True),
        sa.Column('expected_purchases_30', sa.Float(), nullable=True),
        sa.Column('expected_purchases_90', sa.Float(), nullable=True),
        sa.Column('expected_purchases_365', sa.Float(), nullable=True),
        sa.Column('expected_spend_fen', sa.BigInteger(), nullable=True),
        sa.Column('clv_fen', sa.BigInteger(), nullable=True),
        sa.Column('next_purchase_due', sa.Date(), nullable=True),
        sa.Column('computed_at', mallapp.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_snapshots_member_id_members')),
        sa.PrimaryKeyConstraint('member_id', 'month', name=op.f('pk_member_snapshots')),
    )
    op.create_index('ix_member_snapshots_month_lifecycle', 'member_snapshots', ['month', 'lifecycle'])
    op.create_table(
        'lifecycle_transitions',
        sa.Column('id', BigId, nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('from_state', sa.String(length=12), nullable=True),
        sa.Column('to_state', sa.String(length=12), nullable=False),
        sa.Column('cause', sa.String(length=40), nullable=False),
        sa.Column('created_at', mallapp.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'],
                                name=op.f('fk_lifecycle_transitions_member_id_members')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_lifecycle_transitions')),
        sa.UniqueConstraint('member_id', 'day', 'to_state',
                            name=op.f('uq_lifecycle_transitions_member_id_day_to_state')),
    )
    op.create_index(op.f('ix_lifecycle_transitions_member_id'), 'lifecycle_transitions', ['member_id'])
    op.create_index('ix_lifecycle_transitions_day_to_state', 'lifecycle_transitions', ['day', 'to_state'])
    op.create_table(
        'segment_runs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('month', sa.Date(), nullable=False),
        sa.Column('as_of', sa.Date(), nullable=False),
        sa.Column('started_at', mallapp.db.UTCDateTime(), nullable=False),
        sa.Column('finished_at', mallapp.db.UTCDateTime(), nullable=True),
        sa.Column('members', sa.Integer(), nullable=False),
        sa.Column('trigger', sa.String(length=12), nullable=False),
        sa.Column('parameters', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('requested_by', sa.String(length=64), nullable=True),
        sa.Column('error', sa.String(length=500), nullable=True),
        sa.Column('counts', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_segment_runs')),
    )
    op.create_index(op.f('ix_segment_runs_month'), 'segment_runs', ['month'])
    op.create_index('ix_segment_runs_status', 'segment_runs', ['status'])


def downgrade() -> None:
    op.drop_table('segment_runs')
    op.drop_table('lifecycle_transitions')
    op.drop_table('member_snapshots')
