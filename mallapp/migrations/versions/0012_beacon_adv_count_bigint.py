"""beacon_status.adv_count as a 64-bit integer: Eddystone-TLM's advertising count is 32-bit unsigned

A count above 2,147,483,647 (a beacon advertising for years) overflowed the 32-bit signed column and
failed the proximity worker's write of its whole chunk.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('beacon_status', schema=None) as batch_op:
        batch_op.alter_column('adv_count', existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('beacon_status', schema=None) as batch_op:
        batch_op.alter_column('adv_count', existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=True)
