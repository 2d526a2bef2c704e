"""ops console: a merchant keeps the Idempotency-Key of the ops call that created it, so a retried create
finds it instead of creating a second merchant

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 19:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('merchants') as batch:
        batch.add_column(sa.Column('create_key', sa.String(length=100), nullable=True))
        batch.create_unique_constraint('uq_merchants_create_key', ['create_key'])


def downgrade() -> None:
    with op.batch_alter_table('merchants') as batch:
        batch.drop_constraint('uq_merchants_create_key', type_='unique')
        batch.drop_column('create_key')
