"""How sure the product cut-out is, what doubts it raised and what a reviewer decided:
a doubtful cut-out waits in NEEDS_REVIEW instead of being published.

Revision ID: 0018_cutout_review
Revises: 0017_sidecar_moves
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from enlarger.db.types import Json, Timestamp

revision = "0018_cutout_review"
down_revision = "0017_sidecar_moves"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("product_jobs") as table:
        table.add_column(sa.Column("cutout_method", sa.String(40), nullable=True))
        table.add_column(sa.Column("requested_method", sa.String(40), nullable=True))
        table.add_column(sa.Column("confidence", sa.Float, nullable=True))
        table.add_column(sa.Column("concerns", Json, nullable=True))
        table.add_column(sa.Column("review_decision", sa.String(16), nullable=True))
        table.add_column(sa.Column("reviewed_at", Timestamp, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("product_jobs") as table:
        for name in (
            "reviewed_at",
            "review_decision",
            "concerns",
            "confidence",
            "requested_method",
            "cutout_method",
        ):
            table.drop_column(name)
