"""documents: one copy of a file per owner and collection, not per collection

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 12:30:00

A collection-wide unique sha256 told an uploader that someone else's private document held the
same bytes (issue 15.3). Now an uploader who may not read the match gets their own document, and
the constraint only stops one owner from holding the same file twice. The lookup by
(collection, sha256) that the duplicate check runs keeps an index of its own.
"""
from __future__ import annotations

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_constraint('uq_documents_collection_sha256', type_='unique')
        batch_op.create_unique_constraint('uq_documents_collection_owner_sha256',
                                          ['collection_id', 'owner_id', 'sha256'])
        batch_op.create_index('ix_documents_collection_sha256', ['collection_id', 'sha256'], unique=False)


def downgrade() -> None:
    # Fails (as it should) when two owners hold the same file in one collection: decide which
    # copy to delete first.
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index('ix_documents_collection_sha256')
        batch_op.drop_constraint('uq_documents_collection_owner_sha256', type_='unique')
        batch_op.create_unique_constraint('uq_documents_collection_sha256', ['collection_id', 'sha256'])
