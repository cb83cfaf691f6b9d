"""batch: tasks created by a job in chunks (resumable), completion window and expiry

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 22:10:00

Confirming a batch no longer inserts its tasks inside the web request: the row is stored
VALIDATING with the file's path, and a job creates the tasks in chunks, recording after
each chunk the last input line committed (``last_line``), so a job delivered twice or
re-sent after a crash resumes there instead of creating tasks twice. ``completion_window``
(OpenAI's "24h") sets ``expires_at``; the housekeeping pass expires batches past it.
Existing batches were created in one transaction: nothing is left to create.
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('batch', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('completion_window', sa.String(length=8), nullable=False,
                      server_default='24h')
        )
        batch_op.add_column(sa.Column('source_path', sa.String(length=1024), nullable=True))
        batch_op.add_column(sa.Column('upload_id', sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column('all_or_nothing', sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column('line_count', sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column('last_line', sa.Integer(), nullable=False, server_default='0')
        )
        batch_op.add_column(sa.Column('job_id', sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column('creation_attempts', sa.Integer(), nullable=False, server_default='0')
        )
        batch_op.add_column(sa.Column('progress_at', sa.DateTime(), nullable=True))


def downgrade():
    # A plain DROP COLUMN on both databases: on SQLite a batch copy of the table would drop
    # the old one, and with foreign keys on that sets every task's batch_id to NULL.
    for column in (
        'progress_at', 'creation_attempts', 'job_id', 'last_line', 'line_count',
        'all_or_nothing', 'upload_id', 'source_path', 'completion_window',
    ):
        op.execute(f'ALTER TABLE batch DROP COLUMN {column}')
