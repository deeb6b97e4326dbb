"""What the photo library's modules share about an image: its statuses and job types,
what an upload was received as, and the lookups and names every step needs (its row,
its project's folder, where its staged upload and its derivatives live), and the event
each change of status records.

Lifecycle: UPLOADED → INGESTED → PROCESSING → STORED, or FAILED with an error code. An
image row and the job that carries it forward are always written in one transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from enlarger.db.schema import images, photo_files, photos, projects
from enlarger.errors import NotFound
from enlarger.library.library import Library
from enlarger.media import Recipe

DEFAULT_COLLECTION = "default"
STAGING_PREFIX = "uploads/"  # remote storage: uploads waiting for OFFLOAD_ORIGINAL
STAGED_ORPHAN_AFTER_S = 86400  # a staged upload no image waits for is swept this old
UPLOAD_PRIORITY = 100  # uploads ride the priority lane: never stuck behind a backfill
DERIVATIVE_PRIORITY = 95
DEFAULT_THUMBNAIL_SIDE = 256
BACKFILL_PRIORITY = 10  # below priority_threshold: the normal lane, behind fresh uploads
BACKFILL_PAGE = 500
CHUNK = 1024 * 1024
DELETED = "DELETED"  # an image event's status when its file went to the trash


class ImageStatus(StrEnum):
    UPLOADED = "UPLOADED"
    INGESTED = "INGESTED"
    PROCESSING = "PROCESSING"
    STORED = "STORED"
    FAILED = "FAILED"


class JobType(StrEnum):
    OFFLOAD_ORIGINAL = "OFFLOAD_ORIGINAL"
    THUMBNAIL_GENERATION = "THUMBNAIL_GENERATION"
    PREVIEW_GENERATION = "PREVIEW_GENERATION"
    UPLOAD_POSTPROCESS = "upload_postprocess"  # reference 003's project jobs are lower case
    GENERATE_DERIVATIVES = "generate_derivatives"
    STAGING_SWEEP = "staging_sweep"
    LIBRARY_SWEEP = "library_sweep"
    FULL_VIEW = "full_view"


@dataclass(frozen=True)
class Received:
    """An upload written to the temp directory, with what was learnt while writing it."""

    path: Path
    checksum: str
    size_bytes: int


@dataclass(frozen=True)
class Ingested:
    image_id: str
    status: ImageStatus
    checksum: str
    size_bytes: int
    uploaded_at: Any
    created: bool  # False: the same bytes were already in this collection
    error_code: str | None = None
    error_message: str | None = None


def staging_key(image_id: str) -> str:
    return f"{STAGING_PREFIX}{image_id}"


def discard_staged(library: Library, image_id: str) -> None:
    """An upload that was not kept (the same bytes were there already)."""
    if library.blobs.remote:
        library.blobs.delete(staging_key(image_id))


def lock_project(conn: sa.Connection, project_id: int) -> str:
    """Lock the project's row until the transaction ends (SQLite's write transactions
    hold the whole database already) and return its folder. Whoever picks a free name or
    checks for duplicates in a project takes it first, so two requests at once cannot
    both find the same name free or the same bytes new."""
    return folder_of(conn, project_id, lock=True)


def folder_of(conn: sa.Connection, project_id: int, lock: bool = False) -> str:
    query = sa.select(projects.c.folder).where(projects.c.id == project_id)
    return str(conn.execute(query.with_for_update() if lock else query).scalar_one())


FOLDER_CHARS = 100  # a folder made from a collection's name keeps this much of it


def folder_for_name(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower())[:FOLDER_CHARS].strip("-")


def find_project_id(conn: sa.Connection, name: str) -> int | None:
    """The project a collection name means: the one of that name, folder or title, or the
    one whose folder the name makes ("Wedding 2026" is wedding-2026's)."""
    for column, value in (
        (projects.c.name, name),
        (projects.c.folder, name),
        (projects.c.title, name),
        (projects.c.folder, folder_for_name(name)),
    ):
        query = sa.select(projects.c.id).where(column == value).order_by(projects.c.id)
        found = conn.execute(query.limit(1)).scalar()
        if found is not None:
            return int(found)
    return None


DERIVATIVES_FOLDER = "derivatives"


def derivative_folder(image_id: str) -> str:
    return f"{DERIVATIVES_FOLDER}/{image_id[:2]}/{image_id}"


def derivative_key(image_id: str, recipe: Recipe) -> str:
    return f"{derivative_folder(image_id)}/{recipe.name}-{recipe.hash}.{recipe.extension}"


def announce_image(library: Library, conn: sa.Connection, image_id: str, status: str) -> None:
    """An `image` event on the live stream (with the image's project, for filtering, the
    photo it is a file of, so a page showing the project fetches that one photo, and
    when it failed, why), committed with the change it tells of."""
    found = conn.execute(
        sa.select(projects.c.folder, photos.c.basename, images.c.error_code)
        .select_from(images)
        .join(projects, images.c.project_id == projects.c.id)
        .outerjoin(photo_files, photo_files.c.image_id == images.c.id)
        .outerjoin(photos, photos.c.id == photo_files.c.photo_id)
        .where(images.c.id == image_id)
    ).first()
    folder, basename, error_code = found if found is not None else (None, None, None)
    data = {"imageId": image_id, "project": folder, "photo": basename}
    if str(status) == ImageStatus.FAILED.value:
        data["errorCode"] = error_code
    library.queue.store.record_event(conn, "image", data, str(status))


def image_query() -> sa.Select[Any]:
    return sa.select(images, projects.c.name.label("collection"), projects.c.folder).join(
        projects, projects.c.id == images.c.project_id
    )


def get_image_row(library: Library, image_id: str, include_deleted: bool = False) -> sa.Row[Any]:
    query = image_query().where(images.c.id == image_id)
    if not include_deleted:
        query = query.where(images.c.deleted_at.is_(None))
    with library.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no image {image_id!r}")
    return row
