"""campaigns: campaigns, their members' assignments (treated or control), and the sends stream's fan-outs

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 15:10:00
"""

import sqlalchemy as sa
from alembic import op

import mallapp.db

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'send_fanouts',
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('ref_id', sa.Integer(), nullable=False),
        sa.Column('requested_at', mallapp.db.UTCDateTime(), nullable=False),
        sa.Column('enqueued_at', mallapp.db.UTCDateTime(), nullable=True),
        sa.Column('done_at', mallapp.db.UTCDateTime(), nullable=True),
        sa.Column('members', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'ref_id', name=op.f('pk_send_fanouts')),
    )
    op.create_table(
        'campaigns',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('audience', sa.JSON(), nullable=False),
        sa.Column('steps', sa.JSON(), nullable=False),
        sa.Column('timing', sa.String(length=20), nullable=False),
        sa.Column('start_at', mallapp.db.UTCDateTime(), nullable=True),
        sa.Column('lifecycle_state', sa.String(length=12), nullable=True),
        sa.Column('ends_at', mallapp.db.UTCDateTime(), nullable=True),
        sa.Column('control_pct', sa.SmallInteger(), nullable=False),
        sa.Column('window_days', sa.SmallInteger(), nullable=False),
        sa.Column('seed', sa.BigInteger(), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=False),
        sa.Column('created_at', mallapp.db.UTCDateTime(), nullable=False),
        sa.Column('launched_at', mallapp.db.UTCDateTime(), nullable=True),
        sa.Column('started_at', mallapp.db.UTCDateTime(), nullable=True),
        sa.Column('finished_at', mallapp.db.UTCDateTime(), nullable=True),
        sa.Column('cancelled_at', mallapp.db.UTCDateTime(), nullable=True),
        sa.CheckConstraint("status IN ('draft', 'scheduled', 'running', 'finished', 'cancelled')",
                           name=op.f('ck_campaigns_status')),
        sa.CheckConstraint("timing IN ('now', 'at', 'lifecycle', 'next_purchase_due')", name=op.f('ck_campaigns_timing')),
        sa.CheckConstraint('control_pct >= 0 AND control_pct <= 50', name=op.f('ck_campaigns_control_pct_range')),
        sa.CheckConstraint('window_days > 0', name=op.f('ck_campaigns_window_positive')),
        sa.ForeignKeyConstraint(['created_by'], ['ops_users.id'], name=op.f('fk_campaigns_created_by_ops_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns')),
    )
    op.create_index('ix_campaigns_status', 'campaigns', ['status'])
    op.create_table(
        'campaign_assignments',
        sa.Column('id', BigId, nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('arm', sa.String(length=8), nullable=False),
        sa.Column('assigned_at', mallapp.db.UTCDateTime(), nullable=False),
        sa.Column('measure_until', mallapp.db.UTCDateTime(), nullable=False),
        sa.Column('next_step', sa.SmallInteger(), nullable=False),
        sa.Column('next_step_at', mallapp.db.UTCDateTime(), nullable=True),
        sa.Column('queued_at', mallapp.db.UTCDateTime(), nullable=True),
        sa.Column('last_sent_at', mallapp.db.UTCDateTime(), nullable=True),
        sa.CheckConstraint("arm IN ('treated', 'control')", name=op.f('ck_campaign_assignments_arm')),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'],
                                name=op.f('fk_campaign_assignments_campaign_id_campaigns')),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_campaign_assignments_member_id_members')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_assignments')),
        sa.UniqueConstraint('campaign_id', 'member_id', name=op.f('uq_campaign_assignments_campaign_id_member_id')),
    )
    op.create_index('ix_campaign_assignments_next_step_at', 'campaign_assignments', ['next_step_at'])
    op.create_index(op.f('ix_campaign_assignments_member_id'), 'campaign_assignments', ['member_id'])


def downgrade() -> None:
    op.drop_index(op.f('ix_campaign_assignments_member_id'), table_name='campaign_assignments')
    op.drop_index('ix_campaign_assignments_next_step_at', table_name='campaign_assignments')
    op.drop_table('campaign_assignments')
    op.drop_index('ix_campaigns_status', table_name='campaigns')
    op.drop_table('campaigns')
    op.drop_table('send_fanouts')
