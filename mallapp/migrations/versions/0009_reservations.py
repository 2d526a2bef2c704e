"""reservation_slots and reservations: restaurants' bookable slots and members' table bookings

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import mallapp.db

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reservation_slots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('starts_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.Column('duration_minutes', sa.SmallInteger(), nullable=False),
    sa.Column('party_min', sa.SmallInteger(), nullable=False),
    sa.Column('party_max', sa.SmallInteger(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('booked', sa.Integer(), nullable=False),
    sa.Column('open', sa.Boolean(), nullable=False),
    sa.Column('created_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint('booked >= 0 AND booked <= capacity', name=op.f('ck_reservation_slots_within_capacity')),
    sa.CheckConstraint('party_min >= 1 AND party_max >= party_min', name=op.f('ck_reservation_slots_party_band')),
    sa.CheckConstraint('duration_minutes > 0', name=op.f('ck_reservation_slots_duration_positive')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_reservation_slots_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reservation_slots')),
    sa.UniqueConstraint('store_id', 'starts_at', 'party_min',
                        name=op.f('uq_reservation_slots_store_id_starts_at_party_min'))
    )
    op.create_table('reservations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=False),
    sa.Column('slot_id', sa.Integer(), nullable=False),
    sa.Column('party_size', sa.SmallInteger(), nullable=False),
    sa.Column('starts_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.Column('ends_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.Column('changed_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.Column('reminded_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.Column('arrived_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.Column('arrived_by_staff_id', sa.Integer(), nullable=True),
    sa.Column('cancelled_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.Column('released_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.CheckConstraint("status IN ('booked', 'arrived', 'cancelled', 'no_show')", name=op.f('ck_reservations_status')),
    sa.CheckConstraint('party_size >= 1', name=op.f('ck_reservations_party_size_positive')),
    sa.ForeignKeyConstraint(['arrived_by_staff_id'], ['merchant_staff.id'],
                            name=op.f('fk_reservations_arrived_by_staff_id_merchant_staff')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_reservations_member_id_members')),
    sa.ForeignKeyConstraint(['slot_id'], ['reservation_slots.id'],
                            name=op.f('fk_reservations_slot_id_reservation_slots')),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_reservations_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reservations')),
    sa.UniqueConstraint('member_id', 'request_id', name=op.f('uq_reservations_member_id_request_id'))
    )
    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reservations_slot_id'), ['slot_id'], unique=False)
        batch_op.create_index('ix_reservations_member_id_store_id_starts_at',
                              ['member_id', 'store_id', 'starts_at'], unique=False)
        batch_op.create_index('ix_reservations_store_id_starts_at', ['store_id', 'starts_at'], unique=False)
        batch_op.create_index('ix_reservations_status_starts_at', ['status', 'starts_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.drop_index('ix_reservations_status_starts_at')
        batch_op.drop_index('ix_reservations_store_id_starts_at')
        batch_op.drop_index('ix_reservations_member_id_store_id_starts_at')
        batch_op.drop_index(batch_op.f('ix_reservations_slot_id'))
    op.drop_table('reservations')
    op.drop_table('reservation_slots')
