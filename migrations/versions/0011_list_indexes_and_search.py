"""task list indexes: (x, id) pairs for filters read newest first, attempts, latest failures;
text search over name and prompt (SQLite FTS5 trigram table, PostgreSQL pg_trgm GIN indexes)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 18:40:00

The search objects are not declared in the models (autogenerate cannot express them):
``migrations/env.py`` and tests/test_migrations.py skip them through
``llmadmin.models.task.is_unmodelled_search_object``. On SQLite the FTS table is filled
from the existing rows ('rebuild'); on PostgreSQL ``CREATE EXTENSION pg_trgm`` needs the
database owner (pg_trgm is a trusted extension) and is left in place on downgrade.
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

PAIRS = (
    ('ix_task_status', 'ix_task_status_id', ['status', 'id']),
    ('ix_task_creator_id', 'ix_task_creator_id_id', ['creator_id', 'id']),
    ('ix_task_model_id', 'ix_task_model_id_id', ['model_id', 'id']),
)

SQLITE_UP = (
    "CREATE VIRTUAL TABLE task_fts USING fts5("
    "name, prompt, content='task', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER task_fts_insert AFTER INSERT ON task BEGIN "
    "INSERT INTO task_fts(rowid, name, prompt) VALUES (new.id, new.name, new.prompt); END",
    "CREATE TRIGGER task_fts_delete AFTER DELETE ON task BEGIN "
    "INSERT INTO task_fts(task_fts, rowid, name, prompt) "
    "VALUES ('delete', old.id, old.name, old.prompt); END",
    # Only edits of name or prompt touch the index (status updates by the engine do not).
    "CREATE TRIGGER task_fts_update AFTER UPDATE OF name, prompt ON task BEGIN "
    "INSERT INTO task_fts(task_fts, rowid, name, prompt) "
    "VALUES ('delete', old.id, old.name, old.prompt); "
    "INSERT INTO task_fts(rowid, name, prompt) VALUES (new.id, new.name, new.prompt); END",
    "INSERT INTO task_fts(task_fts) VALUES ('rebuild')",
)
SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS task_fts_update",
    "DROP TRIGGER IF EXISTS task_fts_delete",
    "DROP TRIGGER IF EXISTS task_fts_insert",
    "DROP TABLE IF EXISTS task_fts",
)
POSTGRESQL_UP = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_task_name_trgm ON task USING gin (name gin_trgm_ops)",
    "CREATE INDEX ix_task_prompt_trgm ON task USING gin (prompt gin_trgm_ops)",
    # A finer sample lets the planner tell a common term (read the primary key backwards,
    # stop after a page) from a rare one (the trigram index, then sort the few matches).
    "ALTER TABLE task ALTER COLUMN prompt SET STATISTICS 1000",
    "ALTER TABLE task ALTER COLUMN name SET STATISTICS 1000",
)
POSTGRESQL_DOWN = (
    "ALTER TABLE task ALTER COLUMN name SET STATISTICS -1",
    "ALTER TABLE task ALTER COLUMN prompt SET STATISTICS -1",
    "DROP INDEX IF EXISTS ix_task_prompt_trgm",
    "DROP INDEX IF EXISTS ix_task_name_trgm",
)


def upgrade():
    for old, new, columns in PAIRS:
        op.drop_index(old, table_name='task')
        op.create_index(new, 'task', columns, unique=False)
    op.create_index('ix_task_attempts', 'task', ['attempts'], unique=False)
    op.create_index(
        'ix_task_status_finished_at', 'task', ['status', 'finished_at', 'id'], unique=False
    )
    for statement in _search_ddl(SQLITE_UP, POSTGRESQL_UP):
        op.execute(statement)


def downgrade():
    for statement in _search_ddl(SQLITE_DOWN, POSTGRESQL_DOWN):
        op.execute(statement)
    op.drop_index('ix_task_status_finished_at', table_name='task')
    op.drop_index('ix_task_attempts', table_name='task')
    for old, new, columns in PAIRS:
        op.drop_index(new, table_name='task')
        op.create_index(old, 'task', columns[:1], unique=False)


def _search_ddl(sqlite, postgresql):
    dialect = op.get_bind().dialect.name
    return sqlite if dialect == 'sqlite' else postgresql if dialect == 'postgresql' else ()
