"""Each worker's cumulative counts (job outcomes, run times, rescues) for `/metrics`.

Revision ID: 0007_worker_stats
Revises: 0006_api_tokens
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from enlarger.db.types import Json, Timestamp

revision = "0007_worker_stats"
down_revision = "0006_api_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_stats",
        sa.Column("worker_id", sa.String(200), primary_key=True),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("stats", Json, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("worker_stats")
