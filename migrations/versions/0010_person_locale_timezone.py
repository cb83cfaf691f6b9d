"""person.locale and person.timezone: each person's language and time zone

Revision ID: 0010
Revises: 0007
Create Date: 2026-11-29 18:30:00

Both are empty for existing people: they get the browser's language (or DEFAULT_LOCALE)
and DEFAULT_TIMEZONE until they choose in the navigation bar or on "My settings".
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locale', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_column('timezone')
        batch_op.drop_column('locale')
