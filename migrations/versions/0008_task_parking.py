"""task.not_before, call_attempts, breaker_waited: tasks parked instead of waited for

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 18:30:00

A task that must wait (backoff, Retry-After, open breaker, rate window) goes back to
QUEUED under a job scheduled for ``not_before``; its call count and breaker wait travel
with the row so a parked task keeps its retry budget.
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('not_before', sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column('call_attempts', sa.Integer(), nullable=False, server_default='0')
        )
        batch_op.add_column(
            sa.Column('breaker_waited', sa.Float(), nullable=False, server_default='0')
        )
        batch_op.create_index('ix_task_not_before', ['not_before'], unique=False)


def downgrade():
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.drop_index('ix_task_not_before')
        batch_op.drop_column('breaker_waited')
        batch_op.drop_column('call_attempts')
        batch_op.drop_column('not_before')
