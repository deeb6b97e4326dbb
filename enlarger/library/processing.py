"""What the job handlers do to an image after it was taken in: move its original into
permanent storage, queue and record its derivatives, mark it STORED or FAILED, and
queue the derivatives of a recipe change again (backfill)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from enlarger.db.engine import hold_briefly, read_connection
from enlarger.db.schema import derivatives, images, photo_files
from enlarger.db.types import db_now
from enlarger.errors import Conflict
from enlarger.library.image_records import (
    BACKFILL_PAGE,
    BACKFILL_PRIORITY,
    UPLOAD_PRIORITY,
    ImageStatus,
    JobType,
    announce_image,
    discard_staged,
    folder_of,
    get_image_row,
    image_query,
    lock_project,
    staging_key,
)
from enlarger.library.library import PREVIEW as PREVIEW_NAME
from enlarger.library.library import Library
from enlarger.library.lookups import derivatives_of
from enlarger.library.photos import (
    Capture,
    fits_photo,
    in_photo,
    join_photo,
    numbered_names,
)
from enlarger.storage import StorageError, check_name, safe_name


def offload_original(library: Library, image_id: str, enqueue_derivatives: bool = True) -> str:
    """Move the upload to its permanent key, mark the image PROCESSING and (unless the
    caller makes them itself) enqueue its derivatives. An image not yet in a photo (an
    upload of the photo API, an import) takes the name it got in the folder and joins the
    photo of that name. The key is claimed in one short transaction, the file moved with
    no transaction open (a worker paused mid-move holds no lock another host waits on)
    and the arrival recorded in another; safe to run again, or twice at once, after a
    crash at any step: only the run that records the arrival enqueues the derivatives."""
    row = get_image_row(library, image_id)
    if row.original_key is not None:
        return str(row.original_key)
    key = row.landing_key or _claim_key(library, row)
    _land(library, row, key)
    with library.engine.begin() as conn:
        arrived = conn.execute(
            images.update()
            .where(images.c.id == image_id, images.c.original_key.is_(None))
            .values(
                original_key=key,
                landing_key=None,
                temp_path=None,
                status=ImageStatus.PROCESSING.value,
                updated_at=db_now(),
            )
        ).rowcount
        if arrived:
            announce_image(library, conn, image_id, ImageStatus.PROCESSING)
            if enqueue_derivatives:
                # at the upload's own priority: one upload's jobs then run in arrival
                # order, and a stream of uploads no longer holds every preview back
                # until it ends (the dashboard fills in as photos arrive)
                enqueue_preview(library, conn, image_id, key, priority=UPLOAD_PRIORITY)
    return key


def _claim_key(library: Library, row: sa.Row[Any]) -> str:
    """The image's key in its project, recorded as its `landing_key` (and, when it joins a
    photo by it, its name). A name is looked for without a lock, checked against files put
    there by hand (storage I/O, so outside any transaction), then taken under the
    project's lock if it is still free; else the search starts again."""
    skip: set[str] = set()
    while True:
        with read_connection(library.engine) as conn:
            joining = not in_photo(conn, row.id)
            folder = folder_of(conn, row.project_id)
            key = free_key(conn, row, folder, row.project_id, joining, skip)
        if foreign_file(library, key, row.checksum):
            skip.add(key)
            continue
        with library.engine.begin() as conn:
            hold_briefly(conn)  # every upload into the project waits on this lock
            folder = lock_project(conn, row.project_id)
            taken = conn.execute(
                sa.select(images.c.landing_key, images.c.original_key).where(images.c.id == row.id)
            ).one()
            if taken.landing_key or taken.original_key:  # another run of this job was first
                return str(taken.landing_key or taken.original_key)
            joining = not in_photo(conn, row.id)
            if free_key(conn, row, folder, row.project_id, joining, skip) != key:
                continue  # taken meanwhile: look again
            values: dict[str, Any] = {"landing_key": key, "updated_at": db_now()}
            if joining:
                values["original_filename"] = name = key.rsplit("/", 1)[-1]
                join_photo(conn, row.project_id, row.id, name, row.format, row.exif)
            conn.execute(images.update().where(images.c.id == row.id).values(**values))
            return key


