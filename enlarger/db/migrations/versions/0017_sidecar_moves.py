"""Where a sidecar's file is on its way to (the trash, or back from it) and since when:
the name is claimed in a short transaction, the file moved with none open, and the move
recorded after; a claim left by a process that died is finished by maintenance.

Revision ID: 0017_sidecar_moves
Revises: 0016_outage_since
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from enlarger.db.types import Timestamp

revision = "0017_sidecar_moves"
down_revision = "0016_outage_since"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("photo_sidecars") as table:
        table.add_column(sa.Column("moving_to", sa.String(700), nullable=True))
        table.add_column(sa.Column("moving_since", Timestamp, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("photo_sidecars") as table:
        table.drop_column("moving_since")
        table.drop_column("moving_to")
