"""How sure the product cut-out is, what doubts it raised and what a reviewer decided:
a doubtful cut-out waits in NEEDS_REVIEW instead of being published. And a photo whose
job failed may be announced again: (sku, sha256, theme) is unique among the jobs that
have not failed only.

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


LIVE = "status <> 'FAILED'"


def upgrade() -> None:
    with op.batch_alter_table("product_jobs") as table:
        table.drop_constraint("uq_product_jobs_image", type_="unique")
        table.add_column(sa.Column("cutout_method", sa.String(40), nullable=True))
        table.add_column(sa.Column("requested_method", sa.String(40), nullable=True))
        table.add_column(sa.Column("confidence", sa.Float, nullable=True))
        table.add_column(sa.Column("concerns", Json, nullable=True))
        table.add_column(sa.Column("review_decision", sa.String(16), nullable=True))
        table.add_column(sa.Column("reviewed_at", Timestamp, nullable=True))
    op.create_index(
        "uq_product_jobs_live_image",
        "product_jobs",
        ["sku", "sha256", "theme"],
        unique=True,
        postgresql_where=sa.text(LIVE),
        sqlite_where=sa.text(LIVE),
    )


def downgrade() -> None:
    op.drop_index("uq_product_jobs_live_image", table_name="product_jobs")
    with op.batch_alter_table("product_jobs") as table:
        table.create_unique_constraint("uq_product_jobs_image", ["sku", "sha256", "theme"])
        for name in (
            "reviewed_at",
            "review_decision",
            "concerns",
            "confidence",
            "requested_method",
            "cutout_method",
        ):
            table.drop_column(name)
