"""member_deletions: the record of each erased member account (who, when, what was erased)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 13:30:00
"""

import sqlalchemy as sa
from alembic import op

import mallapp.db

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'member_deletions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('member_id', sa.Integer(), nullable=False),
        sa.Column('erased_at', mallapp.db.UTCDateTime(), nullable=False),
        sa.Column('erased_by', sa.String(length=20), nullable=False),
        sa.Column('erased', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_deletions_member_id_members')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_member_deletions')),
        sa.UniqueConstraint('member_id', name=op.f('uq_member_deletions_member_id')),
    )


def downgrade() -> None:
    op.drop_table('member_deletions')
