"""Changing images people own: a new title or project, deletion into the trash and
restoring from it, and an original rewritten or refreshed from its file."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from enlarger.db.engine import hold_briefly, read_connection
from enlarger.db.schema import derivatives, images
from enlarger.db.types import db_now
from enlarger.errors import Conflict, NotFound
from enlarger.library.image_records import (
    DELETED,
    ImageStatus,
    Received,
    announce_image,
    discard_staged,
    get_image_row,
    lock_project,
)
from enlarger.library.ingest import examine, live_duplicate, project_id_for
from enlarger.library.library import Library
from enlarger.library.lookups import project_row
from enlarger.library.photos import (
    in_photo,
    join_photo,
    leave_photo,
    numbered_names,
)
from enlarger.library.processing import file_checksum, foreign_file, free_key
from enlarger.queue import JobConflict


def update_image(
    library: Library, image_id: str, *, title: str | None = None, collection: str | None = None
) -> sa.Row[Any]:
    """Rename an image or move it to another collection: its original moves folder too,
    and it leaves its photo for the photo of its name in the new project. A file of a
    project upload moves only once stored (its upload job looks for it where it was). The
    file is moved with no transaction open (`_move_to_project`)."""
    target = None
    if collection is not None and collection.strip():
        with library.engine.begin() as conn:
            target = project_id_for(library, conn, collection.strip())
    with library.engine.begin() as conn:
        hold_briefly(conn)
        row = _lock_live(conn, image_id)
        values: dict[str, Any] = {"updated_at": db_now()}
        if title is not None:
            values["title"] = title
        moving = target is not None and target != row.project_id
        if moving and live_duplicate(conn, target, row.checksum) is not None:
            raise Conflict(f"collection {collection!r} already holds this image's bytes")
        if moving and row.original_key is None:
            if in_photo(conn, image_id):
                raise Conflict(
                    "the image is still being stored in its project; move it once stored"
                )
            values["project_id"] = target
            moving = False
        if len(values) > 1:  # not only the time: it tells how old a claim is
            conn.execute(images.update().where(images.c.id == image_id).values(**values))
    if moving and target is not None:
        _move_to_project(library, row, target)
    return get_image_row(library, image_id)


def _lock_live(conn: sa.Connection, image_id: str) -> sa.Row[Any]:
    """The live image's row (and whether its claim, if any, is `stalled`), locked until
    the transaction ends; NotFound when deleted."""
    row = conn.execute(
        sa.select(images, claim_stalled().label("stalled"))
        .where(images.c.id == image_id, images.c.deleted_at.is_(None))
        .with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"no image {image_id!r}")
    return row


def _move_to_project(library: Library, row: sa.Row[Any], project_id: int) -> None:
    """Move a stored image to another project as an offload lands one: a free name there
    is claimed (`landing_key`) under that project's lock in one short transaction, the
    file moved with none open, and the move recorded (project, name, photo) in another.
    A move interrupted after its claim is finished by the next one to the same project."""
    folder = project_row(library, project_id).folder
    pending = row.landing_key if _is_in_folder(row.landing_key, folder) else None
    skip: set[str] = set()
    left_over: sa.Row[Any] | None = None
    while True:
        key = pending
        if key is None:
            with read_connection(library.engine) as conn:
                key = free_key(conn, row, folder, project_id, True, skip)
            if foreign_file(library, key, row.checksum):
                skip.add(key)
                continue
        with library.engine.begin() as conn:
            hold_briefly(conn)  # every upload into the project waits on this lock
            lock_project(conn, project_id)
            current = _lock_live(conn, row.id)
            if current.original_key != row.original_key:
                raise Conflict("the image was moved meanwhile; try again")
            if current.landing_key != pending:
                if not current.stalled:
                    raise Conflict("the image is being moved or deleted; try again in a moment")
                left_over = current
            elif pending is None and free_key(conn, row, folder, project_id, True, skip) != key:
                continue  # taken meanwhile: look again
            else:
                this_image = images.update().where(images.c.id == row.id)
                conn.execute(this_image.values(landing_key=key, updated_at=db_now()))
        if left_over is not None:  # a process that died left it: finished first
            finish_interrupted(library, left_over)
            return _move_to_project(library, get_image_row(library, row.id), project_id)
        break
    _move_claimed(library, row.id, row.original_key, key)
    name = key.rsplit("/", 1)[-1]
    with library.engine.begin() as conn:
        hold_briefly(conn)
        lock_project(conn, project_id)
        moved = conn.execute(
            images.update()
            .where(images.c.id == row.id, images.c.landing_key == key)
            .values(
                project_id=project_id,
                original_key=key,
                original_filename=name,
                landing_key=None,
                updated_at=db_now(),
            )
        ).rowcount
        if moved:
            leave_photo(conn, row.id)
            join_photo(conn, project_id, row.id, name, row.format, row.exif)


def _is_in_folder(key: str | None, folder: str) -> bool:
    return key is not None and key.startswith(f"projects/{folder}/")


def _move_claimed(library: Library, image_id: str, origin: str, landing: str) -> None:
    """Move the image's file to the name it claimed (`landing_key`), with no transaction
    open. A file already there and gone from `origin` was moved by an interrupted run; a
    move that fails gives the claim up and raises."""
    try:
        if library.blobs.exists(origin) or not library.blobs.exists(landing):
            try:
                library.blobs.move(origin, landing)
            except FileNotFoundError:
                if not library.blobs.exists(landing):
                    raise
                # another run of the same request moved it first: it records it
    except BaseException:
        _give_up_claim(library, image_id, landing)
        raise


def _give_up_claim(library: Library, image_id: str, landing: str) -> None:
    with library.engine.begin() as conn:
        conn.execute(
            images.update()
            .where(images.c.id == image_id, images.c.landing_key == landing)
            .values(landing_key=None)
        )


def delete_image(library: Library, image_id: str, original_gone: bool = False) -> bool:
    """Move the original to its project's trash, remove the derivatives (but its
    thumbnails, which show it in the trash until it is purged) and cancel the image's
    pending work. The row stays, marked deleted, for the record. With `original_gone`
    (someone removed the file by hand) there is nothing to move, and nothing is kept.
    False, and nothing done, when it was deleted or moved meanwhile (or, with
    `original_gone`, when the file is there after all). The trash's name is claimed
    (`landing_key`) in a short transaction, the file moved with none open and the
    deletion recorded in another; an interrupted deletion is finished by the next."""
    row = get_image_row(library, image_id)
    if original_gone and row.original_key and library.blobs.exists(row.original_key):
        return False
    trash_key = None
    if row.original_key is not None and not original_gone:
        name = row.original_key.rsplit("/", 1)[-1]
        trash_key = f"projects/{row.folder}/{TRASH}/{image_id}-{name}"
    with library.engine.begin() as conn:
        hold_briefly(conn)
        current = conn.execute(
            sa.select(images, claim_stalled().label("stalled"))
            .where(images.c.id == image_id)
            .with_for_update()
        ).one()
        if current.deleted_at is not None or current.original_key != row.original_key:
            return False
        moving = current.original_key is not None and current.landing_key not in (None, trash_key)
        if moving and not current.stalled:
            raise Conflict("the image is being moved; try again in a moment")
        this_image = images.update().where(images.c.id == image_id)
        if moving:  # a move a process that died left: finished first, below
            pass
        elif trash_key is None:
            made = _record_deleted(library, conn, image_id, None)
        else:
            conn.execute(this_image.values(landing_key=trash_key, updated_at=db_now()))
    if moving:
        finish_interrupted(library, current)
        return delete_image(library, image_id, original_gone)
    if trash_key is not None:
        _move_claimed(library, image_id, row.original_key, trash_key)
        with library.engine.begin() as conn:
            claim = conn.execute(
                sa.select(images.c.landing_key).where(images.c.id == image_id).with_for_update()
            ).scalar()
            if claim != trash_key:
                return False  # another deletion of it recorded it
            made = _record_deleted(library, conn, image_id, trash_key)
    for job in library.queue.store.live_jobs_by_payload("imageId", [image_id]):
        with contextlib.suppress(KeyError, JobConflict):  # it finished meanwhile
            library.queue.store.cancel(job.id)
    for derivative in made:
        library.blobs.delete(derivative.storage_key)
    if row.temp_path:
        Path(row.temp_path).unlink(missing_ok=True)
        discard_staged(library, image_id)
    return True


def _record_deleted(
    library: Library, conn: sa.Connection, image_id: str, trash_key: str | None
) -> list[sa.Row[Any]]:
    """Mark the image deleted, its file at `trash_key` (None: it has none to bring back),
    and drop its derivatives' rows but for the thumbnails of one in the trash; returns
    the rows dropped, whose files the caller deletes once this commits."""
    kept = {r.name for r in library.recipes.thumbnails} if trash_key is not None else set()
    gone = derivatives.c.image_id == image_id
    if kept:
        gone = sa.and_(gone, derivatives.c.name.not_in(kept))
    made = list(conn.execute(sa.select(derivatives).where(gone)))
    conn.execute(derivatives.delete().where(gone))
    conn.execute(
        images.update()
        .where(images.c.id == image_id)
        .values(deleted_at=db_now(), updated_at=db_now(), original_key=trash_key, landing_key=None)
    )
    announce_image(library, conn, image_id, DELETED)
    return made


TRASH = ".trash"  # each project's trash folder


def in_trash(key: str) -> bool:
    """Whether a key is in a project's trash (`projects/<folder>/.trash/…`)."""
    return f"/{TRASH}/" in key


