"""Projects and their photos (reference 003) as the API shows them. Some of these keys
are reference 003's own snake_case ones (`keep_jpg`, `stored_as`, `dry_run`…), kept as
clients written for it read them: those fields name their alias, or their model is a
`SnakeCaseModel`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from enlarger.api.schemas.base_models import ApiModel, Timestamp
from enlarger.library.sidecars import Handoff


class SnakeCaseModel(ApiModel):
    """A body whose keys are reference 003's snake_case names, as they are in Python."""

    model_config = ConfigDict(alias_generator=None)


class ProjectOptions(ApiModel):
    """How the project's decisions are written for other tools (docs/culling.md)."""

    picks_as: str = Field(description="rating, none, or the label an unlabelled pick gets")
    sidecar_names: Literal["both", "basename", "filename"]
    embed_xmp: bool


class Project(ApiModel):
    folder: str
    title: str | None
    collection: str = Field(description="The project's name in the photo API")
    created_at: Timestamp | None
    photo_count: int
    options: ProjectOptions

    @classmethod
    def of(cls, row: Any, photo_count: int) -> Project:
        handoff = Handoff.of(row.options)
        return cls(
            folder=row.folder,
            title=row.title,
            collection=row.name,
            created_at=row.created_at,
            photo_count=photo_count,
            options=ProjectOptions(
                picks_as=handoff.picks_as,
                sidecar_names=handoff.sidecar_names,
                embed_xmp=handoff.embed_xmp,
            ),
        )


class ProjectDetail(Project):
    settling: list[str] = Field(
        description="Files folder_check found still being written (it looks again)"
    )


class ProjectList(ApiModel):
    projects: list[Project]


class FileOutcome(SnakeCaseModel):
    """What became of one uploaded file."""

    filename: str | None
    stored_as: str | None
    basename: str | None
    role: str | None
    image_id: str | None
    duplicate: bool
    error_code: str | None
    error_message: str | None


class ProjectUpload(ApiModel):
    files: list[FileOutcome]
    job_id: int | None = Field(description="The upload_postprocess job, when any file is new")


class PhotoFile(ApiModel):
    filename: str | None
    role: str
    image_id: str
    status: str
    size_bytes: int
    error_code: str | None


class Assist(ApiModel):
    """Culling assistance measured on the preview, and the photo's burst."""

    sharpness: float | None
    blurry: bool | None
    highlights_clipped: float | None
    shadows_clipped: float | None
    stops_under: float | None
    dark: bool | None
    bright: bool | None
    burst: str | None = Field(description="The first photo of its burst")
    burst_size: int | None
    best_in_burst: bool | None
    reasons: list[str]


PhotoStatus = Literal["pending", "processing", "done", "failed", "none"]


class Photo(ApiModel):
    """A photo: the JPG and RAW files of one base name, keep flags and decisions."""

    basename: str
    files: list[PhotoFile]
    sidecar: str | None
    sidecars: list[str]
    jpg_available: bool = Field(alias="jpg_available")
    raw_available: bool = Field(alias="raw_available")
    keep_jpg: bool = Field(alias="keep_jpg")
    keep_raw: bool = Field(alias="keep_raw")
    flag: Literal["pick", "reject", "unflagged"]
    rating: int
    label: Literal["red", "yellow", "green", "blue", "purple"] | None
    taken_at: str | None
    assist: Assist | None
    source: str | None = Field(description="The file the photo is shown by")
    thumbnail_status: PhotoStatus = Field(alias="thumbnail_status")
    preview_status: PhotoStatus = Field(alias="preview_status")
    thumbnail_url: str | None
    preview_url: str | None
    updated_at: str | None = Field(alias="updated_at")


class PhotoPage(ApiModel):
    photos: list[Photo]
    total: int = Field(description="The project's photos in all")
    next_after: str | None = Field(description="The base name the next page starts after")


class PhotosChanged(ApiModel):
    changed: int
    unknown: list[str] = Field(description="Base names of no photo of the project")


class Committed(SnakeCaseModel):
    trashed: list[str] = Field(description="Files moved (or, on a dry run, to move) to .trash")
    regenerating: list[str]
    jobs: dict[str, int] = Field(description="The reconciliation jobs queued, by type")
    sidecars: list[str]
    sidecars_refused: dict[str, str]
    embedded: list[str]
    dry_run: bool = Field(alias="dryRun")


class Reverted(ApiModel):
    photos_changed: int


class TrashedFile(ApiModel):
    filename: str
    size_bytes: int
    trashed_at: str | None
    thumbnail_url: str | None


class Trash(ApiModel):
    files: list[TrashedFile]


class Restored(ApiModel):
    restored: list[str]
    refused: dict[str, str] = Field(description="File name → why it stays in the trash")


class Change(SnakeCaseModel):
    action: str
    name: str
    reason: str


class MaintenanceReport(SnakeCaseModel):
    """What a maintenance task changed, or on a dry run would change."""

    task: str
    folder: str
    dry_run: bool
    changes: list[Change]
    jobs: list[int]
    settling: list[str]
    recheck: int | None
