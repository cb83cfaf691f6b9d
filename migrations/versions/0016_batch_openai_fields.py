"""batch.input_file_id, batch.metadata_json: what POST /v1/batches was given

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 22:40:00

A batch made through the gateway names the file it was made from (``input_file_id``, a
``/v1/files`` id) and keeps the caller's ``metadata`` (up to 16 string pairs, as JSON).
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('batch', schema=None) as batch_op:
        batch_op.add_column(sa.Column('input_file_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('metadata_json', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('batch', schema=None) as batch_op:
        batch_op.drop_column('metadata_json')
        batch_op.drop_column('input_file_id')
