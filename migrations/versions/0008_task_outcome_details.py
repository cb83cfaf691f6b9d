"""task.finish_reason and task.calls: why the model stopped, how many calls an outcome took

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 18:40:00

Both columns are empty on existing rows (unknown), never a made-up value.
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('finish_reason', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('calls', sa.Integer(), nullable=True))
        batch_op.create_index('ix_task_finish_reason', ['finish_reason'], unique=False)


def downgrade():
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.drop_index('ix_task_finish_reason')
        batch_op.drop_column('calls')
        batch_op.drop_column('finish_reason')
