"""One queue job in full: its lease, what a retry would do, its result and its image
(`GET /api/admin/jobs/{id}`), and with its items (`GET /api/jobs/{id}`, reference 003)."""

from __future__ import annotations

import contextlib
from typing import Any

from pydantic import Field

from enlarger import errors
from enlarger.api.schemas.base_models import ApiModel, Timestamp, absent_if_none
from enlarger.api.schemas.image_models import Image, image_of
from enlarger.api.schemas.job_models import Job, job_fields
from enlarger.library import image_records
from enlarger.library.library import Library
from enlarger.queue import Job as QueueJob
from enlarger.queue.model import ItemStatus, JobItem


class Lock(ApiModel):
    locked_by: str | None
    locked_at: Timestamp | None
    lease_expires_at: Timestamp | None
    lease_token: int


class RetryInfo(ApiModel):
    attempts: int
    max_attempts: int
    remaining_attempts: int
    will_retry: bool
    next_attempt_at: Timestamp | None
    can_retry_manually: bool
    last_error: str | None
    error_code: str | None


class Item(ApiModel):
    """One item of an itemized job: a file of a project job."""

    key: str
    status: ItemStatus
    progress: float | None
    error: str | None
    data: Any
    updated_at: Timestamp | None

    @classmethod
    def of(cls, item: JobItem) -> Item:
        return cls(
            key=item.key,
            status=item.status,
            progress=item.progress,
            error=item.error,
            data=item.data,
            updated_at=item.updated_at,
        )


class JobDetail(Job):
    """The job with its lease, retry information, items summary and (for image jobs)
    its image."""

    locked: bool
    lock: Lock | None = Field(description="The lease, while the job runs")
    retry_info: RetryInfo
    cancel_requested: bool
    result: Any = Field(description="What the job's handler returned")
    items_summary: dict[str, int] | None = Field(description="An itemized job's items by state")
    image: Image | None
    items: list[Item] | None = Field(
        None, exclude_if=absent_if_none, description="Every item (unless ?items=false)"
    )

    @classmethod
    def of(cls, library: Library, job: QueueJob, items: list[JobItem] | None = None) -> JobDetail:
        running = job.status.value == "running"
        waiting_to_retry = job.status.value == "pending" and job.attempts > 0
        lock = None
        if running:
            lock = Lock(
                locked_by=job.locked_by,
                locked_at=job.locked_at,
                lease_expires_at=job.lease_expires_at,
                lease_token=job.lease_token,
            )
        return cls(
            **job_fields(job),
            locked=running,
            lock=lock,
            retry_info=RetryInfo(
                attempts=job.attempts,
                max_attempts=job.max_attempts,
                remaining_attempts=max(job.max_attempts - job.attempts, 0),
                will_retry=waiting_to_retry,
                next_attempt_at=job.run_at if waiting_to_retry else None,
                can_retry_manually=job.status.value in ("failed", "cancelled"),
                last_error=job.last_error,
                error_code=job.error_code,
            ),
            cancel_requested=job.cancel_requested,
            result=job.result,
            items_summary=job.items_summary,
            image=_image_of(library, job),
            items=None if items is None else [Item.of(item) for item in items],
        )


def _image_of(library: Library, job: QueueJob) -> Image | None:
    """The image an image job works on, deleted or not; None for other jobs."""
    image_id = job.payload.get("imageId") if isinstance(job.payload, dict) else None
    if isinstance(image_id, str):
        with contextlib.suppress(errors.NotFound):
            return image_of(
                library, image_records.get_image_row(library, image_id, include_deleted=True)
            )
    return None
