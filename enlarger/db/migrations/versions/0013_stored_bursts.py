"""Bursts kept with their photos: found over the whole project when it has changed, not
on every read of its photo list.

Revision ID: 0013_stored_bursts
Revises: 0012_handoff
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from enlarger.db.types import Json

revision = "0013_stored_bursts"
down_revision = "0012_handoff"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("photos", sa.Column("burst", sa.String(500), nullable=True))
    op.add_column("photos", sa.Column("burst_size", sa.Integer, nullable=True))
    op.add_column(
        "photos",
        sa.Column("best_in_burst", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column("photos", sa.Column("burst_reasons", Json, nullable=True))
    op.add_column("projects", sa.Column("bursts_signature", sa.String(100), nullable=True))


def downgrade() -> None:
    op.drop_column("projects", "bursts_signature")
    for column in ("burst_reasons", "best_in_burst", "burst_size", "burst"):
        op.drop_column("photos", column)
