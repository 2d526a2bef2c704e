"""fleet alerts: who acknowledged an alert on duty, and when (it leaves the open feed)

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 19:00:00
"""

import sqlalchemy as sa
from alembic import op

import mallapp.db

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('fleet_alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('acknowledged_at', mallapp.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('acknowledged_by', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('fleet_alerts', schema=None) as batch_op:
        batch_op.drop_column('acknowledged_by')
        batch_op.drop_column('acknowledged_at')
