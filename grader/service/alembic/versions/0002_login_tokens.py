"""login tokens: a kind and an expiry

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

A browser's login gets a token of its own ("login", expiring with its cookie) so that logout
can revoke it without touching the learner's API tokens; rows from before are API tokens.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=8), server_default='api',
                                      nullable=False))
        batch_op.add_column(sa.Column('expires_at', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
        batch_op.drop_column('kind')
