"""Projects and their photos (reference 003): create and list projects, upload files into
one, list its photos and record which of each photo's JPG and RAW to keep and the
culling decisions (pick or reject, stars, a colour label); commit and revert that
intent; queue a project's jobs (derivatives, maintenance) and list them."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from enlarger.api.admin import status_filter
from enlarger.api.deps import LibraryDep
from enlarger.api.multipart import read_upload_form
from enlarger.api.shapes import Offset, iso, job_json, pagination
from enlarger.library import listing, maintenance, project_jobs, projects
from enlarger.library.sidecars import NAMINGS, Handoff
from enlarger.library.tasks import Maintenance
from enlarger.media.xmp import PICKS_AS

router = APIRouter()


class NewProject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str = Field(min_length=1, max_length=200)
    title: str | None = Field(None, max_length=200)  # it is the collection's name too


class HandoffChange(BaseModel):
    """How the project's decisions are written for other tools (docs/culling.md)."""

    model_config = ConfigDict(extra="forbid")
    picksAs: Literal[PICKS_AS] | None = Field(  # type: ignore[valid-type]
        None,
        description="How a pick reaches tools with no pick flag in XMP (Lightroom Classic, "
        "Capture One, darktable): 'rating' writes an unrated pick with one star, a label "
        "name gives an unlabelled pick that label, 'none' writes the pick flags only",
    )
    sidecarNames: Literal[NAMINGS] | None = Field(  # type: ignore[valid-type]
        None,
        description="'both' (IMG_1.xmp and IMG_1.CR2.xmp), 'basename' (IMG_1.xmp: "
        "Lightroom, Capture One, Photo Mechanic) or 'filename' (IMG_1.CR2.xmp: darktable, "
        "digiKam)",
    )
    embedXmp: StrictBool | None = Field(
        None,
        description="Also write the decisions into JPEG and DNG files (what Lightroom reads "
        "for them); their image data stays byte for byte, their checksum changes",
    )


class ProjectChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(None, min_length=1, max_length=200)
    options: HandoffChange | None = None


class CommitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trash: StrictBool = Field(
        True, description="false: write the decisions to the sidecars only; nothing moves"
    )
    dryRun: StrictBool = Field(
        False, description="true: change nothing; `trashed` lists the files that would move"
    )


class PhotoChange(BaseModel):
    """What to record of a photo; a field left out (or a null keep flag) is unchanged, and
    a null `label` clears it."""

    model_config = ConfigDict(extra="forbid")
    keep_jpg: bool | None = None
    keep_raw: bool | None = None
    flag: Literal["pick", "reject", "unflagged"] | None = None
    rating: int | None = Field(None, ge=0, le=5)
    label: Literal["red", "yellow", "green", "blue", "purple"] | None = None

    def changes(self) -> dict[str, Any]:
        given = {name: getattr(self, name) for name in self.model_fields_set}
        return {k: v for k, v in given.items() if v is not None or k == "label"}


class PhotosChange(PhotoChange):
    basenames: list[str] = Field(min_length=1, max_length=5000)


def _project_json(row: Any, photo_count: int) -> dict[str, Any]:
    return {
        "folder": row.folder,
        "title": row.title,
        "collection": row.name,
        "createdAt": iso(row.created_at),
        "photoCount": photo_count,
        "options": Handoff.of(row.options).as_json(),
    }


@router.post("/api/projects", status_code=201, summary="Create a project (a folder of photos)")
def create_project(new: NewProject, library: LibraryDep) -> dict[str, Any]:
    return _project_json(projects.create_project(library, new.folder, new.title), 0)


@router.get("/api/projects", summary="Every project, with its number of photos")
def list_projects(library: LibraryDep) -> dict[str, Any]:
    rows = projects.list_projects(library)
    return {"projects": [_project_json(row, row.photo_count) for row in rows]}


@router.get("/api/projects/{folder}", summary="One project, with its options")
def get_project(folder: str, library: LibraryDep) -> dict[str, Any]:
    """With `settling`: files folder_check found still being written (it looks again)."""
    found = _project_json(*projects.project_with_count(library, folder))
    return found | {"settling": projects.settling(library, folder)}


@router.patch(
    "/api/projects/{folder}", summary="Retitle a project, or change how its decisions are written"
)
def change_project(folder: str, change: ProjectChange, library: LibraryDep) -> dict[str, Any]:
    if change.title is not None:
        projects.retitle(library, folder, change.title)
    if change.options is not None:
        projects.set_handoff(library, folder, change.options.model_dump(exclude_none=True))
    return _project_json(*projects.project_with_count(library, folder))


@router.post(
    "/api/projects/{folder}/upload",
    status_code=201,
    summary="Upload files into a project (multipart: one or more `files` parts)",
    responses={200: {"description": "Every file was already in the project, or refused"}},
)
async def upload(folder: str, request: Request, library: LibraryDep) -> JSONResponse:
    projects.get_project(library, folder)  # 404 before reading a large body
    form = await read_upload_form(request, library, "files", many=True)
    received = [(f.filename, f.received) for f in form.files]
    done = await run_in_threadpool(projects.upload, library, folder, received)
    body = {
        "files": [asdict(outcome) for outcome in done.files],
        "jobId": done.job_id,
    }
    return JSONResponse(body, status_code=201 if done.job_id is not None else 200)


