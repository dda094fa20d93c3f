"""pii_findings: personal information found per page (a collection's pii policy flag or redact)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 22:00:00

Kind, offsets and score only: the value itself is never stored outside the original PDF.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pii_findings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('document_id', sa.String(length=32), nullable=False),
    sa.Column('page_no', sa.Integer(), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('start', sa.Integer(), nullable=False),
    sa.Column('end', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('redacted', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('pii_findings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pii_findings_document_id'), ['document_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pii_findings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pii_findings_document_id'))

    op.drop_table('pii_findings')
