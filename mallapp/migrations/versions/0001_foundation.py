"""foundation: members, points ledger, check-in, merchants, purchases

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

import mallapp.db

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('unionid', sa.String(length=64), nullable=True),
    sa.Column('nickname', sa.String(length=40), nullable=True),
    sa.Column('gender', sa.String(length=8), nullable=False),
    sa.Column('birthday', sa.Date(), nullable=True),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('referral_code', sa.String(length=8), nullable=False),
    sa.Column('referred_by_id', sa.Integer(), nullable=True),
    sa.Column('tier', sa.String(length=16), nullable=True),
    sa.Column('created_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint("gender IN ('unknown', 'male', 'female')", name=op.f('ck_members_gender')),
    sa.ForeignKeyConstraint(['referred_by_id'], ['members.id'], name=op.f('fk_members_referred_by_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_members')),
    sa.UniqueConstraint('openid', name=op.f('uq_members_openid')),
    sa.UniqueConstraint('referral_code', name=op.f('uq_members_referral_code'))
    )
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_members_unionid'), ['unionid'], unique=False)

    op.create_table('merchants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('api_key_hash', sa.String(length=64), nullable=False),
    sa.Column('key_hint', sa.String(length=12), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchants')),
    sa.UniqueConstraint('api_key_hash', name=op.f('uq_merchants_api_key_hash'))
    )
    op.create_table('checkins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('streak', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=12), nullable=False),
    sa.Column('created_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_checkins_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkins')),
    sa.UniqueConstraint('member_id', 'day', name=op.f('uq_checkins_member_id_day'))
    )
    op.create_table('points_accounts',
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=False),
    sa.Column('debt', sa.BigInteger(), nullable=False),
    sa.Column('expiry_check_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.CheckConstraint('balance >= 0', name=op.f('ck_points_accounts_balance_not_negative')),
    sa.CheckConstraint('debt >= 0', name=op.f('ck_points_accounts_debt_not_negative')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_points_accounts_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_points_accounts'))
    )
    op.create_table('points_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('delta', sa.BigInteger(), nullable=False),
    sa.Column('balance_after', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('source_ref', sa.String(length=80), nullable=False),
    sa.Column('idempotency_key', sa.String(length=160), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.Column('created_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint('balance_after >= 0', name=op.f('ck_points_entries_balance_after_not_negative')),
    sa.CheckConstraint('delta <> 0', name=op.f('ck_points_entries_delta_not_zero')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_points_entries_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_entries')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_points_entries_idempotency_key'))
    )
    with op.batch_alter_table('points_entries', schema=None) as batch_op:
        batch_op.create_index('ix_points_entries_member_id_id', ['member_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_points_entries_source_ref'), ['source_ref'], unique=False)

    op.create_table('purchases',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('receipt_no', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('refunded_fen', sa.BigInteger(), nullable=False),
    sa.Column('points_earned', sa.Integer(), nullable=False),
    sa.Column('birthday_bonus', sa.Integer(), nullable=False),
    sa.Column('points_reversed', sa.Integer(), nullable=False),
    sa.Column('occurred_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.Column('created_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint('amount_fen > 0', name=op.f('ck_purchases_amount_positive')),
    sa.CheckConstraint('refunded_fen >= 0 AND refunded_fen <= amount_fen', name=op.f('ck_purchases_refund_in_range')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_purchases_member_id_members')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_purchases_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_purchases')),
    sa.UniqueConstraint('merchant_id', 'receipt_no', name=op.f('uq_purchases_merchant_id_receipt_no'))
    )
    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_purchases_member_id'), ['member_id'], unique=False)

    op.create_table('gift_redemptions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('gift_code', sa.String(length=40), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('pickup_code', sa.String(length=12), nullable=False),
    sa.Column('idempotency_key', sa.String(length=100), nullable=False),
    sa.Column('created_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['points_entries.id'], name=op.f('fk_gift_redemptions_entry_id_points_entries')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_gift_redemptions_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gift_redemptions')),
    sa.UniqueConstraint('member_id', 'idempotency_key', name=op.f('uq_gift_redemptions_member_id_idempotency_key')),
    sa.UniqueConstraint('pickup_code', name=op.f('uq_gift_redemptions_pickup_code'))
    )
    with op.batch_alter_table('gift_redemptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gift_redemptions_member_id'), ['member_id'], unique=False)

    op.create_table('points_lots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('remaining', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.CheckConstraint('remaining >= 0 AND remaining <= amount', name=op.f('ck_points_lots_remaining_in_range')),
    sa.ForeignKeyConstraint(['entry_id'], ['points_entries.id'], name=op.f('fk_points_lots_entry_id_points_entries')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_points_lots_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_lots')),
    sa.UniqueConstraint('entry_id', name=op.f('uq_points_lots_entry_id'))
    )
    with op.batch_alter_table('points_lots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_points_lots_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index('ix_points_lots_member_open', ['member_id', 'remaining', 'expires_at'], unique=False)

    op.create_table('refunds',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('refund_no', sa.String(length=64), nullable=False),
    sa.Column('purchase_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('points_reversed', sa.Integer(), nullable=False),
    sa.Column('points_taken', sa.Integer(), nullable=False),
    sa.Column('points_owed', sa.Integer(), nullable=False),
    sa.Column('points_lapsed', sa.Integer(), nullable=False),
    sa.Column('created_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint('amount_fen > 0', name=op.f('ck_refunds_amount_positive')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_refunds_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['purchase_id'], ['purchases.id'], name=op.f('fk_refunds_purchase_id_purchases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refunds')),
    sa.UniqueConstraint('merchant_id', 'refund_no', name=op.f('uq_refunds_merchant_id_refund_no'))
    )
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refunds_purchase_id'), ['purchase_id'], unique=False)

    op.create_table('points_allocations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('debit_entry_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('lot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_points_allocations_amount_positive')),
    sa.ForeignKeyConstraint(['debit_entry_id'], ['points_entries.id'], name=op.f('fk_points_allocations_debit_entry_id_points_entries')),
    sa.ForeignKeyConstraint(['lot_id'], ['points_lots.id'], name=op.f('fk_points_allocations_lot_id_points_lots')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_allocations'))
    )
    with op.batch_alter_table('points_allocations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_points_allocations_debit_entry_id'), ['debit_entry_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_points_allocations_lot_id'), ['lot_id'], unique=False)

    _forbid_ledger_edits()


def downgrade() -> None:
    _allow_ledger_edits()
    with op.batch_alter_table('points_allocations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_points_allocations_lot_id'))
        batch_op.drop_index(batch_op.f('ix_points_allocations_debit_entry_id'))

    op.drop_table('points_allocations')
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refunds_purchase_id'))

    op.drop_table('refunds')
    with op.batch_alter_table('points_lots', schema=None) as batch_op:
        batch_op.drop_index('ix_points_lots_member_open')
        batch_op.drop_index(batch_op.f('ix_points_lots_expires_at'))

    op.drop_table('points_lots')
    with op.batch_alter_table('gift_redemptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gift_redemptions_member_id'))

    op.drop_table('gift_redemptions')
    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_purchases_member_id'))

    op.drop_table('purchases')
    with op.batch_alter_table('points_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_points_entries_source_ref'))
        batch_op.drop_index('ix_points_entries_member_id_id')

    op.drop_table('points_entries')
    op.drop_table('points_accounts')
    op.drop_table('checkins')
    op.drop_table('merchants')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_members_unionid'))

    op.drop_table('members')


# The points ledger is append-only: the database itself refuses to change or delete an entry,
# so no code path (or hand-written SQL) can rewrite a member's history.
_LEDGER_TABLES = ("points_entries",)


def _forbid_ledger_edits() -> None:
    dialect = op.get_bind().dialect.name
    for table in _LEDGER_TABLES:
        if dialect == "postgresql":
            op.execute(
                "CREATE OR REPLACE FUNCTION mallapp_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN RAISE EXCEPTION 'append-only table %: % refused', TG_TABLE_NAME, TG_OP; END $$"
            )
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION mallapp_append_only()")
        else:
            for action in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                           f"BEGIN SELECT RAISE(ABORT, 'append-only table {table}: {action} refused'); END")


def _allow_ledger_edits() -> None:
    dialect = op.get_bind().dialect.name
    for table in _LEDGER_TABLES:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        else:
            for action in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS mallapp_append_only()")