@router.get("/api/projects/{folder}/photos", summary="The project's photos, in base name order")
def list_photos(
    folder: str,
    library: LibraryDep,
    basename: Annotated[
        list[str] | None, Query(max_length=500, description="Only these photos (repeat it)")
    ] = None,
    after: Annotated[str | None, Query(description="The base name a page starts after")] = None,
    limit: Annotated[int | None, Query(ge=1, le=5000, description="At most this many")] = None,
    bursts: Annotated[
        bool,
        Query(
            description="false: do not find the project's bursts again first, even if it "
            "changed (a page fetching photos as an import's events come, many a minute)"
        ),
    ] = True,
) -> Response:
    page = listing.photo_page(
        library,
        projects.get_project(library, folder),
        basenames=basename,
        after=after,
        limit=limit,
        fresh_bursts=bursts,
    )
    body = {"photos": page.photos, "total": page.total, "nextAfter": page.next_after}
    # thousands of photos: encoded as they are (plain JSON values), not walked by FastAPI
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


@router.patch(
    "/api/projects/{folder}/photos/{basename}",
    summary="Record a photo's keep flags and decisions (applied by commit-changes)",
)
def change_photo(
    folder: str, basename: str, change: PhotoChange, library: LibraryDep
) -> dict[str, Any]:
    return projects.change_photo(library, folder, basename, change.changes())


@router.patch(
    "/api/projects/{folder}/photos",
    summary="Record the same keep flags or decisions on many photos at once",
)
def change_photos(folder: str, change: PhotosChange, library: LibraryDep) -> dict[str, Any]:
    changes = change.changes()
    changes.pop("basenames")
    unknown = projects.change_photos(library, folder, change.basenames, changes)
    return {"changed": len(set(change.basenames)) - len(unknown), "unknown": unknown}


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filenames: list[str] = Field(min_length=1, max_length=1000)


@router.post(
    "/api/projects/{folder}/commit-changes",
    summary="Write decisions to the sidecars; files not kept and rejected go to the .trash",
)
def commit_changes(
    folder: str,
    library: LibraryDep,
    request: Annotated[CommitRequest | None, Body()] = None,
) -> dict[str, Any]:
    request = request or CommitRequest()
    done = projects.commit_changes(library, folder, trash=request.trash, dry_run=request.dryRun)
    return asdict(done) | {"dryRun": request.dryRun}


@router.post(
    "/api/projects/{folder}/revert-changes",
    summary="Reset every photo's keep flags to the files it has (nothing moves)",
)
def revert_changes(folder: str, library: LibraryDep) -> dict[str, Any]:
    return {"photosChanged": projects.revert_changes(library, folder)}


@router.get("/api/projects/{folder}/trash", summary="Files in the project's .trash, restorable")
def list_trash(folder: str, library: LibraryDep) -> dict[str, Any]:
    return {"files": projects.list_trash(library, folder)}


@router.post(
    "/api/projects/{folder}/trash/restore",
    summary="Bring files back from the project's .trash while they are there",
)
def restore(folder: str, request: RestoreRequest, library: LibraryDep) -> dict[str, Any]:
    return asdict(projects.restore_from_trash(library, folder, request.filenames))


class ProcessRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    force: bool = False
    filenames: list[str] | None = Field(None, max_length=project_jobs.MAX_FILENAMES)


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(description=f"one of {', '.join(project_jobs.PROJECT_JOB_TYPES)}")
    payload: dict[str, Any] = Field(default_factory=dict)


@router.post(
    "/api/projects/{folder}/process",
    status_code=202,
    summary="Queue generate_derivatives for the project's photos (or the named files)",
)
def process(folder: str, request: ProcessRequest, library: LibraryDep) -> dict[str, Any]:
    job = project_jobs.process(library, folder, request.force, request.filenames)
    return {"jobId": job.id, "job": job_json(job)}


@router.post(
    "/api/projects/{folder}/jobs",
    status_code=202,
    summary="Queue any project job; payload.filenames become the job's items",
)
def enqueue_job(folder: str, request: JobRequest, library: LibraryDep) -> dict[str, Any]:
    job = project_jobs.enqueue(library, folder, request.type, request.payload)
    return {"jobId": job.id, "job": job_json(job)}


@router.get("/api/projects/{folder}/jobs", summary="The project's jobs, newest first")
def list_jobs(
    folder: str,
    library: LibraryDep,
    status: Annotated[str | None, Query(description="PENDING, RUNNING, COMPLETED…")] = None,
    type: Annotated[str | None, Query(description="A project job type")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    if type is not None and type not in project_jobs.PROJECT_JOB_TYPES:
        known = ", ".join(project_jobs.PROJECT_JOB_TYPES)
        raise project_jobs.InvalidJob(f"unknown job type {type!r}; use one of {known}")
    found, total = project_jobs.list_jobs(
        library, folder, status_filter(status), type, limit, offset
    )
    return {
        "jobs": [job_json(job) for job in found],
        "pagination": pagination(total, limit, offset, len(found)),
    }


@router.post(
    "/api/projects/{folder}/maintenance/{task}",
    summary="Run a maintenance task now: queued, or with dryRun=true the diff it would apply",
    responses={202: {"description": "Queued: the job's result will hold the report"}},
)
def run_maintenance(
    folder: str,
    task: Maintenance,
    library: LibraryDep,
    dry_run: Annotated[bool, Query(alias="dryRun")] = False,
) -> JSONResponse:
    if dry_run:
        report = maintenance.run(library, task, folder, dry_run=True)
        return JSONResponse(report.as_dict())
    job = project_jobs.enqueue(library, folder, task.value, {})
    return JSONResponse({"jobId": job.id, "job": job_json(job)}, status_code=202)
