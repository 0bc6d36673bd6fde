"""job leases and report-token expiry

Jobs: ``heartbeat_at`` (touched while a task works on the job; the watchdog re-drives a job whose heartbeat stops),
``owner`` (the task id holding the job's ingest or analysis), ``redrives`` (times the watchdog re-queued it),
``analyze_sent_at`` (the analysis was queued once every embedding chunk was done), and ``job_chunks`` (the embedding
chunks done, one row each). Report tokens: ``expires_at`` and ``api_key_id`` (the key that made it; revoking the key
voids its tokens).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 00:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('owner', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('redrives', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('analyze_sent_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_jobs_status_heartbeat', ['status', 'heartbeat_at'], unique=False)
    op.create_table('job_chunks',
        sa.Column('job_id', sa.String(length=32), nullable=False),
        sa.Column('chunk', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('job_id', 'chunk'),
    )  # fmt: skip
    with op.batch_alter_table('report_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('api_key_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_report_tokens_api_key_id', ['api_key_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('report_tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_report_tokens_api_key_id')
        batch_op.drop_column('api_key_id')
        batch_op.drop_column('expires_at')
    op.drop_table('job_chunks')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_status_heartbeat')
        batch_op.drop_column('analyze_sent_at')
        batch_op.drop_column('redrives')
        batch_op.drop_column('owner')
        batch_op.drop_column('heartbeat_at')
