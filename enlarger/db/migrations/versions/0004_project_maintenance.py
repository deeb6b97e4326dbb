"""Maintenance schedules for the projects that exist (new projects get theirs when they
are created): trash_maintenance hourly, manifest_check and folder_check every 6 hours,
manifest_cleaning daily, each first firing one period from now. The tables do not change.

Revision ID: 0004_project_maintenance
Revises: 0003_project_photos
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from enlarger.db.types import Json, Timestamp

revision = "0004_project_maintenance"
down_revision = "0003_project_photos"
branch_labels = None
depends_on = None

# (job type, priority, period in seconds): reference 003, as enlarger.library.tasks had
# them when this migration was written.
TASKS = (
    ("trash_maintenance", 100, 3600.0),
    ("manifest_check", 95, 6 * 3600.0),
    ("folder_check", 95, 6 * 3600.0),
    ("manifest_cleaning", 80, 24 * 3600.0),
)

job_schedules = sa.table(
    "job_schedules",
    sa.column("name", sa.String),
    sa.column("job_type", sa.String),
    sa.column("payload", Json),
    sa.column("priority", sa.Integer),
    sa.column("interval_s", sa.Float),
    sa.column("next_run_at", Timestamp),
    sa.column("updated_at", Timestamp),
)


def upgrade() -> None:
    bind = op.get_bind()
    folders = bind.execute(sa.text("SELECT folder FROM projects")).scalars().all()
    existing = set(bind.execute(sa.text("SELECT name FROM job_schedules")).scalars())
    now = datetime.now(UTC)
    rows = [
        {
            "name": f"project:{folder}:{job_type}",
            "job_type": job_type,
            "payload": {"folder": folder},
            "priority": priority,
            "interval_s": period,
            "next_run_at": now + timedelta(seconds=period),
            "updated_at": now,
        }
        for folder in folders
        for job_type, priority, period in TASKS
        if f"project:{folder}:{job_type}" not in existing
    ]
    if rows:
        op.bulk_insert(job_schedules, rows)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM job_schedules WHERE name LIKE 'project:%'"))
