"""Handing decisions to other tools: a photo may have several `.xmp` sidecars (Lightroom's
`IMG_1.xmp` and darktable's `IMG_1.CR2.xmp`), which follow their files into the trash and
back; a project has options for how decisions are written; an image remembers the
checksum it arrived with once enlarger writes XMP into it.

Revision ID: 0012_handoff
Revises: 0011_assessment
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from enlarger.db.types import Json, Timestamp

revision = "0012_handoff"
down_revision = "0011_assessment"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "photo_sidecars",
        sa.Column("key", sa.String(700), primary_key=True),
        sa.Column("photo_id", sa.BigInteger, sa.ForeignKey("photos.id"), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("trashed_at", Timestamp, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_index("ix_photo_sidecars_photo", "photo_sidecars", ["photo_id"])
    photos = sa.table(
        "photos",
        sa.column("id", sa.BigInteger),
        sa.column("sidecar_key", sa.String),
        sa.column("created_at", Timestamp),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(photos.c.id, photos.c.sidecar_key, photos.c.created_at).where(
            photos.c.sidecar_key.is_not(None)
        )
    ).all()
    if rows:
        sidecars = sa.table(
            "photo_sidecars",
            sa.column("key", sa.String),
            sa.column("photo_id", sa.BigInteger),
            sa.column("name", sa.String),
            sa.column("created_at", Timestamp),
        )
        conn.execute(
            sidecars.insert(),
            [
                {"key": key, "photo_id": id_, "name": key.rsplit("/", 1)[-1], "created_at": at}
                for id_, key, at in rows
            ],
        )
    # SQLite 3.35+ drops a plain column in place; a batch copy of `photos` would fail on
    # the foreign keys of its files and sidecars
    op.drop_column("photos", "sidecar_key")
    op.add_column("projects", sa.Column("options", Json, nullable=True))
    op.add_column("images", sa.Column("source_checksum", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("images", "source_checksum")
    op.drop_column("projects", "options")
    op.add_column("photos", sa.Column("sidecar_key", sa.String(700), nullable=True))
    conn = op.get_bind()
    first = conn.execute(
        sa.text(
            "SELECT photo_id, MIN(key) FROM photo_sidecars WHERE trashed_at IS NULL "
            "GROUP BY photo_id"
        )
    ).all()
    for photo_id, key in first:
        conn.execute(
            sa.text("UPDATE photos SET sidecar_key = :key WHERE id = :id"),
            {"key": key, "id": photo_id},
        )
    op.drop_index("ix_photo_sidecars_photo", "photo_sidecars")
    op.drop_table("photo_sidecars")
