"""Jobs as reference 003 shows them: one job with its items (the live stream of their
events is in `events.py`)."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from enlarger.api.deps import LibraryDep
from enlarger.api.shapes import JobId, images_json, iso, job_detail_json
from enlarger.library import service
from enlarger.library.library import Library
from enlarger.queue import Job

router = APIRouter(tags=["jobs"])


def job_or_404(library: Library, job_id: int) -> Job:
    job = library.queue.store.get_job(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


def job_detail(library: Library, job: Job) -> dict[str, Any]:
    """The job with its lease, retry information, items summary and (for image jobs) its
    image."""
    image = None
    image_id = job.payload.get("imageId") if isinstance(job.payload, dict) else None
    if isinstance(image_id, str):
        with contextlib.suppress(service.NotFound):
            row = service.get_image_row(library, image_id, include_deleted=True)
            image = images_json(library, [row])[0]
    return job_detail_json(job, image)


@router.get("/api/jobs/{job_id}", summary="One job with its items summary and its items")
def get_job(
    job_id: JobId,
    library: LibraryDep,
    items: Annotated[bool, Query(description="List every item too")] = True,
) -> dict[str, Any]:
    job = job_or_404(library, job_id)
    body = job_detail(library, job)
    if items:
        body["items"] = [
            {
                "key": item.key,
                "status": item.status.value,
                "progress": item.progress,
                "error": item.error,
                "data": item.data,
                "updatedAt": iso(item.updated_at),
            }
            for item in library.queue.store.list_items(job_id)
        ]
    return body
