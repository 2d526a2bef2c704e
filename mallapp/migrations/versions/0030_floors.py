"""floors: the floors ops define (number, names in zh-CN and English, outline in metres), the extent the
position estimate searches and the ops floor list draws (issue 17)

Revision ID: 0030
Revises: 0028
Create Date: 2026-12-05 21:30:00
"""

import sqlalchemy as sa
from alembic import op

import mallapp.db

revision = '0030'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('floors',
    sa.Column('number', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('name_en', sa.String(length=40), nullable=False),
    sa.Column('outline', sa.JSON(), nullable=False),
    sa.Column('updated_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('number', name=op.f('pk_floors'))
    )


def downgrade() -> None:
    op.drop_table('floors')
