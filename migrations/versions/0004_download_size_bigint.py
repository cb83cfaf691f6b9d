"""download.size_bytes as BIGINT (exports can pass 2 GiB)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 06:12:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('download', schema=None) as batch_op:
        batch_op.alter_column('size_bytes', existing_type=sa.Integer(), type_=sa.BigInteger(),
                              existing_nullable=True)


def downgrade():
    with op.batch_alter_table('download', schema=None) as batch_op:
        batch_op.alter_column('size_bytes', existing_type=sa.BigInteger(), type_=sa.Integer(),
                              existing_nullable=True)
