"""parking payment requests: a payment keeps the fingerprint of the request that created it (a retry with the same
idempotency key and another body is refused) and the WeChat Pay prepay answer (a retry returns it
without asking WeChat Pay again, and without keeping the payer's openid)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 17:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('parking_payments') as batch:
        batch.add_column(sa.Column('request_hash', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('prepay', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('parking_payments') as batch:
        batch.drop_column('prepay')
        batch.drop_column('request_hash')
