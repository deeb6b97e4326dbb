"""Jobs as reference 003 shows them: one job with its items (the live stream of their
events is in `events.py`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from enlarger.api.deps import LibraryDep
from enlarger.api.schemas.base_models import ERRORS
from enlarger.api.schemas.job_detail_models import JobDetail
from enlarger.api.shapes import JobId
from enlarger.library.library import Library
from enlarger.queue import Job

router = APIRouter(tags=["jobs"], responses=ERRORS)


def job_or_404(library: Library, job_id: int) -> Job:
    job = library.queue.store.get_job(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


@router.get(
    "/api/jobs/{job_id}",
    summary="One job with its items summary and its items",
    operation_id="get_job",
)
def get_job(
    job_id: JobId,
    library: LibraryDep,
    items: Annotated[bool, Query(description="List every item too")] = True,
) -> JobDetail:
    job = job_or_404(library, job_id)
    listed = library.queue.store.list_items(job_id) if items else None
    return JobDetail.of(library, job, listed)
