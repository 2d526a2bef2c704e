"""service desk and mall-wide offers: member search indexes (phone, last four digits, nickname trigrams),
points adjustments, gift hand-over, mall-wide deals and minimum spend

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 15:10:00
"""

import sqlalchemy as sa
from alembic import op

import mallapp.db

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone_last4', sa.String(length=4), nullable=True))
    # The last four digits of every phone already recorded (each number is +<digits>).
    op.execute("UPDATE members SET phone_last4 = " + ("right(phone, 4)" if postgres else "substr(phone, -4)")
               + " WHERE phone IS NOT NULL AND length(phone) >= 5")
    op.create_index('ix_members_phone', 'members', ['phone'])
    op.create_index('ix_members_phone_last4', 'members', ['phone_last4'])
    if postgres:
        # Trusted since PostgreSQL 13: the database's owner may create it.
        op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
        op.create_index('ix_members_nickname_trgm', 'members', ['nickname'], postgresql_using='gin',
                        postgresql_ops={'nickname': 'gin_trgm_ops'})
    else:
        op.create_index('ix_members_nickname_trgm', 'members', ['nickname'])

    op.create_table(
        'points_adjustments',
        sa.Column('id', BigId, nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('ops_user_id', sa.Integer(), nullable=False),
        sa.Column('points', sa.BigInteger(), nullable=False),
        sa.Column('reason', sa.String(length=200), nullable=False),
        sa.Column('idempotency_key', sa.String(length=100), nullable=False),
        sa.Column('entry_id', BigId, nullable=False),
        sa.Column('created_at', mallapp.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['entry_id'], ['points_entries.id'],
                                name=op.f('fk_points_adjustments_entry_id_points_entries')),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_points_adjustments_member_id_members')),
        sa.ForeignKeyConstraint(['ops_user_id'], ['ops_users.id'],
                                name=op.f('fk_points_adjustments_ops_user_id_ops_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_points_adjustments')),
        sa.UniqueConstraint('idempotency_key', name=op.f('uq_points_adjustments_idempotency_key')),
    )
    op.create_index(op.f('ix_points_adjustments_member_id'), 'points_adjustments', ['member_id'])

    with op.batch_alter_table('gift_redemptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('handed_over_at', mallapp.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('handed_over_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('handover_request_id', sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_gift_redemptions_handed_over_by_ops_users'), 'ops_users',
                                    ['handed_over_by'], ['id'])

    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sa.String(length=8), server_default='store', nullable=False))
        batch_op.add_column(sa.Column('participating_store_ids', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('min_spend_fen', sa.BigInteger(), nullable=True))
        batch_op.create_check_constraint(op.f('ck_deals_scope'), "scope IN ('store', 'mall')")
        batch_op.create_check_constraint(op.f('ck_deals_min_spend_positive'),
                                         'min_spend_fen IS NULL OR min_spend_fen > 0')

    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('spend_fen', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('discount_fen', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.drop_column('discount_fen')
        batch_op.drop_column('spend_fen')
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_deals_min_spend_positive'), type_='check')
        batch_op.drop_constraint(op.f('ck_deals_scope'), type_='check')
        batch_op.drop_column('min_spend_fen')
        batch_op.drop_column('participating_store_ids')
        batch_op.drop_column('scope')
    with op.batch_alter_table('gift_redemptions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_gift_redemptions_handed_over_by_ops_users'), type_='foreignkey')
        batch_op.drop_column('handover_request_id')
        batch_op.drop_column('handed_over_by')
        batch_op.drop_column('handed_over_at')
    op.drop_index(op.f('ix_points_adjustments_member_id'), table_name='points_adjustments')
    op.drop_table('points_adjustments')
    op.drop_index('ix_members_nickname_trgm', table_name='members')
    op.drop_index('ix_members_phone_last4', table_name='members')
    op.drop_index('ix_members_phone', table_name='members')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('phone_last4')
