"""till receipts: index purchases by (merchant_id, occurred_at) so the till's list of a day's receipts
(GET /api/v1/merchant/purchases?day=) reads one merchant's day, not every purchase

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05 19:15:00
"""

from alembic import op

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_purchases_merchant_occurred', 'purchases', ['merchant_id', 'occurred_at'])


def downgrade() -> None:
    op.drop_index('ix_purchases_merchant_occurred', table_name='purchases')
