"""The key an original is being moved to, claimed before the move and cleared once it
lies there: names are chosen under the project's lock, files moved without it.

Revision ID: 0015_landing_key
Revises: 0014_sidecar_checksums
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_landing_key"
down_revision = "0014_sidecar_checksums"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("images", sa.Column("landing_key", sa.String(700), nullable=True))


def downgrade() -> None:
    op.drop_column("images", "landing_key")
