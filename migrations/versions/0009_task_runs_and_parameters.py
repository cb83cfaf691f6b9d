"""task_run: every execution of a task is kept; per-task call parameters

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 18:40:00

Backfills one run per finished (SUCCESS / FAILURE) task from the task's current columns;
the parameters those calls used were not recorded, so the backfilled runs have none.
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('temperature', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('max_tokens', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('top_p', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('seed', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('stop', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('response_format', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('output_is_json', sa.Boolean(), nullable=True))
        batch_op.add_column(
            sa.Column('result_outdated', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index(batch_op.f('ix_task_output_is_json'), ['output_is_json'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_result_outdated'), ['result_outdated'], unique=False)

    op.create_table(
        'task_run',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('task_id', sa.Integer(), nullable=False),
        sa.Column('job_id', sa.String(length=64), nullable=True),
        sa.Column('model_id', sa.Integer(), nullable=True),
        sa.Column('model_label', sa.String(length=200), nullable=True),
        sa.Column('params', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('result', sa.Text(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('error_kind', sa.String(length=32), nullable=True),
        sa.Column('finish_reason', sa.String(length=32), nullable=True),
        sa.Column('output_is_json', sa.Boolean(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('calls', sa.Integer(), nullable=True),
        sa.Column('latency_ms', sa.Float(), nullable=True),
        sa.Column('prompt_tokens', sa.Integer(), nullable=True),
        sa.Column('completion_tokens', sa.Integer(), nullable=True),
        sa.Column('cost', sa.Numeric(precision=14, scale=6), nullable=True),
        sa.Column('started_at', sa.DateTime(), nullable=True),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ['model_id'], ['llm_model.id'],
            name=op.f('fk_task_run_model_id_llm_model'), ondelete='SET NULL',
        ),
        sa.ForeignKeyConstraint(
            ['task_id'], ['task.id'], name=op.f('fk_task_run_task_id_task'), ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_task_run')),
    )
    with op.batch_alter_table('task_run', schema=None) as batch_op:
        batch_op.create_index('ix_task_run_task_id_id', ['task_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_run_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_run_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_run_finished_at'), ['finished_at'], unique=False)

    # Old rows keep working: each finished task gets the run its current columns describe.
    op.execute(
        """
        INSERT INTO task_run (
            task_id, job_id, model_id, model_label, params, status, result, error, error_kind,
            finish_reason, attempts, calls, latency_ms, prompt_tokens, completion_tokens, cost,
            started_at, finished_at, created_at
        )
        SELECT t.id, t.job_id, t.model_id, m.name, NULL, t.status, t.result, t.error,
               t.error_kind, t.finish_reason, t.attempts, t.calls, t.latency_ms, t.prompt_tokens, t.completion_tokens,
               t.cost, t.started_at, t.finished_at, COALESCE(t.finished_at, t.created_at)
        FROM task t LEFT JOIN llm_model m ON m.id = t.model_id
        WHERE t.status IN ('SUCCESS', 'FAILURE')
        ORDER BY t.id
        """
    )


def downgrade():
    with op.batch_alter_table('task_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_run_finished_at'))
        batch_op.drop_index(batch_op.f('ix_task_run_status'))
        batch_op.drop_index(batch_op.f('ix_task_run_model_id'))
        batch_op.drop_index('ix_task_run_task_id_id')
    op.drop_table('task_run')
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_result_outdated'))
        batch_op.drop_index(batch_op.f('ix_task_output_is_json'))
        batch_op.drop_column('result_outdated')
        batch_op.drop_column('output_is_json')
        batch_op.drop_column('response_format')
        batch_op.drop_column('stop')
        batch_op.drop_column('seed')
        batch_op.drop_column('top_p')
        batch_op.drop_column('max_tokens')
        batch_op.drop_column('temperature')
