"""The photo library: projects, images and their derivatives.

Revision ID: 0002_photo_library
Revises: 0001_job_engine
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from enlarger.db.types import BigId, Json, Timestamp

revision = "0002_photo_library"
down_revision = "0001_job_engine"
branch_labels = None
depends_on = None

NOT_DELETED = {
    "postgresql_where": sa.text("deleted_at IS NULL"),
    "sqlite_where": sa.text("deleted_at IS NULL"),
}


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("folder", sa.String(200), nullable=False, unique=True),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project_id", sa.BigInteger, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("title", sa.String(500), nullable=True),
        sa.Column("original_filename", sa.String(500), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("format", sa.String(16), nullable=True),
        sa.Column("mime_type", sa.String(64), nullable=True),
        sa.Column("width", sa.Integer, nullable=True),
        sa.Column("height", sa.Integer, nullable=True),
        sa.Column("orientation", sa.Integer, nullable=True),
        sa.Column("taken_at", sa.String(40), nullable=True),
        sa.Column("camera_make", sa.String(200), nullable=True),
        sa.Column("camera_model", sa.String(200), nullable=True),
        sa.Column("exif", Json, nullable=True),
        sa.Column("thumbhash", sa.String(64), nullable=True),
        sa.Column("temp_path", sa.String(500), nullable=True),
        sa.Column("original_key", sa.String(700), nullable=True),
        sa.Column("uploaded_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("stored_at", Timestamp, nullable=True),
        sa.Column("deleted_at", Timestamp, nullable=True),
    )
    op.create_index(
        "uq_images_project_checksum",
        "images",
        ["project_id", "checksum"],
        unique=True,
        **NOT_DELETED,
    )
    op.create_index("ix_images_status", "images", ["status"])
    op.create_index("ix_images_uploaded_at", "images", ["uploaded_at"])
    op.create_table(
        "derivatives",
        sa.Column("image_id", sa.String(32), sa.ForeignKey("images.id"), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("storage_key", sa.String(700), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("recipe_hash", sa.String(32), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("derivatives")
    op.drop_index("ix_images_uploaded_at", table_name="images")
    op.drop_index("ix_images_status", table_name="images")
    op.drop_index("uq_images_project_checksum", table_name="images")
    op.drop_table("images")
    op.drop_table("projects")
