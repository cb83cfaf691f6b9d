"""security: one-time sign-in codes (person.otp_required, the code outbox)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 05:51:54.971577

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    # The development notifier's outbox; no foreign key, like the audit log.
    op.create_table('code_outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('person_label', sa.String(length=300), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('destination', sa.String(length=255), nullable=True),
    sa.Column('subject', sa.String(length=200), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_code_outbox'))
    )
    with op.batch_alter_table('code_outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_code_outbox_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_code_outbox_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_code_outbox_person_label'), ['person_label'], unique=False)

    # Existing people keep signing in with the password only (server default false).
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.add_column(sa.Column('otp_required', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_column('otp_required')

    with op.batch_alter_table('code_outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_code_outbox_person_label'))
        batch_op.drop_index(batch_op.f('ix_code_outbox_person_id'))
        batch_op.drop_index(batch_op.f('ix_code_outbox_at'))

    op.drop_table('code_outbox')
