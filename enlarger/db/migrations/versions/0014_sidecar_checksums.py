"""A sidecar's checksum as enlarger last read or wrote it, and when, so an edit made
elsewhere is noticed (its decisions read) instead of overwritten.

Revision ID: 0014_sidecar_checksums
Revises: 0013_stored_bursts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from enlarger.db.types import Timestamp

revision = "0014_sidecar_checksums"
down_revision = "0013_stored_bursts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("photo_sidecars", sa.Column("checksum", sa.String(64), nullable=True))
    op.add_column("photo_sidecars", sa.Column("seen_at", Timestamp, nullable=True))


def downgrade() -> None:
    op.drop_column("photo_sidecars", "seen_at")
    op.drop_column("photo_sidecars", "checksum")
