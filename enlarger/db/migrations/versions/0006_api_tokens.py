"""API tokens for access control: a name, a role and the SHA-256 of the token.

Revision ID: 0006_api_tokens
Revises: 0005_product_jobs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from enlarger.db.types import BigId, Timestamp

revision = "0006_api_tokens"
down_revision = "0005_product_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("last_used_at", Timestamp, nullable=True),
        sa.Column("revoked_at", Timestamp, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
