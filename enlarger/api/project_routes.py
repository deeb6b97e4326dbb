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
from enlarger.api.multipart import MAX_FILES, read_upload_form
from enlarger.api.schemas.base_models import (
    BINARY,
    ERRORS,
    Pagination,
    answer,
    links,
    multipart_body,
)
from enlarger.api.schemas.job_models import Job, JobList, QueuedJob
from enlarger.api.schemas.project_models import (
    Committed,
    MaintenanceReport,
    Photo,
    PhotoPage,
    PhotosChanged,
    Project,
    ProjectDetail,
    ProjectList,
    ProjectUpload,
    Restored,
    Reverted,
    Trash,
)
from enlarger.api.shapes import Offset
from enlarger.library import listing, maintenance, project_jobs, projects
from enlarger.library.sidecars import NAMINGS
from enlarger.library.tasks import Maintenance
from enlarger.media.xmp import PICKS_AS

router = APIRouter(responses=ERRORS)
TO_JOB = links(
    "job_id",
    "/jobId",
    get_job="The job queued, with its items",
    get_admin_job="The job with its lease and retry information",
    cancel_job="Cancel the job",
)


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


TO_PROJECT = links(
    "folder",
    "/folder",
    get_project="The project created",
    upload_to_project="Upload files into it",
    list_photos="Its photos",
    list_project_jobs="Its jobs",
)


@router.post(
    "/api/projects",
    status_code=201,
    summary="Create a project (a folder of photos)",
    responses={201: {"description": "The project", "links": TO_PROJECT}},
)
def create_project(new: NewProject, library: LibraryDep) -> Project:
    return Project.of(projects.create_project(library, new.folder, new.title), 0)


@router.get("/api/projects", summary="Every project, with its number of photos")
def list_projects(library: LibraryDep) -> ProjectList:
    rows = projects.list_projects(library)
    return ProjectList(projects=[Project.of(row, row.photo_count) for row in rows])


@router.get(
    "/api/projects/{folder}", summary="One project, with its options", operation_id="get_project"
)
def get_project(folder: str, library: LibraryDep) -> ProjectDetail:
    """With `settling`: files folder_check found still being written (it looks again)."""
    found = Project.of(*projects.project_with_count(library, folder))
    return ProjectDetail(**found.model_dump(), settling=projects.settling(library, folder))


@router.patch(
    "/api/projects/{folder}", summary="Retitle a project, or change how its decisions are written"
)
def change_project(folder: str, change: ProjectChange, library: LibraryDep) -> Project:
    if change.title is not None:
        projects.retitle(library, folder, change.title)
    if change.options is not None:
        projects.set_handoff(library, folder, change.options.model_dump(exclude_none=True))
    return Project.of(*projects.project_with_count(library, folder))


@router.post(
    "/api/projects/{folder}/upload",
    status_code=201,
    summary="Upload files into a project (multipart: one or more `files` parts)",
    operation_id="upload_to_project",
    responses={
        201: {"description": "New files: their upload_postprocess job", "links": TO_JOB},
        200: {
            "model": ProjectUpload,
            "description": "Every file was already in the project, or refused",
        },
    },
    openapi_extra=multipart_body(
        {"files": {"type": "array", "items": BINARY, "minItems": 1, "maxItems": MAX_FILES}},
        ["files"],
        "The files, each a `files` part",
    ),
)
async def upload(
    folder: str, request: Request, response: Response, library: LibraryDep
) -> ProjectUpload:
    projects.get_project(library, folder)  # 404 before reading a large body
    form = await read_upload_form(request, library, "files", many=True)
    received = [(f.filename, f.received) for f in form.files]
    done = await run_in_threadpool(projects.upload, library, folder, received)
    response.status_code = 201 if done.job_id is not None else 200
    return ProjectUpload(files=[asdict(outcome) for outcome in done.files], job_id=done.job_id)


@router.get(
    "/api/projects/{folder}/photos",
    summary="The project's photos, in base name order",
    operation_id="list_photos",
    response_model=PhotoPage,
)
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
def change_photo(folder: str, basename: str, change: PhotoChange, library: LibraryDep) -> Photo:
    return Photo.model_validate(projects.change_photo(library, folder, basename, change.changes()))


