"""bulk_operation: every bulk action is a row with its selection, status and counts

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 09:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

INDEXED = ('action', 'created_at', 'creator_id', 'download_id', 'finished_at', 'job_id',
           'list_name', 'matched', 'status')


def upgrade():
    op.create_table('bulk_operation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('creator_id', sa.Integer(), nullable=True),
    sa.Column('list_name', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('selection', sa.Text(), nullable=False),
    sa.Column('arguments', sa.Text(), nullable=True),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('matched', sa.Integer(), nullable=True),
    sa.Column('processed', sa.Integer(), nullable=False),
    sa.Column('changed', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('last_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('download_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['creator_id'], ['person.id'], name=op.f('fk_bulk_operation_creator_id_person'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['download_id'], ['download.id'], name=op.f('fk_bulk_operation_download_id_download'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_operation'))
    )
    with op.batch_alter_table('bulk_operation', schema=None) as batch_op:
        for column in INDEXED:
            batch_op.create_index(batch_op.f(f'ix_bulk_operation_{column}'), [column], unique=False)
        # the sweep's query: PENDING/RUNNING rows by age
        batch_op.create_index('ix_bulk_operation_status_created_at', ['status', 'created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('bulk_operation', schema=None) as batch_op:
        batch_op.drop_index('ix_bulk_operation_status_created_at')
        for column in reversed(INDEXED):
            batch_op.drop_index(batch_op.f(f'ix_bulk_operation_{column}'))
    op.drop_table('bulk_operation')
