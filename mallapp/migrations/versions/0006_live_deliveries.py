"""deliveries: the live channel, and the outcomes of live messages and of sends lost to a crash

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 09:10:00
"""

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

OLD_CHANNELS = "channel IN ('inbox', 'subscribe')"
NEW_CHANNELS = "channel IN ('inbox', 'subscribe', 'live')"
OLD_OUTCOMES = "outcome IN ('sent', 'pending', 'muted', 'no_quota', 'refused', 'failed')"
NEW_OUTCOMES = "outcome IN ('sent', 'pending', 'muted', 'no_quota', 'refused', 'failed', 'missed', 'unknown')"


def _checks(channels: str, outcomes: str) -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_deliveries_channel'), type_='check')
        batch_op.drop_constraint(op.f('ck_deliveries_outcome'), type_='check')
        batch_op.create_check_constraint(op.f('ck_deliveries_channel'), channels)
        batch_op.create_check_constraint(op.f('ck_deliveries_outcome'), outcomes)


def upgrade() -> None:
    _checks(NEW_CHANNELS, NEW_OUTCOMES)


def downgrade() -> None:
    op.execute("DELETE FROM deliveries WHERE channel = 'live' OR outcome IN ('missed', 'unknown')")
    _checks(OLD_CHANNELS, OLD_OUTCOMES)
