"""Projects and their photos (reference 003): create and list projects, upload files into
one, list its photos and record which of each photo's JPG and RAW to keep."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from enlarger.api.deps import LibraryDep
from enlarger.api.multipart import read_upload_form
from enlarger.api.shapes import iso
from enlarger.library import projects

router = APIRouter()


class NewProject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str = Field(min_length=1, max_length=200)
    title: str | None = Field(None, max_length=500)


class KeepChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keep_jpg: bool | None = None
    keep_raw: bool | None = None


def _project_json(row: Any, photo_count: int) -> dict[str, Any]:
    return {
        "folder": row.folder,
        "title": row.title,
        "collection": row.name,
        "createdAt": iso(row.created_at),
        "photoCount": photo_count,
    }


@router.post("/api/projects", status_code=201, summary="Create a project (a folder of photos)")
def create_project(new: NewProject, library: LibraryDep) -> dict[str, Any]:
    return _project_json(projects.create_project(library, new.folder, new.title), 0)


@router.get("/api/projects", summary="Every project, with its number of photos")
def list_projects(library: LibraryDep) -> dict[str, Any]:
    rows = projects.list_projects(library)
    return {"projects": [_project_json(row, row.photo_count) for row in rows]}


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


@router.get("/api/projects/{folder}/photos", summary="The project's photos")
def list_photos(folder: str, library: LibraryDep) -> dict[str, Any]:
    return {"photos": projects.list_photos(library, folder)}


@router.patch(
    "/api/projects/{folder}/photos/{basename}",
    summary="Record whether to keep a photo's JPG and RAW (applied by commit-changes)",
)
def set_keep(folder: str, basename: str, change: KeepChange, library: LibraryDep) -> dict[str, Any]:
    return projects.set_keep(library, folder, basename, change.keep_jpg, change.keep_raw)


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filenames: list[str] = Field(min_length=1, max_length=1000)


@router.post(
    "/api/projects/{folder}/commit-changes",
    summary="Apply the keep flags: files not kept go to the project's .trash",
)
def commit_changes(folder: str, library: LibraryDep) -> dict[str, Any]:
    return asdict(projects.commit_changes(library, folder))


@router.post(
    "/api/projects/{folder}/revert-changes",
    summary="Reset every photo's keep flags to the files it has (nothing moves)",
)
def revert_changes(folder: str, library: LibraryDep) -> dict[str, Any]:
    return {"photosChanged": projects.revert_changes(library, folder)}


@router.post(
    "/api/projects/{folder}/trash/restore",
    summary="Bring files back from the project's .trash while they are there",
)
def restore(folder: str, request: RestoreRequest, library: LibraryDep) -> dict[str, Any]:
    return asdict(projects.restore_from_trash(library, folder, request.filenames))
