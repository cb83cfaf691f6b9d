"""task.not_before, breaker_waited: tasks parked instead of waited for

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 21:40:00

A task that must wait (backoff, Retry-After, open breaker, rate window, full cap) goes back
to QUEUED under a job scheduled for ``not_before``. What its run has done so far travels
with the row: the calls made (``calls``), its last real failure (``error``/``error_kind``)
and the seconds it waited for an open breaker (``breaker_waited``), so a parked task keeps
its retry budget and its final error keeps the real cause.
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('not_before', sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column('breaker_waited', sa.Float(), nullable=False, server_default='0')
        )
        batch_op.create_index('ix_task_not_before', ['not_before'], unique=False)


def downgrade():
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.drop_index('ix_task_not_before')
        batch_op.drop_column('breaker_waited')
        batch_op.drop_column('not_before')
