"""wayfinding: the mall's walkable graph (nodes, edges that may be closed) and its version, who imported and
last changed it

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-05 21:40:00
"""

import sqlalchemy as sa
from alembic import op

import mallapp.db

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('wayfinding_graphs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('bay_snap_m', sa.Float(), nullable=False),
    sa.Column('imported_at', mallapp.db.UTCDateTime(), nullable=True),
    sa.Column('imported_by', sa.Integer(), nullable=True),
    sa.Column('changed_at', mallapp.db.UTCDateTime(), nullable=False),
    sa.Column('changed_by', sa.Integer(), nullable=True),
    sa.Column('change', sa.String(length=24), nullable=False),
    sa.ForeignKeyConstraint(['imported_by'], ['ops_users.id'], name=op.f('fk_wayfinding_graphs_imported_by_ops_users')),
    sa.ForeignKeyConstraint(['changed_by'], ['ops_users.id'], name=op.f('fk_wayfinding_graphs_changed_by_ops_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wayfinding_graphs'))
    )
    op.create_table('wayfinding_nodes',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('floor', sa.SmallInteger(), nullable=False),
    sa.Column('x', sa.Float(), nullable=False),
    sa.Column('y', sa.Float(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('store_id', sa.Integer(), nullable=True),
    sa.Column('amenity', sa.String(length=16), nullable=True),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('name_en', sa.String(length=80), nullable=False),
    sa.Column('props', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['store_id'], ['stores.id'], name=op.f('fk_wayfinding_nodes_store_id_stores')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wayfinding_nodes'))
    )
    with op.batch_alter_table('wayfinding_nodes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wayfinding_nodes_amenity'), ['amenity'], unique=False)
    op.create_table('wayfinding_edges',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('a', sa.String(length=64), nullable=False),
    sa.Column('b', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('length_m', sa.Float(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('board_s', sa.Float(), nullable=False),
    sa.Column('oneway', sa.Boolean(), nullable=False),
    sa.Column('closed', sa.Boolean(), nullable=False),
    sa.Column('props', sa.JSON(), nullable=False),
    sa.Column('coords', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['a'], ['wayfinding_nodes.id'], name=op.f('fk_wayfinding_edges_a_wayfinding_nodes')),
    sa.ForeignKeyConstraint(['b'], ['wayfinding_nodes.id'], name=op.f('fk_wayfinding_edges_b_wayfinding_nodes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wayfinding_edges'))
    )
    with op.batch_alter_table('wayfinding_edges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wayfinding_edges_a'), ['a'], unique=False)
        batch_op.create_index(batch_op.f('ix_wayfinding_edges_b'), ['b'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('wayfinding_edges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wayfinding_edges_b'))
        batch_op.drop_index(batch_op.f('ix_wayfinding_edges_a'))
    op.drop_table('wayfinding_edges')
    with op.batch_alter_table('wayfinding_nodes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wayfinding_nodes_amenity'))
    op.drop_table('wayfinding_nodes')
    op.drop_table('wayfinding_graphs')