def _land(library: Library, row: sa.Row[Any], key: str) -> None:
    """Put the upload at `key`: from this host's temp folder, from staging in storage, or
    nothing to do when an earlier run put it there already."""
    temp = Path(row.temp_path) if row.temp_path else None
    if temp is not None and temp.is_file():
        with contextlib.suppress(FileNotFoundError):  # another run took it: checked below
            library.blobs.take_file(key, temp)
            return
    elif library.blobs.remote and library.blobs.exists(staging_key(row.id)):
        library.blobs.move(staging_key(row.id), key)
        return
    if not library.blobs.exists(key):
        raise FileNotFoundError(
            f"image {row.id}: its upload is neither in this host's temp folder nor "
            "staged in storage, and was never stored (a worker must see the API host's "
            "data_dir when storage is local)"
        )


def enqueue_preview(
    library: Library,
    conn: sa.Connection,
    image_id: str,
    original_key: str,
    priority: int,
    then_thumbnails: bool = True,
    again: bool = False,
) -> bool:
    """The preview job, which makes the thumbnails too (`then_thumbnails`) from the
    preview in memory, so a 24 MP original is decoded once. What is made already is not
    made again, unless `again` (a forced backfill, an assessment to measure)."""
    recipe = library.recipes.preview
    thumbnails = library.recipes.thumbnails if then_thumbnails else ()
    return library.queue.enqueue(
        JobType.PREVIEW_GENERATION,
        {
            "imageId": image_id,
            "originalPath": original_key,
            "sizes": [recipe.long_side, *(r.long_side for r in thumbnails)],
            "thenThumbnails": then_thumbnails,
            "priority": priority,
            "again": again,
        },
        priority=priority,
        idempotency_key=f"{JobType.PREVIEW_GENERATION.value}:{image_id}:{recipe.hash}",
        conn=conn,
    ).created


def enqueue_thumbnails(
    library: Library,
    conn: sa.Connection | None,
    image_id: str,
    original_key: str,
    source_key: str | None,
    priority: int,
    again: bool = False,
) -> bool:
    """The thumbnail job, from `source_key` (the preview) when given, else the original.
    False when the same work is already queued."""
    recipes = library.recipes.thumbnails
    return library.queue.enqueue(
        JobType.THUMBNAIL_GENERATION,
        {
            "imageId": image_id,
            "originalPath": original_key,
            "sourcePath": source_key,
            "sizes": [r.long_side for r in recipes],
            "again": again,
        },
        priority=priority,
        idempotency_key=(
            f"{JobType.THUMBNAIL_GENERATION.value}:{image_id}:{'+'.join(r.hash for r in recipes)}"
        ),
        conn=conn,
    ).created


def free_key(
    conn: sa.Connection,
    row: sa.Row[Any],
    folder: str,
    project_id: int,
    joining: bool,
    skip: set[str],
) -> str:
    """projects/<folder>/<file name>; when another image holds or is landing at that
    name, it is in `skip` (a file dropped in by hand lies there), or (`joining` a photo by
    it) the photo of that name is another capture, the first fitting of `name-2.ext`,
    `name-3.ext`… Database reads only: the caller holds the project's lock to take it."""
    capture = Capture.of(row._mapping)
    try:
        name = check_name(row.original_filename or "")
    except StorageError:  # the photo API takes any name; the file gets a safe one
        name = safe_name(row.original_filename or "", fallback=f"{row.id}.{row.format}")
    for candidate in numbered_names(name):
        key = f"projects/{folder}/{candidate}"
        if key in skip:
            continue
        holder = conn.execute(
            sa.select(images.c.id).where(
                sa.or_(
                    images.c.original_key == key,
                    images.c.landing_key == key,
                    _named_on_arrival(project_id, candidate),
                ),
                images.c.id != row.id,
            )
        ).first()
        if holder is not None:
            continue
        if not joining or fits_photo(conn, project_id, candidate, capture):
            return key
    raise Conflict(f"no free name like {name!r} in {folder!r}")