def free_trash_key(library: Library, folder: str, name: str) -> str:
    """Where `name` goes in the project's trash without replacing what is there."""
    for candidate in numbered_names(name):
        key = f"projects/{folder}/{TRASH}/{candidate}"
        if not library.blobs.exists(key):
            return key
    raise Conflict(f"the trash of {folder!r} is full of files like {name!r}")


def rewrite_original(library: Library, row: sa.Row[Any], data: bytes) -> None:
    """Replace a stored original with new bytes of the same image (XMP written into it,
    on the user's say-so): its checksum and size are recorded, and the checksum it
    arrived with kept, so the same file arriving again is still known."""
    checksum = hashlib.sha256(data).hexdigest()
    library.blobs.put_bytes(row.original_key, data)
    with library.engine.begin() as conn:
        conn.execute(
            images.update()
            .where(images.c.id == row.id)
            .values(
                checksum=checksum,
                size_bytes=len(data),
                source_checksum=sa.func.coalesce(images.c.source_checksum, row.checksum),
                updated_at=db_now(),
            )
        )


def refresh_original(library: Library, image_id: str) -> ImageStatus:
    """The image's file was changed in place: record what it is now, drop the derivatives
    made from the old bytes and mark it PROCESSING for new ones (the caller queues them),
    or FAILED with the media error's code when it no longer decodes. Conflict when the
    project holds the new bytes already, as another image."""
    row = get_image_row(library, image_id)
    with library.blobs.local_copy(row.original_key) as path:
        received = Received(path, file_checksum(path), path.stat().st_size)
        fresh, failed = examine(library, received, filename=row.original_filename)
    kept = {"id", "title", "original_filename", "temp_path"}
    values = {k: v for k, v in fresh.items() if k not in kept}
    if failed is None:
        values.update(status=ImageStatus.PROCESSING.value, error_code=None, error_message=None)
    with library.engine.begin() as conn:
        twin = live_duplicate(conn, row.project_id, received.checksum)
        if twin is not None and twin.id != image_id:
            raise Conflict(f"it now holds the same bytes as {twin.original_filename!r}")
        made = list(conn.execute(sa.select(derivatives).where(derivatives.c.image_id == image_id)))
        conn.execute(derivatives.delete().where(derivatives.c.image_id == image_id))
        conn.execute(
            images.update()
            .where(images.c.id == image_id)
            .values(thumbhash=None, stored_at=None, updated_at=db_now(), **values)
        )
    for derivative in made:
        library.blobs.delete(derivative.storage_key)
    return ImageStatus(values["status"])