@router.patch(
    "/api/projects/{folder}/photos",
    summary="Record the same keep flags or decisions on many photos at once",
)
def change_photos(folder: str, change: PhotosChange, library: LibraryDep) -> PhotosChanged:
    changes = change.changes()
    changes.pop("basenames")
    unknown = projects.change_photos(library, folder, change.basenames, changes)
    return PhotosChanged(changed=len(set(change.basenames)) - len(unknown), unknown=unknown)


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
) -> Committed:
    request = request or CommitRequest()
    done = projects.commit_changes(library, folder, trash=request.trash, dry_run=request.dryRun)
    return Committed(**asdict(done), dry_run=request.dryRun)


@router.post(
    "/api/projects/{folder}/revert-changes",
    summary="Reset every photo's keep flags to the files it has (nothing moves)",
)
def revert_changes(folder: str, library: LibraryDep) -> Reverted:
    return Reverted(photos_changed=projects.revert_changes(library, folder))


@router.get("/api/projects/{folder}/trash", summary="Files in the project's .trash, restorable")
def list_trash(folder: str, library: LibraryDep) -> Trash:
    return Trash.model_validate({"files": projects.list_trash(library, folder)})


@router.post(
    "/api/projects/{folder}/trash/restore",
    summary="Bring files back from the project's .trash while they are there",
)
def restore(folder: str, request: RestoreRequest, library: LibraryDep) -> Restored:
    return Restored.model_validate(projects.restore_from_trash(library, folder, request.filenames))


class ProcessRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    force: bool = False
    filenames: list[str] | None = Field(None, max_length=project_jobs.MAX_FILENAMES)


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # checked by project_jobs.enqueue (its message names them); documented as the choice
    type: str = Field(json_schema_extra={"enum": project_jobs.PROJECT_JOB_TYPES})
    payload: dict[str, Any] = Field(default_factory=dict)


@router.post(
    "/api/projects/{folder}/process",
    status_code=202,
    summary="Queue generate_derivatives for the project's photos (or the named files)",
    responses={202: {"description": "The job queued", "links": TO_JOB}},
)
def process(folder: str, request: ProcessRequest, library: LibraryDep) -> QueuedJob:
    job = project_jobs.process(library, folder, request.force, request.filenames)
    return QueuedJob.of(job)


@router.post(
    "/api/projects/{folder}/jobs",
    status_code=202,
    summary="Queue any project job; payload.filenames become the job's items",
    responses={202: {"description": "The job queued", "links": TO_JOB}},
)
def enqueue_job(folder: str, request: JobRequest, library: LibraryDep) -> QueuedJob:
    job = project_jobs.enqueue(library, folder, request.type, request.payload)
    return QueuedJob.of(job)


@router.get(
    "/api/projects/{folder}/jobs",
    summary="The project's jobs, newest first",
    operation_id="list_project_jobs",
)
def list_jobs(
    folder: str,
    library: LibraryDep,
    status: Annotated[str | None, Query(description="PENDING, RUNNING, COMPLETED…")] = None,
    type: Annotated[str | None, Query(description="A project job type")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> JobList:
    if type is not None and type not in project_jobs.PROJECT_JOB_TYPES:
        known = ", ".join(project_jobs.PROJECT_JOB_TYPES)
        raise project_jobs.InvalidJob(f"unknown job type {type!r}; use one of {known}")
    found, total = project_jobs.list_jobs(
        library, folder, status_filter(status), type, limit, offset
    )
    return JobList(
        jobs=[Job.of(job) for job in found],
        pagination=Pagination.of(total, limit, offset, len(found)),
    )


@router.post(
    "/api/projects/{folder}/maintenance/{task}",
    summary="Run a maintenance task now: queued, or with dryRun=true the diff it would apply",
    response_model=MaintenanceReport,
    responses={
        200: {"description": "dryRun=true: the changes it would make"},
        202: {
            "model": QueuedJob,
            "description": "Queued: the job's result will hold the report",
            "links": TO_JOB,
        },
    },
)
def run_maintenance(
    folder: str,
    task: Maintenance,
    library: LibraryDep,
    dry_run: Annotated[bool, Query(alias="dryRun")] = False,
) -> MaintenanceReport | JSONResponse:
    if dry_run:
        report = maintenance.run(library, task, folder, dry_run=True)
        return MaintenanceReport.model_validate(report)
    job = project_jobs.enqueue(library, folder, task.value, {})
    return answer(QueuedJob.of(job), status_code=202)
