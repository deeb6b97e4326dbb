"""Culling assistance: each image's assessment (sharpness per region, clipping, a
perceptual hash), measured on its preview.

Revision ID: 0011_assessment
Revises: 0010_decisions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from enlarger.db.types import Json

revision = "0011_assessment"
down_revision = "0010_decisions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("images", sa.Column("assessment", Json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("images") as table:
        table.drop_column("assessment")
