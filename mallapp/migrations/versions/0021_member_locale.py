"""member locale: the language a member reads their messages in ("zh-CN" or "en"; NULL: the mall's
default, zh-CN, which the member never chose)

Campaign texts need no change of schema: a campaign's offers (campaigns.steps, JSON) already keep
the zh-CN text in title/body and the English in title_en/body_en; only their delivery changed.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('members') as batch:
        batch.add_column(sa.Column('locale', sa.String(length=8), nullable=True))
        batch.create_check_constraint(op.f('ck_members_locale'), "locale IN ('zh-CN', 'en')")


def downgrade() -> None:
    with op.batch_alter_table('members') as batch:
        batch.drop_constraint(op.f('ck_members_locale'), type_='check')
        batch.drop_column('locale')
