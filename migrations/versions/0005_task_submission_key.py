"""task.submission_key: one submitted form creates one set of tasks

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 08:20:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('submission_key', sa.String(length=80), nullable=True))
        batch_op.create_index('ix_task_submission_key', ['submission_key'], unique=True)


def downgrade():
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.drop_index('ix_task_submission_key')
        batch_op.drop_column('submission_key')
