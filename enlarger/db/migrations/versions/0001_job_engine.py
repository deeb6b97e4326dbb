"""The job engine's tables.

Revision ID: 0001_job_engine
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from enlarger.db.types import BigId, Json, Timestamp

revision = "0001_job_engine"
down_revision = None
branch_labels = None
depends_on = None

LIVE_KEY = "idempotency_key IS NOT NULL AND status IN ('pending', 'running')"


def _partial(where: str) -> dict[str, sa.TextClause]:
    return {"postgresql_where": sa.text(where), "sqlite_where": sa.text(where)}


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("payload", Json, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("run_at", Timestamp, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("timeout_s", sa.Float, nullable=True),
        sa.Column("lease_token", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("locked_by", sa.String(200), nullable=True),
        sa.Column("locked_at", Timestamp, nullable=True),
        sa.Column("lease_expires_at", Timestamp, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("idempotency_key", sa.String(300), nullable=True),
        sa.Column("progress", sa.Float, nullable=True),
        sa.Column("result", Json, nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_jobs_ready",
        "jobs",
        [sa.text("priority DESC"), "run_at", "id"],
        **_partial("status = 'pending'"),
    )
    op.create_index("ix_jobs_lease", "jobs", ["lease_expires_at"], **_partial("status = 'running'"))
    op.create_index(
        "uq_jobs_idempotency_live", "jobs", ["idempotency_key"], unique=True, **_partial(LIVE_KEY)
    )
    op.create_index("ix_jobs_status_type", "jobs", ["status", "type"])
    op.create_index(
        "ix_jobs_finished", "jobs", ["finished_at"], **_partial("finished_at IS NOT NULL")
    )

    op.create_table(
        "job_items",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.BigInteger, nullable=False),
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("progress", sa.Float, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("data", Json, nullable=True),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.UniqueConstraint("job_id", "key", name="uq_job_items_job_key"),
    )

    op.create_table(
        "job_history",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("payload", Json, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.String(300), nullable=True),
        sa.Column("result", Json, nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("items_summary", Json, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp, nullable=True),
    )

    op.create_table(
        "job_history_counts",
        sa.Column("type", sa.String(100), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )

    op.create_table(
        "job_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("job_id", sa.BigInteger, nullable=True),
        sa.Column("job_type", sa.String(100), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("data", Json, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_job_events_created_at", "job_events", ["created_at"])

    op.create_table(
        "job_schedules",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("job_type", sa.String(100), nullable=False),
        sa.Column("payload", Json, nullable=True),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("interval_s", sa.Float, nullable=False),
        sa.Column("next_run_at", Timestamp, nullable=False),
        sa.Column("last_job_id", sa.BigInteger, nullable=True),
        sa.Column("updated_at", Timestamp, nullable=False),
    )

    op.create_table(
        "job_type_pauses",
        sa.Column("job_type", sa.String(100), primary_key=True),
        sa.Column("paused_at", Timestamp, nullable=False),
    )

    if op.get_bind().dialect.name == "postgresql":
        # Queue tables churn: vacuum and analyze them early so claims keep using the
        # ready index instead of wading through dead entries or planning on stale stats.
        for table in ("jobs", "job_items", "job_events"):
            op.execute(
                f"ALTER TABLE {table} SET (autovacuum_vacuum_scale_factor = 0.02, "
                "autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0)"
            )


def downgrade() -> None:
    for table in (
        "job_type_pauses",
        "job_schedules",
        "job_events",
        "job_history_counts",
        "job_history",
        "job_items",
        "jobs",
    ):
        op.drop_table(table)
