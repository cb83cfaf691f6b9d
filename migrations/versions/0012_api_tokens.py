"""api_token: personal API tokens; model names made unique (duplicates renamed visibly)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 18:50:00

The JSON API names models by their display name, so two rows may no longer share one.
Existing duplicates keep the oldest row's name; the others become "Name (2)", "Name (3)", …
(the rename is printed by the upgrade so whoever runs it sees it).
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def _rename_duplicate_model_names():
    bind = op.get_bind()
    rows = bind.execute(sa.text('SELECT id, name FROM llm_model ORDER BY id')).all()
    taken = {name for _id, name in rows}
    seen = set()
    for row_id, name in rows:
        if name not in seen:
            seen.add(name)
            continue
        n = 2
        while f'{name} ({n})'[:120] in taken:
            n += 1
        new_name = f'{name} ({n})'[:120]
        taken.add(new_name)
        bind.execute(
            sa.text('UPDATE llm_model SET name = :name WHERE id = :id'),
            {'name': new_name, 'id': row_id},
        )
        print(f'llm_model #{row_id}: duplicate name {name!r} renamed to {new_name!r}')


def upgrade():
    op.create_table(
        'api_token',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_used_at', sa.DateTime(), nullable=True),
        sa.Column('expires_at', sa.DateTime(), nullable=True),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.Column('revoked_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ['person_id'], ['person.id'],
            name=op.f('fk_api_token_person_id_person'), ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['revoked_by_id'], ['person.id'],
            name=op.f('fk_api_token_revoked_by_id_person'), ondelete='SET NULL',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_api_token_token_hash')),
    )
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        for column in ('created_at', 'expires_at', 'last_used_at', 'name', 'person_id', 'revoked_at'):
            batch_op.create_index(batch_op.f(f'ix_api_token_{column}'), [column], unique=False)

    _rename_duplicate_model_names()
    with op.batch_alter_table('llm_model', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_llm_model_name'))
        batch_op.create_index(batch_op.f('ix_llm_model_name'), ['name'], unique=True)


def downgrade():
    with op.batch_alter_table('llm_model', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_llm_model_name'))
        batch_op.create_index(batch_op.f('ix_llm_model_name'), ['name'], unique=False)
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        for column in ('revoked_at', 'person_id', 'name', 'last_used_at', 'expires_at', 'created_at'):
            batch_op.drop_index(batch_op.f(f'ix_api_token_{column}'))
    op.drop_table('api_token')
