"""Reading images back: one image, a page of them, their derivatives, projects and
live jobs, and the storage they take; for the API, the dashboard and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from enlarger.db.schema import derivatives, images, projects
from enlarger.errors import NotFound
from enlarger.library.image_records import (
    DEFAULT_THUMBNAIL_SIDE,
    ImageStatus,
    find_project_id,
    image_query,
)
from enlarger.library.library import Library
from enlarger.media import Recipe
from enlarger.queue import Job


@dataclass(frozen=True)
class ImagePage:
    rows: list[sa.Row[Any]]  # images joined with their collection's name as `collection`
    count: int  # how many match the filters in all
    collections: list[str]  # every collection's name


def project_folder(library: Library, name: str) -> str:
    """The folder of the project a name means (its folder, name or title, as an import's
    `--project` takes it); NotFound when none."""
    with library.engine.connect() as conn:
        project_id = find_project_id(conn, name)
    if project_id is None:
        raise NotFound(f"no project {name!r}")
    return str(project_row(library, project_id).folder)


def project_row(library: Library, project_id: int) -> sa.Row[Any]:
    with library.engine.connect() as conn:
        return conn.execute(sa.select(projects).where(projects.c.id == project_id)).one()


def list_images(
    library: Library,
    *,
    status: ImageStatus | None = None,
    collection: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> ImagePage:
    """Images not deleted, newest upload first."""
    where: list[sa.ColumnElement[bool]] = [images.c.deleted_at.is_(None)]
    if status is not None:
        where.append(images.c.status == status.value)
    if collection is not None:
        where.append(projects.c.name == collection)
    query = (
        image_query()
        .where(*where)
        .order_by(images.c.uploaded_at.desc(), images.c.id)
        .limit(limit)
        .offset(offset)
    )
    count = (
        sa.select(sa.func.count())
        .select_from(images.join(projects, projects.c.id == images.c.project_id))
        .where(*where)
    )
    with library.engine.connect() as conn:
        rows = list(conn.execute(query))
        total = int(conn.execute(count).scalar_one())
        names = list(conn.execute(sa.select(projects.c.name).order_by(projects.c.name)).scalars())
    return ImagePage(rows, total, names)


def derivatives_of(library: Library, image_ids: list[str]) -> dict[str, dict[str, sa.Row[Any]]]:
    found: dict[str, dict[str, sa.Row[Any]]] = {i: {} for i in image_ids}
    if not image_ids:
        return found
    with library.engine.connect() as conn:
        for row in conn.execute(
            sa.select(derivatives).where(derivatives.c.image_id.in_(image_ids))
        ):
            found[row.image_id][row.name] = row
    return found


@dataclass(frozen=True)
class StorageTotals:
    original_bytes: int
    derivative_bytes: int
    derivatives: int
    images_by_status: dict[str, int]


def storage_totals(library: Library) -> StorageTotals:
    """What storage holds, for `/metrics` (three aggregate queries)."""
    live = images.c.deleted_at.is_(None)
    with library.engine.connect() as conn:
        originals = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(images.c.size_bytes), 0)).where(
                live, images.c.original_key.is_not(None)
            )
        ).scalar_one()
        made, count = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(derivatives.c.size_bytes), 0), sa.func.count())
        ).one()
        by_status = conn.execute(
            sa.select(images.c.status, sa.func.count()).where(live).group_by(images.c.status)
        ).all()
    return StorageTotals(int(originals), int(made), int(count), {s: int(n) for s, n in by_status})


def image_projects(library: Library, image_ids: list[str]) -> dict[str, str]:
    """Each image's project folder (images that are gone are left out)."""
    if not image_ids:
        return {}
    query = (
        sa.select(images.c.id, projects.c.folder)
        .join(projects, images.c.project_id == projects.c.id)
        .where(images.c.id.in_(image_ids))
    )
    with library.engine.connect() as conn:
        return {row.id: row.folder for row in conn.execute(query)}


def default_thumbnail_recipe(library: Library) -> Recipe:
    """The thumbnail recipe nearest 256 px: the one a photo of a project is shown by."""
    return min(library.recipes.thumbnails, key=lambda r: abs(r.long_side - DEFAULT_THUMBNAIL_SIDE))


def default_thumbnail(library: Library, made: dict[str, sa.Row[Any]]) -> sa.Row[Any] | None:
    """The thumbnail an image is shown by (`thumbnailUrl`): the one nearest 256 px."""
    thumbnails = [made[r.name] for r in library.recipes.thumbnails if r.name in made]
    if not thumbnails:
        return None
    return min(thumbnails, key=lambda d: abs(max(d.width, d.height) - DEFAULT_THUMBNAIL_SIDE))


def live_jobs_of(library: Library, image_ids: list[str]) -> dict[str, list[Job]]:
    """Each image's pending and running jobs."""
    found: dict[str, list[Job]] = {i: [] for i in image_ids}
    for job in library.queue.store.live_jobs_by_payload("imageId", image_ids):
        found[job.payload["imageId"]].append(job)
    return found
