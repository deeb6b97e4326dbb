"""Admin API over the job engine (reference 001): list and inspect jobs, retry and cancel
them (which the reference deferred), and start a derivative backfill."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query

from enlarger.api.deps import LibraryDep
from enlarger.api.jobs import job_or_404
from enlarger.api.schemas.base_models import ERRORS, Pagination
from enlarger.api.schemas.job_detail_models import JobDetail
from enlarger.api.schemas.job_models import Backfill, Job, JobList, JobStats, Paused
from enlarger.api.shapes import JobId, Offset
from enlarger.library import processing
from enlarger.library.library import Library
from enlarger.queue import JobConflict, JobStatus

router = APIRouter(prefix="/api/admin", tags=["admin"], responses=ERRORS)


def status_filter(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return JobStatus(value.lower()).value
    except ValueError:
        known = ", ".join(s.value.upper() for s in JobStatus)
        raise HTTPException(422, f"unknown job status {value!r}; use one of {known}") from None


def _type_filter(library: Library, value: str | None) -> str | None:
    return None if value is None else _known_type(library, value, 422)


def _known_type(library: Library, job_type: str, status_code: int = 404) -> str:
    known = sorted(library.queue.registry.handlers)
    if job_type not in known:
        raise HTTPException(
            status_code, f"unknown job type {job_type!r}; use one of {', '.join(known)}"
        )
    return job_type


@router.get("/jobs", summary="List jobs, newest first")
def list_jobs(
    library: LibraryDep,
    status: Annotated[str | None, Query(description="PENDING, RUNNING, COMPLETED…")] = None,
    type: Annotated[str | None, Query(description="A job type, like OFFLOAD_ORIGINAL")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> JobList:
    jobs, total = library.queue.store.list_jobs(
        status=status_filter(status),
        job_type=_type_filter(library, type),
        limit=limit,
        offset=offset,
    )
    return JobList(
        jobs=[Job.of(job) for job in jobs],
        pagination=Pagination.of(total, limit, offset, len(jobs)),
    )


@router.get("/jobs/stats", summary="Counts by type, status and lane; throughput; pauses")
def job_stats(library: LibraryDep) -> JobStats:
    """What the dashboard's jobs page shows, from cheap counts (no scan of history)."""
    store = library.queue.store
    by_type: dict[str, dict[str, int]] = {
        name: {status.value.upper(): 0 for status in JobStatus}
        for name in library.queue.registry.handlers
    }
    for (job_type, status), n in store.counts().items():
        by_type.setdefault(job_type, {s.value.upper(): 0 for s in JobStatus})[status.upper()] = n
    lanes = {lane: {"PENDING": 0, "RUNNING": 0} for lane in ("normal", "priority")}
    for (lane, status), n in store.live_counts_by_lane(library.settings.priority_threshold).items():
        lanes[lane][status.upper()] = n
    finished = store.finished_since(60)
    return JobStats.model_validate(
        {
            "byType": dict(sorted(by_type.items())),
            "lanes": lanes,
            "priorityThreshold": library.settings.priority_threshold,
            "paused": sorted(store.paused_types()),
            "completedLastMinute": finished.get(JobStatus.COMPLETED.value, 0),
            "failedLastMinute": finished.get(JobStatus.FAILED.value, 0),
            "queueLagSeconds": store.oldest_ready_age_s(),
        }
    )


@router.post("/job-types/{job_type}/pause", summary="Stop workers claiming jobs of a type")
def pause_type(job_type: str, library: LibraryDep) -> Paused:
    library.queue.store.pause(_known_type(library, job_type))
    return Paused(paused=sorted(library.queue.store.paused_types()))


@router.post("/job-types/{job_type}/resume", summary="Let workers claim jobs of a type again")
def resume_type(job_type: str, library: LibraryDep) -> Paused:
    library.queue.store.resume(_known_type(library, job_type))
    return Paused(paused=sorted(library.queue.store.paused_types()))


@router.get(
    "/jobs/{job_id}",
    summary="One job: attempts, lease, retry info, its image",
    operation_id="get_admin_job",
)
def get_job(job_id: JobId, library: LibraryDep) -> JobDetail:
    return JobDetail.of(library, job_or_404(library, job_id))


def _steer(library: Library, job_id: int, retry: bool) -> JobDetail:
    store = library.queue.store
    try:
        job = store.retry(job_id) if retry else store.cancel(job_id)
    except KeyError:
        raise HTTPException(404, f"no job {job_id}") from None
    except JobConflict as exc:
        raise HTTPException(409, str(exc)) from None
    return JobDetail.of(library, job)


@router.post("/jobs/{job_id}/retry", summary="Run a failed or cancelled job again")
def retry_job(job_id: JobId, library: LibraryDep) -> JobDetail:
    return _steer(library, job_id, retry=True)


@router.post(
    "/jobs/{job_id}/cancel",
    summary="Cancel a pending job or stop a running one",
    operation_id="cancel_job",
)
def cancel_job(job_id: JobId, library: LibraryDep) -> JobDetail:
    return _steer(library, job_id, retry=False)


@router.post("/backfill", summary="Queue derivative work for images lacking current ones")
def backfill(
    library: LibraryDep,
    mode: Annotated[
        Literal["missing", "all"],
        Query(description="missing: only images lacking a current derivative; all: every one"),
    ] = "missing",
) -> Backfill:
    done = processing.backfill(library, everything=mode == "all")
    return Backfill(mode=mode, images=done.images, retired=done.retired)
