"""Since when a job has been waiting out an outage of a service it needs (its database,
its storage) without spending its attempts: set at its first such failure, so the
outage budget is counted from there.

Revision ID: 0016_outage_since
Revises: 0015_landing_key
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from enlarger.db.types import Timestamp

revision = "0016_outage_since"
down_revision = "0015_landing_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("outage_since", Timestamp, nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "outage_since")
