"""merchant_staff: managers and cashiers who sign in for their merchant

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import mallapp.db

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('merchant_staff',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=40), nullable=False),
    sa.Column('role', sa.String(length=12), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.CheckConstraint("role IN ('manager', 'cashier')", name=op.f('ck_merchant_staff_role')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_merchant_staff_merchant_id_merchants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchant_staff')),
    sa.UniqueConstraint('username', name=op.f('uq_merchant_staff_username'))
    )
    with op.batch_alter_table('merchant_staff', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_merchant_staff_merchant_id'), ['merchant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('merchant_staff', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_merchant_staff_merchant_id'))
    op.drop_table('merchant_staff')
