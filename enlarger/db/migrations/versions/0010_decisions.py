"""Culling decisions on photos: a flag (pick, reject or unflagged), 0-5 stars, a colour.

Revision ID: 0010_decisions
Revises: 0009_one_library
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_decisions"
down_revision = "0009_one_library"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("photos") as table:
        table.add_column(
            sa.Column("flag", sa.String(9), nullable=False, server_default="unflagged")
        )
        table.add_column(sa.Column("rating", sa.SmallInteger, nullable=False, server_default="0"))
        table.add_column(sa.Column("label", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("photos") as table:
        table.drop_column("label")
        table.drop_column("rating")
        table.drop_column("flag")
