"""task.error_frame, task_run.error_frame, download.name_frame

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30 04:30:00

Texts that a worker or a service writes and someone else reads later are kept as data too
(``llmadmin/texts.py``), so each screen renders them in its reader's language: a task's
final failure (``error_frame``, on the task and on each run, next to the English ``error``
that the API and exports keep) and how a download's name was made (``name_frame``). Rows
from before keep NULL and are shown as they were written.
"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN (nullable, no default): no table copy on SQLite, which would drop the
    # task table's search triggers of migration 0011, and no rewrite of every row.
    op.add_column('task', sa.Column('error_frame', sa.JSON(none_as_null=True), nullable=True))
    op.add_column('task_run', sa.Column('error_frame', sa.JSON(none_as_null=True), nullable=True))
    op.add_column('download', sa.Column('name_frame', sa.JSON(none_as_null=True), nullable=True))


def downgrade():
    # DROP COLUMN: SQLite 3.35+ (Python 3.11's) drops a column in place.
    op.drop_column('download', 'name_frame')
    op.drop_column('task_run', 'error_frame')
    op.drop_column('task', 'error_frame')
