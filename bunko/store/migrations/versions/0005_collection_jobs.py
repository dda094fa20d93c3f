"""jobs: collection-level jobs (a reindex, a vector collection to drop) the operator queues for the workers

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 05:00:00

A job now names a document (kind "ingest"), a whole collection (kind "reindex") or a vector
collection to drop (kind "drop_vectors", which outlives the collection's row): the operator queues
them, and a worker, which holds the text analysis, the embedding client and the vector store's
client, runs them under the same lease, retry and back-off rules as an ingest.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('collection_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('vector_collection', sa.String(length=255), nullable=True))
        batch_op.alter_column('document_id', existing_type=sa.String(length=32), nullable=True)
        batch_op.create_index(batch_op.f('ix_jobs_collection_id'), ['collection_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_jobs_collection_id_collections'), 'collections',
                                    ['collection_id'], ['id'], ondelete='CASCADE')


def downgrade() -> None:
    op.execute("DELETE FROM jobs WHERE document_id IS NULL")
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('vector_collection')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_jobs_collection_id_collections'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_jobs_collection_id'))
        batch_op.alter_column('document_id', existing_type=sa.String(length=32), nullable=False)
        batch_op.drop_column('collection_id')
