"""queues: restaurant queue bands, tickets and the daily number counters

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 02:40:00
"""

import sqlalchemy as sa
from alembic import op

import mallapp.db

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('queue_bands',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=2), nullable=False),
    sa.Column('label', sa.String(length=40), nullable=False),
    sa.Column('min_party', sa.SmallInteger(), nullable=False),
    sa.Column('max_party', sa.SmallInteger(), nullable=True),
    sa.Column('is_open', sa.Boolean(), nullable=False),
    sa.Column('updated_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint('min_party >= 1 AND (max_party IS NULL OR max_party >= min_party)', name=op.f('ck_queue_bands_party_range')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_queue_bands_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_queue_bands')),
    sa.UniqueConstraint('store_id', 'code', name=op.f('uq_queue_bands_store_id_code'))
    )
    op.create_table('queue_counters',
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('band', sa.String(length=2), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('last_number', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_queue_counters_store_id_stores')),
    sa.PrimaryKeyConstraint('store_id', 'band', 'day', name=op.f('pk_queue_counters'))
    )
    op.create_table('queue_tickets',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('band', sa.String(length=2), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=True),
    sa.Column('ticket_no', sa.String(length=8), nullable=False),
    sa.Column('party_size', sa.SmallInteger(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=True),
    sa.Column('active_member_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('call_request_id', sa.String(length=64), nullable=True),
    sa.Column('taken_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.Column('taken_minute', sa.SmallInteger(), nullable=False),
    sa.Column('ahead_at_take', sa.Integer(), nullable=False),
    sa.Column('estimate_s', sa.Integer(), nullable=False),
    sa.Column('naive_estimate_s', sa.Integer(), nullable=False),
    sa.Column('called_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.Column('wait_s', sa.Integer(), nullable=True),
    sa.Column('lapses_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.Column('ended_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.Column('near_notified', sa.Boolean(), nullable=False),
    sa.CheckConstraint("status IN ('waiting', 'called', 'seated', 'skipped', 'cancelled', 'lapsed')", name=op.f('ck_queue_tickets_status')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_queue_tickets_member_id_members')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_queue_tickets_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_queue_tickets')),
    sa.UniqueConstraint('store_id', 'active_member_id', name=op.f('uq_queue_tickets_store_id_active_member_id')),
    sa.UniqueConstraint('store_id', 'band', 'day', 'number', name=op.f('uq_queue_tickets_store_id_band_day_number')),
    sa.UniqueConstraint('store_id', 'call_request_id', name=op.f('uq_queue_tickets_store_id_call_request_id')),
    sa.UniqueConstraint('store_id', 'request_id', name=op.f('uq_queue_tickets_store_id_request_id'))
    )
    with op.batch_alter_table('queue_tickets', schema=None) as batch_op:
        batch_op.create_index('ix_queue_tickets_member_id_id', ['member_id', 'id'], unique=False)
        batch_op.create_index('ix_queue_tickets_status_lapses_at', ['status', 'lapses_at'], unique=False)
        batch_op.create_index('ix_queue_tickets_store_id_band_status_day_number', ['store_id', 'band', 'status', 'day', 'number'], unique=False)
        batch_op.create_index('ix_queue_tickets_store_id_day', ['store_id', 'day'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('queue_tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_queue_tickets_store_id_day')
        batch_op.drop_index('ix_queue_tickets_store_id_band_status_day_number')
        batch_op.drop_index('ix_queue_tickets_status_lapses_at')
        batch_op.drop_index('ix_queue_tickets_member_id_id')

    op.drop_table('queue_tickets')
    op.drop_table('queue_counters')
    op.drop_table('queue_bands')
