"""batch: uploaded files of prompts grouping their tasks; task.batch_id, batch_line, custom_id

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 21:30:00

A batch's status follows OpenAI's batch statuses (upper-case) and changes only through
``llmadmin.lifecycle.BATCHES``; its counts are read from its tasks (one GROUP BY over
``ix_task_batch_id_status``), never stored. Existing tasks belong to no batch.
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

TIMES = (
    'in_progress_at', 'finalizing_at', 'completed_at', 'failed_at', 'expired_at', 'expires_at',
    'cancelling_at', 'cancelled_at',
)


def upgrade():
    op.create_table(
        'batch',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('creator_id', sa.Integer(), nullable=True),
        sa.Column('source_name', sa.String(length=255), nullable=True),
        sa.Column('source_format', sa.String(length=8), nullable=False),
        sa.Column('endpoint', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('total', sa.Integer(), nullable=False),
        sa.Column('lines', sa.Integer(), nullable=False),
        sa.Column('invalid_lines', sa.Integer(), nullable=False),
        sa.Column('line_errors', sa.Text(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        *(sa.Column(name, sa.DateTime(), nullable=True) for name in TIMES),
        sa.ForeignKeyConstraint(
            ['creator_id'], ['person.id'],
            name=op.f('fk_batch_creator_id_person'), ondelete='SET NULL',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_batch')),
    )
    with op.batch_alter_table('batch', schema=None) as batch_op:
        for column in ('completed_at', 'created_at', 'creator_id', 'name', 'status'):
            batch_op.create_index(batch_op.f(f'ix_batch_{column}'), [column], unique=False)

    # Plain ADD COLUMN (no batch copy of the task table: on SQLite that would drop the
    # search triggers of migration 0011 and rewrite every row).
    if op.get_bind().dialect.name == 'sqlite':
        op.execute(
            'ALTER TABLE task ADD COLUMN batch_id INTEGER CONSTRAINT fk_task_batch_id_batch '
            'REFERENCES batch (id) ON DELETE SET NULL'
        )
    else:
        op.add_column('task', sa.Column('batch_id', sa.Integer(), nullable=True))
        op.create_foreign_key(
            op.f('fk_task_batch_id_batch'), 'task', 'batch', ['batch_id'], ['id'],
            ondelete='SET NULL',
        )
    op.add_column('task', sa.Column('batch_line', sa.Integer(), nullable=True))
    op.add_column('task', sa.Column('custom_id', sa.String(length=200), nullable=True))
    op.create_index('ix_task_batch_id_status', 'task', ['batch_id', 'status'], unique=False)
    op.create_index('ix_task_batch_id_id', 'task', ['batch_id', 'id'], unique=False)


# SQLite cannot drop a column with a foreign key: the task table is copied, which drops its
# triggers; the search index's triggers (migration 0011) are made again afterwards.
SQLITE_TRIGGERS = (
    "CREATE TRIGGER task_fts_insert AFTER INSERT ON task BEGIN "
    "INSERT INTO task_fts(rowid, name, prompt) VALUES (new.id, new.name, new.prompt); END",
    "CREATE TRIGGER task_fts_delete AFTER DELETE ON task BEGIN "
    "INSERT INTO task_fts(task_fts, rowid, name, prompt) "
    "VALUES ('delete', old.id, old.name, old.prompt); END",
    "CREATE TRIGGER task_fts_update AFTER UPDATE OF name, prompt ON task BEGIN "
    "INSERT INTO task_fts(task_fts, rowid, name, prompt) "
    "VALUES ('delete', old.id, old.name, old.prompt); "
    "INSERT INTO task_fts(rowid, name, prompt) VALUES (new.id, new.name, new.prompt); END",
    "INSERT INTO task_fts(task_fts) VALUES ('rebuild')",
)


def downgrade():
    sqlite = op.get_bind().dialect.name == 'sqlite'
    if sqlite:
        _foreign_keys_off()
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.drop_index('ix_task_batch_id_id')
        batch_op.drop_index('ix_task_batch_id_status')
        if not sqlite:
            batch_op.drop_constraint(batch_op.f('fk_task_batch_id_batch'), type_='foreignkey')
        batch_op.drop_column('custom_id')
        batch_op.drop_column('batch_line')
        batch_op.drop_column('batch_id')
    if sqlite:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
        op.execute('PRAGMA foreign_keys=ON')
    with op.batch_alter_table('batch', schema=None) as batch_op:
        for column in ('status', 'name', 'creator_id', 'created_at', 'completed_at'):
            batch_op.drop_index(batch_op.f(f'ix_batch_{column}'))
    op.drop_table('batch')


def _foreign_keys_off():
    """SQLite drops task.batch_id only by copying the table; with foreign keys on, dropping
    the old table would run the ON DELETE actions of its rows (task_run rows deleted)."""
    op.execute('PRAGMA foreign_keys=OFF')
    if op.get_bind().exec_driver_sql('PRAGMA foreign_keys').scalar():
        raise RuntimeError(
            'Downgrading 0013 on SQLite needs foreign keys off, which SQLite refuses inside '
            'a transaction: run `flask db downgrade 0012` on its own.'
        )