def _named_on_arrival(project_id: int, name: str) -> sa.ColumnElement[bool]:
    """A project upload's image of that name, not stored yet: its name was given when it
    arrived (it joined its photo by it), so its offload takes no other."""
    return sa.and_(
        images.c.project_id == project_id,
        images.c.original_filename == name,
        images.c.original_key.is_(None),
        images.c.landing_key.is_(None),
        images.c.deleted_at.is_(None),
        sa.exists().where(photo_files.c.image_id == images.c.id),
    )


def foreign_file(library: Library, key: str, checksum: str) -> bool:
    """A file a user dropped there by hand (different bytes) must not be overwritten."""
    if not library.blobs.exists(key):
        return False
    return blob_checksum(library, key) != checksum


def blob_checksum(library: Library, key: str) -> str:
    """The sha256 of a stored blob, as images record it."""
    with library.blobs.local_copy(key) as path:
        return file_checksum(path)


def file_checksum(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def record_derivatives(
    library: Library,
    image_id: str,
    made: list[dict[str, Any]],
    thumbhash: str | None,
    assessment: dict[str, Any] | None = None,
    fence: Callable[[sa.Connection], object] | None = None,
) -> ImageStatus:
    """Record written derivatives; the job that completes the set marks the image STORED.
    `fence` runs first and may refuse (the job's lease moved on); then the image row is
    locked, so two jobs finishing together cannot both miss it."""
    names = [entry["name"] for entry in made]
    new_keys = {entry["storage_key"] for entry in made}
    with library.engine.begin() as conn:
        if fence is not None:
            fence(conn)
        status = conn.execute(
            sa.select(images.c.status).where(images.c.id == image_id).with_for_update()
        ).scalar_one()
        existing = conn.execute(
            sa.select(
                derivatives.c.name, derivatives.c.recipe_hash, derivatives.c.storage_key
            ).where(derivatives.c.image_id == image_id)
        ).all()
        superseded = [
            r.storage_key for r in existing if r.name in names and r.storage_key not in new_keys
        ]
        conn.execute(
            derivatives.delete().where(
                derivatives.c.image_id == image_id, derivatives.c.name.in_(names)
            )
        )
        conn.execute(derivatives.insert().values(image_id=image_id, created_at=db_now()), made)
        have = {(r.name, r.recipe_hash) for r in existing if r.name not in names}
        have |= {(entry["name"], entry["recipe_hash"]) for entry in made}
        values: dict[str, Any] = {"updated_at": db_now()}
        if thumbhash is not None:
            values["thumbhash"] = thumbhash
        if assessment is not None:
            values["assessment"] = assessment
        if all((r.name, r.hash) in have for r in library.recipes.all):
            status = ImageStatus.STORED.value
            values.update(status=status, stored_at=db_now())
        conn.execute(images.update().where(images.c.id == image_id).values(**values))
        announce_image(library, conn, image_id, status)
    for key in superseded:  # made by an older recipe: nothing points at it any more
        library.blobs.delete(key)
    return ImageStatus(status)


def mark_stored(library: Library, image_id: str) -> None:
    """STORED without derivatives of its own (a RAW whose photo shows its JPG)."""
    with library.engine.begin() as conn:
        conn.execute(
            images.update()
            .where(images.c.id == image_id)
            .values(status=ImageStatus.STORED.value, stored_at=db_now(), updated_at=db_now())
        )
        announce_image(library, conn, image_id, ImageStatus.STORED)


def fail_waiting(library: Library, image_ids: list[str], code: str, message: str) -> list[str]:
    """Images still waiting for work that will not come now (INGESTED or PROCESSING: the
    job meant to finish them failed for good) become FAILED with `code`; an upload never
    stored is dropped. Images done, failed or deleted are left as they are."""
    waiting = (ImageStatus.INGESTED.value, ImageStatus.PROCESSING.value)
    failed = []
    for image_id in image_ids:
        with library.engine.begin() as conn:
            row = conn.execute(
                sa.select(images.c.status, images.c.temp_path)
                .where(images.c.id == image_id, images.c.deleted_at.is_(None))
                .with_for_update()
            ).first()
            if row is None or row.status not in waiting:
                continue
            _set_failed(library, conn, image_id, code, message)
        if row.temp_path:
            Path(row.temp_path).unlink(missing_ok=True)
            discard_staged(library, image_id)
        failed.append(image_id)
    return failed


def mark_failed(library: Library, image_id: str, code: str, message: str) -> None:
    with library.engine.begin() as conn:
        _set_failed(library, conn, image_id, code, message)


def _set_failed(
    library: Library, conn: sa.Connection, image_id: str, code: str, message: str
) -> None:
    conn.execute(
        images.update()
        .where(images.c.id == image_id)
        .values(
            status=ImageStatus.FAILED.value,
            error_code=code,
            error_message=message,
            updated_at=db_now(),
        )
    )
    announce_image(library, conn, image_id, ImageStatus.FAILED)


@dataclass(frozen=True)
class Backfill:
    images: int  # images that got a job (work already queued is not queued twice)
    retired: int = 0  # derivatives removed: of a size no recipe makes any more


def backfill(library: Library, everything: bool = False) -> Backfill:
    """Queue derivative work, in the low-priority lane, for every stored original that
    lacks a derivative of the current recipes (after a recipe change, or for images from
    before derivatives existed) or its culling assessment; with `everything`, for every
    original. FAILED images are left alone: their file is broken. The derivatives of a
    size taken out of the recipes are removed (from the database, then from storage), as
    a size changed is replaced: here, with the settings the command runs with, rather
    than by any job, whose worker's settings may be older during a change."""
    current_preview = (PREVIEW_NAME, library.recipes.preview.hash)
    current_thumbs = {(r.name, r.hash) for r in library.recipes.thumbnails}
    current_names = {r.name for r in library.recipes.all}
    touched = retired = 0
    last_id = ""
    while True:
        with library.engine.connect() as conn:
            page = list(
                conn.execute(
                    image_query()
                    .where(
                        images.c.deleted_at.is_(None),
                        images.c.original_key.is_not(None),
                        images.c.status != ImageStatus.FAILED.value,
                        images.c.id > last_id,
                    )
                    .order_by(images.c.id)
                    .limit(BACKFILL_PAGE)
                )
            )
        if not page:
            return Backfill(touched, retired)
        last_id = page[-1].id
        made = derivatives_of(library, [row.id for row in page])
        unwanted: list[str] = []
        with library.engine.begin() as conn:
            for row in page:
                extra = [d for d in made[row.id].values() if d.name not in current_names]
                if extra:
                    conn.execute(
                        derivatives.delete().where(
                            derivatives.c.image_id == row.id,
                            derivatives.c.name.in_([d.name for d in extra]),
                        )
                    )
                    unwanted += [d.storage_key for d in extra]
                have = {(d.name, d.recipe_hash) for d in made[row.id].values()}
                measured = row.assessment and "headroom" in row.assessment  # exposure too
                needs_preview = everything or current_preview not in have or not measured
                needs_thumbs = everything or not current_thumbs <= have
                created = False
                if needs_preview:
                    created = enqueue_preview(
                        library,
                        conn,
                        row.id,
                        row.original_key,
                        BACKFILL_PRIORITY,
                        needs_thumbs,
                        again=True,
                    )
                elif needs_thumbs:
                    preview_key = made[row.id][PREVIEW_NAME].storage_key
                    created = enqueue_thumbnails(
                        library,
                        conn,
                        row.id,
                        row.original_key,
                        preview_key,
                        BACKFILL_PRIORITY,
                        again=everything,
                    )
                touched += created
        for key in unwanted:  # storage I/O: with no transaction open
            library.blobs.delete(key)
        retired += len(unwanted)
