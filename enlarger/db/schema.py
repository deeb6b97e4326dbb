"""The tables, in one place. Migrations in `migrations/versions/` create exactly these.

Job engine tables:
- `jobs`: the hot table: live jobs and recently finished ones (pruned to history).
- `job_items`: per-item status of itemized jobs (one row per file of an upload, say).
- `job_history`: finished jobs moved out of the hot table; append-only, never claimed from.
- `job_history_counts`: running totals of history by type and status, so dashboards
  count without scanning history.
- `job_events`: every state change, with monotonic ids for resumable streams.
- `job_schedules`: periodic jobs; `next_run_at` is advanced by compare-and-set so one
  period fires once whatever the number of workers.
- `job_type_pauses`: job types that workers must not claim.
- `worker_stats`: each worker's cumulative counts (outcomes, run times), for `/metrics`.
"""

from __future__ import annotations

import sqlalchemy as sa

from enlarger.db.types import BigId, Json, NullableJson, Timestamp

metadata = sa.MetaData()

LIVE_STATUSES = ("pending", "running")
FINISHED_STATUSES = ("completed", "failed", "cancelled")

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("payload", NullableJson, nullable=True),
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
    # a job that failed because its database or storage was out waits, its attempts not
    # spent, for the outage budget counted from here (its first such failure)
    sa.Column("outage_since", Timestamp, nullable=True),
    sa.Index(
        "ix_jobs_ready",
        sa.text("priority DESC"),
        "run_at",
        "id",
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    ),
    sa.Index(
        "ix_jobs_lease",
        "lease_expires_at",
        postgresql_where=sa.text("status = 'running'"),
        sqlite_where=sa.text("status = 'running'"),
    ),
    sa.Index(
        "uq_jobs_idempotency_live",
        "idempotency_key",
        unique=True,
        postgresql_where=sa.text(
            "idempotency_key IS NOT NULL AND status IN ('pending', 'running')"
        ),
        sqlite_where=sa.text("idempotency_key IS NOT NULL AND status IN ('pending', 'running')"),
    ),
    sa.Index("ix_jobs_status_type", "status", "type"),
    sa.Index(
        "ix_jobs_finished",
        "finished_at",
        postgresql_where=sa.text("finished_at IS NOT NULL"),
        sqlite_where=sa.text("finished_at IS NOT NULL"),
    ),
    sqlite_autoincrement=True,  # ids are never reused, even after the hot table empties
)

