"""store directory: English name, 业态 category codes, logo, opening hours, tags, and the pinyin of the name
(initials and full, indexed) so that searching "xbk" for 星巴克 is a query on an index

Existing categories were free text: each becomes a code (a known word maps, the rest is "other"), and
each existing name gets its pinyin computed here, once, as the app computes it on every write.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05 21:15:00
"""

import re

import sqlalchemy as sa
from alembic import op

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None

# A copy of mallapp.domain.directory's codes and legacy words as they were when this ran (a migration
# must not change when the app's list does).
CODES = ("dining", "cafe", "fast_food", "supermarket", "fashion", "shoes_bags", "sports", "kids", "beauty",
         "jewellery", "books", "electronics", "home", "cinema", "entertainment", "services", "other")
LEGACY = {
    "restaurant": "dining", "restaurants": "dining", "food": "dining", "餐饮": "dining",
    "café": "cafe", "coffee": "cafe", "tea": "cafe", "咖啡": "cafe",
    "fast food": "fast_food", "快餐": "fast_food", "grocery": "supermarket", "超市": "supermarket",
    "clothing": "fashion", "apparel": "fashion", "服饰": "fashion", "shoes": "shoes_bags", "bags": "shoes_bags",
    "sport": "sports", "outdoor": "sports", "运动": "sports", "children": "kids", "toys": "kids", "儿童": "kids",
    "cosmetics": "beauty", "美妆": "beauty", "jewelry": "jewellery", "watches": "jewellery",
    "bookstore": "books", "stationery": "books", "图书": "books", "digital": "electronics", "数码": "electronics",
    "homeware": "home", "furniture": "home", "movies": "cinema", "影院": "cinema", "games": "entertainment",
    "ktv": "entertainment", "service": "services", "服务": "services",
}


def _code(text):
    word = (text or "").strip().lower()
    return word if word in CODES else LEGACY.get(word, "other")


def _pinyin(name):
    from pypinyin import lazy_pinyin

    initials, full = [], []
    for syllable in lazy_pinyin(name, errors=lambda run: ["\x00" + run]):
        for word in re.findall(r"[0-9a-z]+", syllable.lower()):
            full.append(word)
            initials.append(word if syllable.startswith("\x00") else word[0])
    return "".join(initials)[:80], "".join(full)[:400]


def upgrade() -> None:
    with op.batch_alter_table('stores') as batch:
        batch.add_column(sa.Column('name_en', sa.String(length=80), nullable=False, server_default=''))
        batch.add_column(sa.Column('logo_url', sa.String(length=500), nullable=False, server_default=''))
        batch.add_column(sa.Column('hours', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('tags', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('pinyin_initials', sa.String(length=80), nullable=False, server_default=''))
        batch.add_column(sa.Column('pinyin_full', sa.String(length=400), nullable=False, server_default=''))
    stores = sa.table('stores', sa.column('id', sa.Integer), sa.column('name', sa.String),
                      sa.column('category', sa.String), sa.column('tags', sa.JSON),
                      sa.column('pinyin_initials', sa.String), sa.column('pinyin_full', sa.String))
    bind = op.get_bind()
    for row in bind.execute(sa.select(stores.c.id, stores.c.name, stores.c.category)).all():
        initials, full = _pinyin(row.name)
        bind.execute(stores.update().where(stores.c.id == row.id).values(
            category=_code(row.category), tags=[], pinyin_initials=initials, pinyin_full=full))
    with op.batch_alter_table('stores') as batch:
        batch.alter_column('tags', existing_type=sa.JSON(), nullable=False)
        batch.alter_column('name_en', server_default=None)
        batch.alter_column('logo_url', server_default=None)
        batch.alter_column('pinyin_initials', server_default=None)
        batch.alter_column('pinyin_full', server_default=None)
    op.create_index('ix_stores_pinyin_initials', 'stores', ['pinyin_initials'])
    op.create_index('ix_stores_pinyin_full', 'stores', ['pinyin_full'])


def downgrade() -> None:
    op.drop_index('ix_stores_pinyin_full', table_name='stores')
    op.drop_index('ix_stores_pinyin_initials', table_name='stores')
    with op.batch_alter_table('stores') as batch:
        batch.drop_column('pinyin_full')
        batch.drop_column('pinyin_initials')
        batch.drop_column('tags')
        batch.drop_column('hours')
        batch.drop_column('logo_url')
        batch.drop_column('name_en')
