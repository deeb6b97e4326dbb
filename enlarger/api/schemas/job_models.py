"""Queue jobs as the admin API (reference 001) and the project API (003) list them, and
the engine's counts."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from enlarger.api.schemas.base_models import ApiModel, Pagination, Timestamp
from enlarger.queue import Job as QueueJob

JobState = Literal["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]
# payload keys that name a place on the server's disk: the API never shows them
SERVER_PATH_KEYS = frozenset({"tempPath"})


class Job(ApiModel):
    id: int
    type: str
    status: JobState
    priority: int
    attempts: int
    max_attempts: int
    progress: float | None
    payload: Any = Field(description="What the job was given (server paths left out)")
    image_id: str | None = Field(description="The image an image job works on")
    locked_by: str | None
    locked_at: Timestamp | None
    error_code: str | None
    last_error: str | None
    run_at: Timestamp | None
    created_at: Timestamp | None
    updated_at: Timestamp | None
    finished_at: Timestamp | None
    archived: bool

    @classmethod
    def of(cls, job: QueueJob) -> Job:
        return cls(**job_fields(job))


def job_fields(job: QueueJob) -> dict[str, Any]:
    """What `Job` shows of a queue job, for it and the models extending it."""
    payload = job.payload if isinstance(job.payload, dict) else {}
    shown = {k: v for k, v in payload.items() if k not in SERVER_PATH_KEYS}
    return {
        "id": job.id,
        "type": job.type,
        "status": job.status.value.upper(),
        "priority": job.priority,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "progress": job.progress,
        "payload": shown if isinstance(job.payload, dict) else job.payload,
        "image_id": payload.get("imageId"),
        "locked_by": job.locked_by,
        "locked_at": job.locked_at,
        "error_code": job.error_code,
        "last_error": job.last_error,
        "run_at": job.run_at,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "finished_at": job.finished_at,
        "archived": job.archived,
    }


class JobList(ApiModel):
    jobs: list[Job]
    pagination: Pagination


class QueuedJob(ApiModel):
    """A job just queued: its id (for `GET /api/jobs/{job_id}`) and the job."""

    job_id: int
    job: Job

    @classmethod
    def of(cls, job: QueueJob) -> QueuedJob:
        return cls(job_id=job.id, job=Job.of(job))


class LaneCounts(ApiModel):
    pending: int = Field(alias="PENDING")
    running: int = Field(alias="RUNNING")


class JobStats(ApiModel):
    """What the dashboard's jobs page shows, from cheap counts."""

    by_type: dict[str, dict[JobState, int]] = Field(
        description="Jobs by type and status, history included"
    )
    lanes: dict[Literal["normal", "priority"], LaneCounts]
    priority_threshold: int
    paused: list[str]
    completed_last_minute: int
    failed_last_minute: int
    queue_lag_seconds: float | None


class Paused(ApiModel):
    paused: list[str] = Field(description="The job types workers do not claim")


class Backfill(ApiModel):
    mode: Literal["missing", "all"]
    images: int = Field(description="How many images had derivative work queued")
    retired: int = Field(
        description="How many derivatives of sizes no recipe makes any more were removed"
    )
