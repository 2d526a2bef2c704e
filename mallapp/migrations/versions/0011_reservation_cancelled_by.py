"""reservations: who cancelled a booking (the member or the restaurant) and the restaurant's reason

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cancelled_by', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('cancel_reason', sa.String(length=200), nullable=True))
    # Every booking cancelled before this revision was cancelled by its member.
    op.execute("UPDATE reservations SET cancelled_by = 'member' WHERE status = 'cancelled'")


def downgrade() -> None:
    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.drop_column('cancel_reason')
        batch_op.drop_column('cancelled_by')
