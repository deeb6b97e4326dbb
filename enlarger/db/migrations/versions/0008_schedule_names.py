"""Schedule names hold a project's folder (200 characters) and a task's name: 300 fit.

Revision ID: 0008_schedule_names
Revises: 0007_worker_stats
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_schedule_names"
down_revision = "0007_worker_stats"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_schedules") as table:
        table.alter_column("name", type_=sa.String(300), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("job_schedules") as table:
        table.alter_column("name", type_=sa.String(200), existing_nullable=False)
