"""Projects' photos: files sharing a base name, with the user's keep flags.

Revision ID: 0003_project_photos
Revises: 0002_photo_library
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from enlarger.db.types import BigId, Timestamp

revision = "0003_project_photos"
down_revision = "0002_photo_library"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("title", sa.String(500), nullable=True))
    op.create_table(
        "photos",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.BigInteger, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("basename", sa.String(500), nullable=False),
        sa.Column("keep_jpg", sa.Boolean, nullable=False),
        sa.Column("keep_raw", sa.Boolean, nullable=False),
        sa.Column("sidecar_key", sa.String(700), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.UniqueConstraint("project_id", "basename", name="uq_photos_project_basename"),
    )
    op.create_table(
        "photo_files",
        sa.Column("image_id", sa.String(32), sa.ForeignKey("images.id"), primary_key=True),
        sa.Column("photo_id", sa.BigInteger, sa.ForeignKey("photos.id"), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
    )
    op.create_index("ix_photo_files_photo", "photo_files", ["photo_id"])


def downgrade() -> None:
    op.drop_index("ix_photo_files_photo", table_name="photo_files")
    op.drop_table("photo_files")
    op.drop_table("photos")
    op.drop_column("projects", "title")