MOVE_STALLED_S = 60  # a claim (`landing_key`) this old on a stored file was interrupted


def claim_stalled() -> sa.ColumnElement[bool]:
    """The image's claim (`landing_key`), if any, was left by a process that died."""
    return images.c.updated_at < db_now(-MOVE_STALLED_S)


def restore_image(library: Library, image_id: str, key: str) -> None:
    """Bring a deleted image's original back from the trash to `key`; Conflict when a
    live file holds that name or the project holds these bytes again. As an offload
    does: the name is claimed (the image's `landing_key`) under the project's lock in
    one short transaction, the file moved with no transaction open, and the image
    recorded back in another (maintenance leaves a deleted image with a claim alone); a
    move that fails gives the name up again, and a restore interrupted after its move
    is finished by the next one asked for."""
    with library.engine.begin() as conn:
        hold_briefly(conn)  # every upload into the project waits on this lock
        project_id = conn.execute(
            sa.select(images.c.project_id).where(images.c.id == image_id)
        ).scalar_one()
        lock_project(conn, project_id)
        row = conn.execute(
            sa.select(images, sa.not_(claim_stalled()).label("recent")).where(
                images.c.id == image_id
            )
        ).one()
        if row.deleted_at is None or row.original_key is None:
            raise Conflict("not in the trash (restored meanwhile)")
        claimed = row.landing_key is not None
        if claimed and row.recent:
            raise Conflict("being restored already")
        if live_duplicate(conn, row.project_id, row.checksum) is not None:
            raise Conflict("the project holds these bytes again")
        key = row.landing_key if claimed else key
        taken = Conflict(f"{key.rsplit('/', 1)[-1]!r} is taken")
        holder = conn.execute(
            sa.select(images.c.id).where(
                sa.or_(
                    sa.and_(images.c.original_key == key, images.c.deleted_at.is_(None)),
                    images.c.landing_key == key,
                ),
                images.c.id != image_id,
            )
        ).first()
        if holder is not None:
            raise taken
        this_image = images.update().where(images.c.id == image_id)
        conn.execute(this_image.values(landing_key=key, updated_at=db_now()))
    if foreign_file(library, key, row.checksum):  # put there by hand (not our own copy)
        _give_up_claim(library, image_id, key)
        raise taken
    _move_claimed(library, image_id, row.original_key, key)
    with library.engine.begin() as conn:
        back = conn.execute(
            this_image.where(images.c.landing_key == key).values(
                deleted_at=None, original_key=key, landing_key=None, updated_at=db_now()
            )
        ).rowcount
        if back:
            announce_image(library, conn, image_id, row.status)


def finish_interrupted(library: Library, row: sa.Row[Any]) -> None:
    """Finish what a process that died between claiming a stored file's new name
    (`landing_key`) and recording its move began: a deletion, a restore or a move to
    another project, each safe to run again."""
    key = str(row.landing_key)
    if row.deleted_at is not None:
        restore_image(library, row.id, key)
    elif in_trash(key):
        delete_image(library, row.id)
    else:
        update_image(library, row.id, collection=key.split("/")[1])
