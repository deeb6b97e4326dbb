"""Product images (reference 004): product jobs, their costs per provider call, and the
webhook deliveries already taken.

Revision ID: 0005_product_jobs
Revises: 0004_project_maintenance
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from enlarger.db.types import BigId, Json, Timestamp

revision = "0005_product_jobs"
down_revision = "0004_project_maintenance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "product_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("sku", sa.String(200), nullable=False),
        sa.Column("image_url", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("theme", sa.String(100), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("original_key", sa.String(700), nullable=True),
        sa.Column("mask_key", sa.String(700), nullable=True),
        sa.Column("cutout_key", sa.String(700), nullable=True),
        sa.Column("bg_keys", Json, nullable=True),
        sa.Column("composite_keys", Json, nullable=True),
        sa.Column("thumb_keys", Json, nullable=True),
        sa.Column("composites", Json, nullable=True),
        sa.Column("media_ids", Json, nullable=True),
        sa.Column("published", Json, nullable=True),
        sa.Column("stage_job_id", sa.BigInteger, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("started_at", Timestamp, nullable=True),
        sa.Column("completed_at", Timestamp, nullable=True),
        sa.UniqueConstraint("sku", "sha256", "theme", name="uq_product_jobs_image"),
    )
    op.create_index("ix_product_jobs_status", "product_jobs", ["status"])
    op.create_index("ix_product_jobs_created_at", "product_jobs", ["created_at"])
    op.create_table(
        "product_costs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("product_job_id", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("nano_usd", sa.BigInteger, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_index("ix_product_costs_job", "product_costs", ["product_job_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("webhook_id", sa.String(200), primary_key=True),
        sa.Column("product_job_id", sa.String(32), nullable=False),
        sa.Column("received_at", Timestamp, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_product_costs_job", table_name="product_costs")
    op.drop_table("product_costs")
    op.drop_index("ix_product_jobs_created_at", table_name="product_jobs")
    op.drop_index("ix_product_jobs_status", table_name="product_jobs")
    op.drop_table("product_jobs")
