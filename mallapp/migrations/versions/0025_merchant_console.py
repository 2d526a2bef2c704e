"""merchant console: which staff member's till redeemed a coupon (coupons.redeemed_by), indexes for a merchant's
redemptions by day (coupons by store and redemption time) and for their store zones' footfall over a period (zone
visits by zone and entry time)

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 19:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('coupons') as batch:
        batch.add_column(sa.Column('redeemed_by', sa.Integer(), nullable=True))
        batch.create_foreign_key(batch.f('fk_coupons_redeemed_by_merchant_staff'), 'merchant_staff',
                                 ['redeemed_by'], ['id'])
        batch.create_index('ix_coupons_store_redeemed_at', ['redeemed_at_store', 'redeemed_at'], unique=False)
    with op.batch_alter_table('zone_visits') as batch:
        batch.create_index('ix_zone_visits_zone_entered', ['zone_id', 'entered_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('zone_visits') as batch:
        batch.drop_index('ix_zone_visits_zone_entered')
    with op.batch_alter_table('coupons') as batch:
        batch.drop_index('ix_coupons_store_redeemed_at')
        batch.drop_constraint(batch.f('fk_coupons_redeemed_by_merchant_staff'), type_='foreignkey')
        batch.drop_column('redeemed_by')
