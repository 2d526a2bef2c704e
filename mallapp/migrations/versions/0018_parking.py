"""parking: car parks, levels, bays and gates; plate bindings; sessions; payments and the benefits
they used; merchants' parking-coupon quota and its ledger; the daily reconciliation with the car park

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 17:00:00
"""

import sqlalchemy as sa
from alembic import op

import mallapp.db

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('car_parks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('vendor_park_code', sa.String(length=64), nullable=False),
    sa.Column('fee_source', sa.String(length=8), nullable=False),
    sa.Column('tariff', sa.JSON(), nullable=False),
    sa.Column('rules', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint("fee_source IN ('carpark', 'mall')", name=op.f('ck_car_parks_fee_source')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_car_parks')),
    sa.UniqueConstraint('code', name=op.f('uq_car_parks_code')),
    sa.UniqueConstraint('vendor_park_code', name=op.f('uq_car_parks_vendor_park_code'))
    )
    op.create_table('parking_levels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('car_park_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('floor', sa.SmallInteger(), nullable=False),
    sa.Column('spaces', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['car_park_id'], ['car_parks.id'], name=op.f('fk_parking_levels_car_park_id_car_parks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parking_levels')),
    sa.UniqueConstraint('car_park_id', 'code', name=op.f('uq_parking_levels_car_park_id_code'))
    )
    with op.batch_alter_table('parking_levels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parking_levels_car_park_id'), ['car_park_id'], unique=False)

    op.create_table('parking_quotas',
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('hours', sa.BigInteger(), nullable=False),
    sa.Column('fen', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint('hours >= 0 AND fen >= 0', name=op.f('ck_parking_quotas_non_negative')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_parking_quotas_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('merchant_id', name=op.f('pk_parking_quotas'))
    )
    op.create_table('parking_reconciliations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('car_park_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('ours', sa.Integer(), nullable=False),
    sa.Column('theirs', sa.Integer(), nullable=False),
    sa.Column('mismatches', sa.JSON(), nullable=False),
    sa.Column('ran_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['car_park_id'], ['car_parks.id'], name=op.f('fk_parking_reconciliations_car_park_id_car_parks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parking_reconciliations')),
    sa.UniqueConstraint('car_park_id', 'day', name=op.f('uq_parking_reconciliations_car_park_id_day'))
    )
    op.create_table('parking_sessions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('car_park_id', sa.Integer(), nullable=False),
    sa.Column('plate', sa.String(length=10), nullable=False),
    sa.Column('vehicle_type', sa.String(length=16), nullable=False),
    sa.Column('order_no', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=True),
    sa.Column('entered_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.Column('entry_gate', sa.String(length=16), nullable=True),
    sa.Column('exited_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.Column('exit_gate', sa.String(length=16), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('exit_kind', sa.String(length=8), nullable=True),
    sa.Column('unpaid_fen', sa.BigInteger(), nullable=True),
    sa.Column('gross_fen', sa.BigInteger(), nullable=True),
    sa.Column('paid_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.Column('bay_code', sa.String(length=16), nullable=True),
    sa.Column('bay_source', sa.String(length=8), nullable=True),
    sa.Column('bay_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint("bay_source IS NULL OR bay_source IN ('camera', 'qr', 'typed')", name=op.f('ck_parking_sessions_bay_source')),
    sa.CheckConstraint("exit_kind IS NULL OR exit_kind IN ('camera', 'staff', 'unknown')", name=op.f('ck_parking_sessions_exit_kind')),
    sa.CheckConstraint("status IN ('parked', 'left', 'closed_stale')", name=op.f('ck_parking_sessions_status')),
    sa.CheckConstraint('exited_at IS NULL OR exited_at >= entered_at', name=op.f('ck_parking_sessions_times')),
    sa.ForeignKeyConstraint(['car_park_id'], ['car_parks.id'], name=op.f('fk_parking_sessions_car_park_id_car_parks')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_parking_sessions_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parking_sessions')),
    sa.UniqueConstraint('car_park_id', 'order_no', name=op.f('uq_parking_sessions_car_park_id_order_no'))
    )
    with op.batch_alter_table('parking_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_parking_sessions_entered_at', ['entered_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_parking_sessions_member_id'), ['member_id'], unique=False)
        batch_op.create_index('ix_parking_sessions_plate_entered_at', ['plate', 'entered_at'], unique=False)
        batch_op.create_index('uq_parking_sessions_open_plate', ['car_park_id', 'plate'], unique=True, sqlite_where=sa.text('exited_at IS NULL'), postgresql_where=sa.text('exited_at IS NULL'))

    op.create_table('plate_bindings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('plate', sa.String(length=10), nullable=False),
    sa.Column('vehicle_type', sa.String(length=16), nullable=False),
    sa.Column('bound_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.Column('unbound_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.CheckConstraint("vehicle_type IN ('small', 'large', 'new_energy', 'motorcycle')", name=op.f('ck_plate_bindings_vehicle_type')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_plate_bindings_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plate_bindings'))
    )
    with op.batch_alter_table('plate_bindings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_plate_bindings_member_id'), ['member_id'], unique=False)
        batch_op.create_index('uq_plate_bindings_bound_plate', ['plate'], unique=True, sqlite_where=sa.text('unbound_at IS NULL'), postgresql_where=sa.text('unbound_at IS NULL'))

    op.create_table('parking_bays',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('car_park_id', sa.Integer(), nullable=False),
    sa.Column('level_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('x', sa.Double(), nullable=True),
    sa.Column('y', sa.Double(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['car_park_id'], ['car_parks.id'], name=op.f('fk_parking_bays_car_park_id_car_parks')),
    sa.ForeignKeyConstraint(['level_id'], ['parking_levels.id'], name=op.f('fk_parking_bays_level_id_parking_levels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parking_bays')),
    sa.UniqueConstraint('car_park_id', 'code', name=op.f('uq_parking_bays_car_park_id_code'))
    )
    with op.batch_alter_table('parking_bays', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parking_bays_level_id'), ['level_id'], unique=False)

    op.create_table('parking_gates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('car_park_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('level_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("kind IN ('entrance', 'exit')", name=op.f('ck_parking_gates_kind')),
    sa.ForeignKeyConstraint(['car_park_id'], ['car_parks.id'], name=op.f('fk_parking_gates_car_park_id_car_parks')),
    sa.ForeignKeyConstraint(['level_id'], ['parking_levels.id'], name=op.f('fk_parking_gates_level_id_parking_levels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parking_gates')),
    sa.UniqueConstraint('car_park_id', 'code', name=op.f('uq_parking_gates_car_park_id_code'))
    )
    with op.batch_alter_table('parking_gates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parking_gates_car_park_id'), ['car_park_id'], unique=False)

    op.create_table('parking_payments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('session_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.String(length=32), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=True),
    sa.Column('payer', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('gross_fen', sa.BigInteger(), nullable=False),
    sa.Column('discount_fen', sa.BigInteger(), nullable=False),
    sa.Column('cash_fen', sa.BigInteger(), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('items', sa.JSON(), nullable=False),
    sa.Column('quoted_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.Column('wechat_transaction_id', sa.String(length=64), nullable=True),
    sa.Column('carpark_trade_no', sa.String(length=64), nullable=True),
    sa.Column('refund_no', sa.String(length=64), nullable=True),
    sa.Column('refunded_fen', sa.BigInteger(), nullable=False),
    sa.Column('failure_code', sa.String(length=64), nullable=True),
    sa.Column('idempotency_key', sa.String(length=100), nullable=True),
    sa.Column('local_day', sa.Date(), nullable=False),
    sa.Column('created_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.Column('paid_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.Column('settled_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.CheckConstraint("payer IN ('member', 'public')", name=op.f('ck_parking_payments_payer')),
    sa.CheckConstraint("status IN ('pending', 'paying', 'paid', 'failed', 'abandoned')", name=op.f('ck_parking_payments_status')),
    sa.CheckConstraint('discount_fen + cash_fen <= gross_fen', name=op.f('ck_parking_payments_adds_up')),
    sa.CheckConstraint('gross_fen >= 0 AND discount_fen >= 0 AND cash_fen >= 0 AND points >= 0 AND refunded_fen >= 0 AND refunded_fen <= cash_fen', name=op.f('ck_parking_payments_amounts')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_parking_payments_member_id_members')),
    sa.ForeignKeyConstraint(['session_id'], ['parking_sessions.id'], name=op.f('fk_parking_payments_session_id_parking_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parking_payments')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_parking_payments_idempotency_key')),
    sa.UniqueConstraint('order_id', name=op.f('uq_parking_payments_order_id'))
    )
    with op.batch_alter_table('parking_payments', schema=None) as batch_op:
        batch_op.create_index('ix_parking_payments_local_day', ['local_day'], unique=False)
        batch_op.create_index(batch_op.f('ix_parking_payments_member_id'), ['member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_parking_payments_session_id'), ['session_id'], unique=False)
        batch_op.create_index('ix_parking_payments_status_created_at', ['status', 'created_at'], unique=False)
        batch_op.create_index('uq_parking_payments_active_seq', ['session_id', 'seq'], unique=True, sqlite_where=sa.text("status IN ('pending', 'paying', 'paid')"), postgresql_where=sa.text("status IN ('pending', 'paying', 'paid')"))

    op.create_table('parking_benefits',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('payment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('session_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('seconds', sa.Integer(), nullable=False),
    sa.Column('fen', sa.BigInteger(), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('coupon_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('local_day', sa.Date(), nullable=False),
    sa.Column('created_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.Column('voided_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.CheckConstraint("kind IN ('tier', 'spend', 'points', 'coupon')", name=op.f('ck_parking_benefits_kind')),
    sa.CheckConstraint('seconds >= 0 AND fen >= 0 AND points >= 0', name=op.f('ck_parking_benefits_amounts')),
    sa.ForeignKeyConstraint(['coupon_id'], ['coupons.id'], name=op.f('fk_parking_benefits_coupon_id_coupons')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_parking_benefits_member_id_members')),
    sa.ForeignKeyConstraint(['payment_id'], ['parking_payments.id'], name=op.f('fk_parking_benefits_payment_id_parking_payments')),
    sa.ForeignKeyConstraint(['session_id'], ['parking_sessions.id'], name=op.f('fk_parking_benefits_session_id_parking_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parking_benefits'))
    )
    with op.batch_alter_table('parking_benefits', schema=None) as batch_op:
        batch_op.create_index('ix_parking_benefits_member_id_local_day', ['member_id', 'local_day'], unique=False)
        batch_op.create_index(batch_op.f('ix_parking_benefits_payment_id'), ['payment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_parking_benefits_session_id'), ['session_id'], unique=False)

    op.create_table('parking_quota_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('unit', sa.String(length=8), nullable=False),
    sa.Column('delta', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=10), nullable=False),
    sa.Column('coupon_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('price_fen', sa.BigInteger(), nullable=True),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.Column('idempotency_key', sa.String(length=100), nullable=True),
    sa.Column('created_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint("reason IN ('bought', 'reserved', 'returned', 'adjusted')", name=op.f('ck_parking_quota_entries_reason')),
    sa.CheckConstraint("unit IN ('hours', 'fen')", name=op.f('ck_parking_quota_entries_unit')),
    sa.ForeignKeyConstraint(['coupon_id'], ['coupons.id'], name=op.f('fk_parking_quota_entries_coupon_id_coupons')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_parking_quota_entries_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parking_quota_entries')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_parking_quota_entries_idempotency_key'))
    )
    with op.batch_alter_table('parking_quota_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parking_quota_entries_coupon_id'), ['coupon_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_parking_quota_entries_merchant_id'), ['merchant_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('parking_quota_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_parking_quota_entries_merchant_id'))
        batch_op.drop_index(batch_op.f('ix_parking_quota_entries_coupon_id'))

    op.drop_table('parking_quota_entries')
    with op.batch_alter_table('parking_benefits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_parking_benefits_session_id'))
        batch_op.drop_index(batch_op.f('ix_parking_benefits_payment_id'))
        batch_op.drop_index('ix_parking_benefits_member_id_local_day')

    op.drop_table('parking_benefits')
    with op.batch_alter_table('parking_payments', schema=None) as batch_op:
        batch_op.drop_index('uq_parking_payments_active_seq', sqlite_where=sa.text("status IN ('pending', 'paying', 'paid')"), postgresql_where=sa.text("status IN ('pending', 'paying', 'paid')"))
        batch_op.drop_index('ix_parking_payments_status_created_at')
        batch_op.drop_index(batch_op.f('ix_parking_payments_session_id'))
        batch_op.drop_index(batch_op.f('ix_parking_payments_member_id'))
        batch_op.drop_index('ix_parking_payments_local_day')

    op.drop_table('parking_payments')
    with op.batch_alter_table('parking_gates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_parking_gates_car_park_id'))

    op.drop_table('parking_gates')
    with op.batch_alter_table('parking_bays', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_parking_bays_level_id'))

    op.drop_table('parking_bays')
    with op.batch_alter_table('plate_bindings', schema=None) as batch_op:
        batch_op.drop_index('uq_plate_bindings_bound_plate', sqlite_where=sa.text('unbound_at IS NULL'), postgresql_where=sa.text('unbound_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_plate_bindings_member_id'))

    op.drop_table('plate_bindings')
    with op.batch_alter_table('parking_sessions', schema=None) as batch_op:
        batch_op.drop_index('uq_parking_sessions_open_plate', sqlite_where=sa.text('exited_at IS NULL'), postgresql_where=sa.text('exited_at IS NULL'))
        batch_op.drop_index('ix_parking_sessions_plate_entered_at')
        batch_op.drop_index(batch_op.f('ix_parking_sessions_member_id'))
        batch_op.drop_index('ix_parking_sessions_entered_at')

    op.drop_table('parking_sessions')
    op.drop_table('parking_reconciliations')
    op.drop_table('parking_quotas')
    with op.batch_alter_table('parking_levels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_parking_levels_car_park_id'))

    op.drop_table('parking_levels')
    op.drop_table('car_parks')
