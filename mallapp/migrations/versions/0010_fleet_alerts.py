"""fleet alerts: beacon and gateway problems raised and cleared by the clock

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 03:00:00
"""

import sqlalchemy as sa
from alembic import op

import mallapp.db

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('fleet_alerts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('subject', sa.String(length=10), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=80), nullable=False),
    sa.Column('problem', sa.String(length=20), nullable=False),
    sa.Column('raised_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.Column('cleared_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.CheckConstraint("subject IN ('beacon', 'gateway')", name=op.f('ck_fleet_alerts_subject')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fleet_alerts'))
    )
    with op.batch_alter_table('fleet_alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fleet_alerts_cleared_at'), ['cleared_at'], unique=False)
        batch_op.create_index('uq_fleet_alerts_open', ['subject', 'subject_id', 'problem'], unique=True,
                              sqlite_where=sa.text('cleared_at IS NULL'),
                              postgresql_where=sa.text('cleared_at IS NULL'))


def downgrade() -> None:
    with op.batch_alter_table('fleet_alerts', schema=None) as batch_op:
        batch_op.drop_index('uq_fleet_alerts_open', sqlite_where=sa.text('cleared_at IS NULL'),
                            postgresql_where=sa.text('cleared_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_fleet_alerts_cleared_at'))

    op.drop_table('fleet_alerts')
