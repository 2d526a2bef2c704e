"""merchant console: indexes for a merchant's redemptions by day (coupons by store and redemption time) and for
their store zones' footfall over a period (zone visits by zone and entry time)

Revision ID: 0025
Revises: 0020
Create Date: 2026-12-05 19:20:00
"""

from alembic import op

revision = '0025'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('coupons') as batch:
        batch.create_index('ix_coupons_store_redeemed_at', ['redeemed_at_store', 'redeemed_at'], unique=False)
    with op.batch_alter_table('zone_visits') as batch:
        batch.create_index('ix_zone_visits_zone_entered', ['zone_id', 'entered_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('zone_visits') as batch:
        batch.drop_index('ix_zone_visits_zone_entered')
    with op.batch_alter_table('coupons') as batch:
        batch.drop_index('ix_coupons_store_redeemed_at')
