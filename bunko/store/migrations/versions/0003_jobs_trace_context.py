"""jobs: the W3C traceparent of the request that queued the job

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 20:00:00

The worker continues the trace of the upload (or reprocess) that queued the job, so one trace
shows a document from the request to its last ingest stage (bunko.tracing). Null when the
request was not traced.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trace_context', sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('trace_context')
