"""parking reports: indexes for the operations reports (a day range of exits, of benefits given)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 17:10:00
"""

from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('parking_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_parking_sessions_exited_at', ['exited_at'], unique=False)
    with op.batch_alter_table('parking_benefits', schema=None) as batch_op:
        batch_op.create_index('ix_parking_benefits_local_day', ['local_day'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('parking_benefits', schema=None) as batch_op:
        batch_op.drop_index('ix_parking_benefits_local_day')
    with op.batch_alter_table('parking_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_parking_sessions_exited_at')
