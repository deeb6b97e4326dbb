"""A project's jobs by hand (reference 003): `process` (generate_derivatives), the generic
enqueue of any project job type with `payload.filenames` as items, and the listing of a
project's jobs. The job payloads always name the project's folder."""

from __future__ import annotations

from typing import Any

from enlarger.errors import Invalid
from enlarger.library import image_records, listing, projects
from enlarger.library.image_records import JobType
from enlarger.library.library import Library
from enlarger.library.tasks import PRIORITY, Maintenance
from enlarger.queue import Job

ITEMIZED = {
    JobType.GENERATE_DERIVATIVES.value: image_records.DERIVATIVE_PRIORITY,
    JobType.UPLOAD_POSTPROCESS.value: image_records.UPLOAD_PRIORITY,
}
PROJECT_JOB_TYPES = sorted([*ITEMIZED, *(task.value for task in Maintenance)])
MAX_FILENAMES = 10_000


class InvalidJob(Invalid):
    """A job request enlarger will not queue; the message says why."""

    code = "INVALID_JOB"


def process(
    library: Library, folder: str, force: bool = False, filenames: list[str] | None = None
) -> Job:
    """Queue generate_derivatives for the named files, or for every photo's shown file."""
    payload: dict[str, Any] = {"force": force}
    if filenames is not None:
        payload["filenames"] = filenames
    return enqueue(library, folder, JobType.GENERATE_DERIVATIVES.value, payload)


def enqueue(library: Library, folder: str, job_type: str, payload: dict[str, Any]) -> Job:
    """Any project job type; `payload.filenames` become the job's items (files of the
    project, checked). InvalidJob for an unknown type or a payload it cannot run."""
    project = projects.get_project(library, folder)
    if job_type not in PROJECT_JOB_TYPES:
        raise InvalidJob(
            f"unknown job type {job_type!r}; a project's jobs are {', '.join(PROJECT_JOB_TYPES)}"
        )
    payload = {**payload, "folder": project.folder}
    if job_type not in ITEMIZED:
        unknown = set(payload) - {"folder", "dryRun"}
        if unknown:
            raise InvalidJob(f"{job_type} takes only dryRun, not {', '.join(sorted(unknown))}")
        priority = PRIORITY[Maintenance(job_type)]
        return _queue(library, job_type, payload, priority, None)
    filenames = payload.get("filenames")
    if filenames is not None:
        _check_filenames(library, folder, filenames)
    elif job_type == JobType.UPLOAD_POSTPROCESS.value:
        raise InvalidJob("upload_postprocess needs payload.filenames")
    else:  # every photo, by the file it is shown by
        filenames = [
            p["source"]
            for p in listing.photos_of(library, projects.get_project(library, folder))
            if p["source"]
        ]
    payload["filenames"] = filenames
    return _queue(library, job_type, payload, ITEMIZED[job_type], filenames)


def _check_filenames(library: Library, folder: str, filenames: Any) -> None:
    if not isinstance(filenames, list) or not all(isinstance(n, str) for n in filenames):
        raise InvalidJob("payload.filenames must be a list of file names")
    if len(filenames) > MAX_FILENAMES:
        raise InvalidJob(f"at most {MAX_FILENAMES} file names per job")
    if len(set(filenames)) != len(filenames):
        raise InvalidJob("payload.filenames names a file twice")
    known = {
        f["filename"]
        for p in listing.photos_of(library, projects.get_project(library, folder))
        for f in p["files"]
    }
    unknown = [name for name in filenames if name not in known]
    if unknown:
        raise InvalidJob(f"no such files in {folder!r}: {', '.join(unknown[:20])}")


def _queue(
    library: Library,
    job_type: str,
    payload: dict[str, Any],
    priority: int,
    items: list[str] | None,
) -> Job:
    job_id = library.queue.enqueue(job_type, payload, priority=priority, items=items).id
    job = library.queue.store.get_job(job_id)
    if job is None:  # pruned already: only a misconfigured prune could do that
        raise LookupError(f"job {job_id} is gone")
    return job


def list_jobs(
    library: Library,
    folder: str,
    status: str | None = None,
    job_type: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Job], int]:
    """The project's jobs in the hot table (finished ones until they are pruned to
    history), newest first, and how many match."""
    project = projects.get_project(library, folder)
    return library.queue.store.list_jobs(
        status=status,
        job_type=job_type,
        payload_match=("folder", project.folder),
        limit=limit,
        offset=offset,
    )