job_items = sa.Table(
    "job_items",
    metadata,
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

job_history = sa.Table(
    "job_history",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("type", sa.String(100), nullable=False),
    sa.Column("payload", NullableJson, nullable=True),
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

job_history_counts = sa.Table(
    "job_history_counts",
    metadata,
    sa.Column("type", sa.String(100), primary_key=True),
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)

job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("job_id", sa.BigInteger, nullable=True),
    sa.Column("job_type", sa.String(100), nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=True),
    sa.Column("data", Json, nullable=True),
    sa.Index("ix_job_events_created_at", "created_at"),
    sqlite_autoincrement=True,  # event ids only grow: clients resume from the last one
)

job_schedules = sa.Table(
    "job_schedules",
    metadata,
    sa.Column("name", sa.String(300), primary_key=True),  # project:<folder>:<task>
    sa.Column("job_type", sa.String(100), nullable=False),
    sa.Column("payload", NullableJson, nullable=True),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("interval_s", sa.Float, nullable=False),
    sa.Column("next_run_at", Timestamp, nullable=False),
    sa.Column("last_job_id", sa.BigInteger, nullable=True),
    sa.Column("updated_at", Timestamp, nullable=False),
)

job_type_pauses = sa.Table(
    "job_type_pauses",
    metadata,
    sa.Column("job_type", sa.String(100), primary_key=True),
    sa.Column("paused_at", Timestamp, nullable=False),
)

worker_stats = sa.Table(
    "worker_stats",
    metadata,
    sa.Column("worker_id", sa.String(200), primary_key=True),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("stats", Json, nullable=False),  # queue/telemetry.py's snapshot
)

# ---- photo library --------------------------------------------------------------------
# A project is what the photo API calls a collection; its originals live under
# `projects/<folder>/` in storage.

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("folder", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("title", sa.String(500), nullable=True),
    # how decisions leave enlarger (library/sidecars.py's Handoff), camelCase keys
    sa.Column("options", Json, nullable=True),
    # what the project's photos were when their bursts were last found (library/listing.py)
    sa.Column("bursts_signature", sa.String(100), nullable=True),
)

images = sa.Table(
    "images",
    metadata,
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
    sa.Column("taken_at", sa.String(40), nullable=True),  # ISO 8601, with the camera's offset
    sa.Column("camera_make", sa.String(200), nullable=True),
    sa.Column("camera_model", sa.String(200), nullable=True),
    sa.Column("exif", Json, nullable=True),  # every metadata field read, as JSON
    sa.Column("thumbhash", sa.String(64), nullable=True),
    sa.Column("assessment", Json, nullable=True),  # media/assess.py's, from the preview
    sa.Column("temp_path", sa.String(500), nullable=True),  # the upload, until offloaded
    sa.Column("original_key", sa.String(700), nullable=True),  # storage key, never rewritten
    # the key claimed for the original while it is moved there (no lock held meanwhile)
    sa.Column("landing_key", sa.String(700), nullable=True),
    sa.Column("uploaded_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("stored_at", Timestamp, nullable=True),
    sa.Column("deleted_at", Timestamp, nullable=True),
    # the checksum the file arrived with, once enlarger wrote XMP into it (opt-in): a card
    # imported again is still recognised
    sa.Column("source_checksum", sa.String(64), nullable=True),
    # the same bytes uploaded twice to one project are one image
    sa.Index(
        "uq_images_project_checksum",
        "project_id",
        "checksum",
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
        sqlite_where=sa.text("deleted_at IS NULL"),
    ),
    sa.Index("ix_images_status", "status"),
    sa.Index("ix_images_uploaded_at", "uploaded_at"),
)

derivatives = sa.Table(
    "derivatives",
    metadata,
    sa.Column("image_id", sa.String(32), sa.ForeignKey("images.id"), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),  # thumb_64 … thumb_512, preview
    sa.Column("storage_key", sa.String(700), nullable=False),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("recipe_hash", sa.String(32), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

# ---- projects' photos ----------------------------------------------------------------------
# A photo is every file of a project sharing a base name (IMG_0001.JPG + IMG_0001.CR2);
# each file is an image row, linked here with its role. The keep flags and the decisions
# are the user's intent, applied to the folder (and its .xmp sidecars) by commit-changes;
# availability is which files exist.

photos = sa.Table(
    "photos",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.BigInteger, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("basename", sa.String(500), nullable=False),
    sa.Column("keep_jpg", sa.Boolean, nullable=False),
    sa.Column("keep_raw", sa.Boolean, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    # culling decisions (media/xmp.py): pick, reject or unflagged; 0-5 stars; a colour
    sa.Column("flag", sa.String(9), nullable=False, server_default="unflagged"),
    sa.Column("rating", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("label", sa.String(8), nullable=True),
    # its burst, found over the whole project and kept until the project changes: the
    # burst's first frame, its size, whether this is the frame suggested, and why
    sa.Column("burst", sa.String(500), nullable=True),
    sa.Column("burst_size", sa.Integer, nullable=True),
    sa.Column("best_in_burst", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("burst_reasons", Json, nullable=True),
    sa.UniqueConstraint("project_id", "basename", name="uq_photos_project_basename"),
)

# A photo's `.xmp` sidecars: `IMG_1.xmp` (Lightroom's, Capture One's and Photo Mechanic's
# name) and `IMG_1.CR2.xmp` (darktable's and digiKam's), in the folder or, with the files
# they describe, in its trash (`trashed_at`); `name` is the one they are restored to.
photo_sidecars = sa.Table(
    "photo_sidecars",
    metadata,
    sa.Column("key", sa.String(700), primary_key=True),
    sa.Column("photo_id", sa.BigInteger, sa.ForeignKey("photos.id"), nullable=False),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("trashed_at", Timestamp, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    # its sha256 when enlarger last read or wrote it: another difference is an edit made
    # elsewhere (darktable, Lightroom), whose decisions are read, never overwritten unseen
    sa.Column("checksum", sa.String(64), nullable=True),
    sa.Column("seen_at", Timestamp, nullable=True),
    # where its file is on its way to (the trash, or back), claimed before the move, and
    # since when: maintenance finishes a move whose process died
    sa.Column("moving_to", sa.String(700), nullable=True),
    sa.Column("moving_since", Timestamp, nullable=True),
    sa.Index("ix_photo_sidecars_photo", "photo_id"),
)

photo_files = sa.Table(
    "photo_files",
    metadata,
    sa.Column("image_id", sa.String(32), sa.ForeignKey("images.id"), primary_key=True),
    sa.Column("photo_id", sa.BigInteger, sa.ForeignKey("photos.id"), nullable=False),
    sa.Column("role", sa.String(8), nullable=False),  # jpg (any rendered image) or raw
    sa.Index("ix_photo_files_photo", "photo_id"),
)

# ---- product images (reference 004) -----------------------------------------------------
# A product job takes one announced image of a SKU through segmentation, backgrounds,
# composites and publishing; its artifacts live under `products/<sku>/<job id>/`.

product_jobs = sa.Table(
    "product_jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("sku", sa.String(200), nullable=False),
    sa.Column("image_url", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("theme", sa.String(100), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),  # builtin or external
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error_code", sa.String(32), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("original_key", sa.String(700), nullable=True),
    sa.Column("mask_key", sa.String(700), nullable=True),
    sa.Column("cutout_key", sa.String(700), nullable=True),
    sa.Column("bg_keys", Json, nullable=True),  # [key]
    sa.Column("composite_keys", Json, nullable=True),  # [key]
    sa.Column("thumb_keys", Json, nullable=True),  # [key], one per composite
    sa.Column("composites", Json, nullable=True),  # [{key, name, width, height, thumbKey}]
    sa.Column("media_ids", Json, nullable=True),  # what the publishers gave back
    sa.Column("published", Json, nullable=True),  # {publisher: details}
    sa.Column("stage_job_id", sa.BigInteger, nullable=True),  # the queue job of the stage
    sa.Column("cutout_method", sa.String(40), nullable=True),  # what made the mask
    sa.Column("requested_method", sa.String(40), nullable=True),  # a reviewer's re-run choice
    sa.Column("confidence", sa.Float, nullable=True),  # 0..1: how sure the cut-out is
    sa.Column("concerns", Json, nullable=True),  # [{code, message}]: why it is doubtful
    sa.Column("review_decision", sa.String(16), nullable=True),  # accepted, rejected, rerun
    sa.Column("reviewed_at", Timestamp, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("started_at", Timestamp, nullable=True),  # when it was QUEUED
    sa.Column("completed_at", Timestamp, nullable=True),  # DONE or FAILED
    sa.Index(  # a photo whose job failed may be announced again
        "uq_product_jobs_live_image",
        "sku",
        "sha256",
        "theme",
        unique=True,
        postgresql_where=sa.text("status <> 'FAILED'"),
        sqlite_where=sa.text("status <> 'FAILED'"),
    ),
    sa.Index("ix_product_jobs_status", "status"),
    sa.Index("ix_product_jobs_created_at", "created_at"),
)

# Costs per provider call, in billionths of a dollar: integers sum exactly.
product_costs = sa.Table(
    "product_costs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("product_job_id", sa.String(32), nullable=False),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("provider", sa.String(100), nullable=False),
    sa.Column("nano_usd", sa.BigInteger, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Index("ix_product_costs_job", "product_job_id"),
)

# Standard Webhooks delivery ids seen, so a redelivery creates nothing.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("webhook_id", sa.String(200), primary_key=True),
    sa.Column("product_job_id", sa.String(32), nullable=False),
    sa.Column("received_at", Timestamp, nullable=False),
)

# ---- access control ---------------------------------------------------------------------
# API tokens: only a SHA-256 of each token is kept; the token itself is shown once.

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),  # viewer, uploader or admin
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),  # the token's start, to tell them apart
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_used_at", Timestamp, nullable=True),
    sa.Column("revoked_at", Timestamp, nullable=True),
)
