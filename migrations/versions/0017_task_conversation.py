"""task.messages, task.frequency_penalty, task.presence_penalty, batch.result_file_bytes

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 01:00:00

A task can carry the earlier turns of a conversation (``messages``: a JSON list of
``{"role": "user"|"assistant", "content": text}`` sent between the system prompt and the
prompt) and two more call parameters. A batch keeps the sizes of its OpenAI output and
error files with the state of its tasks they were measured at (``result_file_bytes``, JSON),
so ``/v1/files`` reports real sizes without streaming the file on every look.
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD/DROP COLUMN on the task table: a batch copy on SQLite would drop the search
    # triggers of migration 0011 and rewrite every row.
    op.add_column('task', sa.Column('messages', sa.JSON(none_as_null=True), nullable=True))
    op.add_column('task', sa.Column('frequency_penalty', sa.Float(), nullable=True))
    op.add_column('task', sa.Column('presence_penalty', sa.Float(), nullable=True))
    with op.batch_alter_table('batch', schema=None) as batch_op:
        batch_op.add_column(sa.Column('result_file_bytes', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('batch', schema=None) as batch_op:
        batch_op.drop_column('result_file_bytes')
    for column in ('presence_penalty', 'frequency_penalty', 'messages'):
        op.drop_column('task', column)
