"""The photo library's operations: ingest a file, move it to permanent storage, record
derivatives, and read images back. HTTP handlers, the CLI and job handlers call these.

Lifecycle: UPLOADED → INGESTED → PROCESSING → STORED, or FAILED with an error code. An
image row and the job that carries it forward are always written in one transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa

from enlarger.db.engine import hold_briefly, read_connection
from enlarger.db.schema import derivatives, images, photo_files, photos, projects
from enlarger.db.types import db_now
from enlarger.errors import Conflict, Invalid, NotFound
from enlarger.library.library import PREVIEW as PREVIEW_NAME
from enlarger.library.library import Library
from enlarger.library.photos import (
    Capture,
    fits_photo,
    in_photo,
    join_photo,
    leave_photo,
    numbered_names,
)
from enlarger.library.tasks import schedule_project
from enlarger.media import (
    MIME_TYPES,
    MediaError,
    MediaErrorCode,
    Recipe,
    probe,
    read_metadata,
)
from enlarger.queue import Job, JobConflict
from enlarger.storage import StorageError, check_name, safe_name

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


# ---- receiving bytes ----------------------------------------------------------------------


class UploadWriter:
    """Writes an upload to a new temp file while hashing it, refusing it past the size
    limit; fed chunk by chunk, so the HTTP API can write as the bytes arrive."""

    def __init__(self, library: Library) -> None:
        self.limit = library.limits.max_bytes
        self.path = library.temp_dir / f"{uuid.uuid4().hex}.upload"
        self._digest = hashlib.sha256()
        self._size = 0
        self._out = self.path.open("wb")

    def write(self, chunk: bytes | memoryview) -> None:
        self._size += len(chunk)
        if self._size > self.limit:
            self.discard()
            raise MediaError(
                MediaErrorCode.TOO_LARGE, f"the upload is over the limit of {self.limit:,} bytes"
            )
        self._digest.update(chunk)
        self._out.write(chunk)

    def finish(self) -> Received:
        self._out.close()
        return Received(self.path, self._digest.hexdigest(), self._size)

    def discard(self) -> None:
        with contextlib.suppress(OSError):  # closing flushes: on a full disk that fails too
            self._out.close()
        self.path.unlink(missing_ok=True)


def receive(library: Library, chunks: Iterable[bytes]) -> Received:
    """Write chunks to a new temp file while hashing them; stop at the size limit."""
    writer = UploadWriter(library)
    try:
        for chunk in chunks:
            writer.write(chunk)
    except BaseException:
        writer.discard()
        raise
    return writer.finish()


def read_chunks(source: BinaryIO) -> Iterator[bytes]:
    while chunk := source.read(CHUNK):
        yield chunk


# ---- ingest -------------------------------------------------------------------------------


class InvalidName(Invalid):
    """A folder, file, title or collection name enlarger will not use; the message says
    why."""

    code = "INVALID_NAME"


# the longest names the database keeps (projects.name, images.title, original_filename)
MAX_COLLECTION_CHARS = 200
MAX_TITLE_CHARS = 500
MAX_FILENAME_CHARS = 500


def check_upload_names(filename: str | None, title: str | None, collection: str) -> None:
    """InvalidName for an upload's names that cannot be kept as given."""
    for what, value, limit in (
        ("collection", collection, MAX_COLLECTION_CHARS),
        ("title", title, MAX_TITLE_CHARS),
        ("file name", filename, MAX_FILENAME_CHARS),
    ):
        if value and len(value) > limit:
            raise InvalidName(f"the {what} is {len(value)} characters; the most is {limit}")
        if value and "\x00" in value:
            raise InvalidName(f"the {what} contains a NUL character")


def ingest(
    library: Library,
    received: Received,
    *,
    filename: str | None,
    title: str | None = None,
    collection: str | None = None,
    sidecars: Sequence[tuple[str, bytes]] = (),
) -> Ingested:
    """Check the file by its content, read its metadata, and record it as INGESTED with
    its OFFLOAD_ORIGINAL job, or as FAILED with an error code, keeping no bytes. The same
    bytes in the same collection are the same image, failed or not. `sidecars` (name and
    bytes of the `.xmp` files beside it) wait with the upload and join its photo when it
    is stored, under its final name."""
    name = (collection or DEFAULT_COLLECTION).strip() or DEFAULT_COLLECTION
    try:
        check_upload_names(filename, title, name)
    except InvalidName:
        received.path.unlink(missing_ok=True)
        raise
    row, failed = examine(library, received, filename=filename, title=title)
    image_id = row["id"]
    staged: list[dict[str, str]] = []
    if failed is None:
        stage_upload(library, image_id, received)
        staged = [
            stage_sidecar(library, image_id, n, name, data, filename or "")
            for n, (name, data) in enumerate(sidecars)
        ]
    existing = _record_image(library, name, row, enqueue_offload=failed is None, sidecars=staged)
    if existing is not None or failed is not None:
        received.path.unlink(missing_ok=True)
    if existing is not None:
        discard_staged(library, image_id)
        for entry in staged:
            discard_staged_sidecar(library, entry)
        return _ingested(existing, created=False)
    return _ingested(get_image_row(library, image_id), created=True)


def staging_key(image_id: str) -> str:
    return f"{STAGING_PREFIX}{image_id}"


def stage_upload(library: Library, image_id: str, received: Received) -> None:
    """On remote storage an upload waits there, not on the disk of the host that took
    it, so OFFLOAD_ORIGINAL can run on a worker on any host. Local storage keeps it in
    the temp directory (a rename away from its place)."""
    if library.blobs.remote:
        library.blobs.take_file(staging_key(image_id), received.path)


def stage_sidecar(
    library: Library, image_id: str, n: int, name: str, data: bytes, describes: str
) -> dict[str, str]:
    """A sidecar waits with its image's upload (as the upload does: here, or in storage
    when it is remote); the entry says where, and the file name it describes."""
    entry = {"name": name, "describes": describes}
    if library.blobs.remote:
        key = f"{STAGING_PREFIX}{image_id}.{n}.xmp"
        library.blobs.put_bytes(key, data)
        return entry | {"key": key}
    path = library.temp_dir / f"{image_id}.{n}.xmp"
    path.write_bytes(data)
    return entry | {"tempPath": str(path)}


def staged_sidecar_bytes(library: Library, entry: dict[str, str]) -> bytes | None:
    """A staged sidecar's bytes; None once it is gone (adopted by an earlier attempt)."""
    if "key" in entry:
        if not library.blobs.exists(entry["key"]):
            return None
        with library.blobs.local_copy(entry["key"]) as path:
            return path.read_bytes()
    path = Path(entry["tempPath"])
    return path.read_bytes() if path.is_file() else None


def discard_staged_sidecar(library: Library, entry: dict[str, str]) -> None:
    if "key" in entry:
        library.blobs.delete(entry["key"])
    else:
        Path(entry["tempPath"]).unlink(missing_ok=True)


def discard_staged(library: Library, image_id: str) -> None:
    """An upload that was not kept (the same bytes were there already)."""
    if library.blobs.remote:
        library.blobs.delete(staging_key(image_id))


def sweep_staged(library: Library, older_than_s: float = STAGED_ORPHAN_AFTER_S) -> list[str]:
    """Delete uploads no image waits for any more, once they are `older_than_s` old:
    staged on remote storage (an API process died between staging an upload and
    recording its image), or left in this host's temp folder (a server killed while a
    request was still arriving)."""
    in_temp = _sweep_temp(library, older_than_s)  # on S3 too: an upload answered 503
    if not library.blobs.remote:
        return in_temp
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
    old = [
        b for b in library.blobs.list_folder(STAGING_PREFIX.rstrip("/")) if b.modified_at <= cutoff
    ]
    waiting = _still_awaited(library, images.c.id, [b.name.split(".")[0] for b in old])
    swept = [b for b in old if b.name.split(".")[0] not in waiting]
    for blob in swept:
        library.blobs.delete(blob.key)
    return in_temp + [b.name for b in swept]


DERIVATIVE_ORPHAN_AFTER_S = 3600  # a derivative no image owns is swept this old
SWEEP_BATCH = 500  # image ids looked up at once


def sweep_derivatives(
    library: Library, older_than_s: float = DERIVATIVE_ORPHAN_AFTER_S
) -> list[str]:
    """Delete the files of derivative folders whose image the database does not know
    (dropped for good, or a database restored from a backup older than the storage)
    once they are `older_than_s` old; returns the ids of the images swept. Every
    project's manifest_cleaning sees only the images it has."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
    swept: list[str] = []
    for shard in sorted(library.blobs.list_subfolders(DERIVATIVES_FOLDER)):
        folder = f"{DERIVATIVES_FOLDER}/{shard}"
        ids = sorted(library.blobs.list_subfolders(folder))
        for start in range(0, len(ids), SWEEP_BATCH):
            batch = ids[start : start + SWEEP_BATCH]
            with library.engine.connect() as conn:
                query = sa.select(images.c.id).where(images.c.id.in_(batch))
                known = set(conn.execute(query).scalars())
            for image_id in batch:
                if image_id in known:
                    continue
                blobs = library.blobs.list_folder(f"{folder}/{image_id}")
                old = [b for b in blobs if b.modified_at <= cutoff]
                for blob in old:
                    library.blobs.delete(blob.key)
                if old:
                    swept.append(image_id)
    return swept


def _sweep_temp(library: Library, older_than_s: float) -> list[str]:
    cutoff = time.time() - older_than_s
    old = [p for p in library.temp_dir.iterdir() if p.is_file() and p.stat().st_mtime <= cutoff]
    waiting = _still_awaited(library, images.c.temp_path, [str(p) for p in old])
    swept = [p for p in old if str(p) not in waiting]
    for path in swept:
        path.unlink(missing_ok=True)
    return [p.name for p in swept]


def _still_awaited(library: Library, column: sa.Column[Any], values: list[str]) -> set[str]:
    """Those of `values` (image ids, temp paths) whose image still waits for its upload."""
    if not values:
        return set()
    with library.engine.connect() as conn:
        query = sa.select(column).where(column.in_(values), images.c.original_key.is_(None))
        return set(conn.execute(query).scalars())


def examine(
    library: Library, received: Received, *, filename: str | None, title: str | None = None
) -> tuple[dict[str, Any], MediaError | None]:
    """The new image row for an upload: INGESTED with what its content and metadata say,
    or FAILED with the error that refused it."""
    row: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "title": _title(title, filename),
        "original_filename": filename,
        "checksum": received.checksum,
        "size_bytes": received.size_bytes,
    }
    try:
        found = probe(received.path, library.limits)
        meta = read_metadata(received.path, found.format).as_dict()
    except MediaError as error:
        row.update(
            status=ImageStatus.FAILED.value,
            error_code=error.code.value,
            error_message=error.message,
        )
        return row, error
    row.update(
        status=ImageStatus.INGESTED.value,
        format=found.format,
        mime_type=MIME_TYPES.get(found.format),
        width=found.width,
        height=found.height,
        orientation=found.orientation,
        taken_at=meta.get("taken_at"),
        camera_make=meta.get("camera_make"),
        camera_model=meta.get("camera_model"),
        exif={k: v for k, v in meta.items() if v is not None},
        temp_path=str(received.path),
    )
    return row, None


def _record_image(
    library: Library,
    collection: str,
    row: dict[str, Any],
    enqueue_offload: bool,
    sidecars: list[dict[str, str]],
) -> sa.Row[Any] | None:
    """Insert the image (and its OFFLOAD_ORIGINAL job) unless the collection already holds
    these bytes; then return that image instead. A concurrent upload of the same bytes, or
    of a new collection's name, makes the first try fail on a unique index; a second try
    sees the winner's rows."""
    try:
        return _insert_image(library, collection, row, enqueue_offload, sidecars)
    except sa.exc.IntegrityError:
        return _insert_image(library, collection, row, enqueue_offload, sidecars)


def _insert_image(
    library: Library,
    collection: str,
    row: dict[str, Any],
    enqueue_offload: bool,
    sidecars: list[dict[str, str]],
) -> sa.Row[Any] | None:
    with library.engine.begin() as conn:
        project_id = project_id_for(library, conn, collection)
        existing = live_duplicate(conn, project_id, row["checksum"])
        if existing is not None:
            return existing
        conn.execute(
            images.insert().values(
                project_id=project_id, uploaded_at=db_now(), updated_at=db_now(), **row
            )
        )
        announce_image(library, conn, row["id"], row["status"])
        if enqueue_offload:
            payload = {
                "imageId": row["id"],
                "tempPath": row["temp_path"],
                "checksum": row["checksum"],
            }
            library.queue.enqueue(
                JobType.OFFLOAD_ORIGINAL,
                payload | ({"sidecars": sidecars} if sidecars else {}),
                priority=UPLOAD_PRIORITY,
                idempotency_key=f"offload:{row['id']}",
                conn=conn,
            )
        return None


def _title(title: str | None, filename: str | None) -> str | None:
    """The given title, else the file name without its extension."""
    return title or (Path(filename).stem if filename else None)


def _ingested(row: sa.Row[Any], created: bool) -> Ingested:
    return Ingested(
        image_id=row.id,
        status=ImageStatus(row.status),
        checksum=row.checksum,
        size_bytes=row.size_bytes,
        uploaded_at=row.uploaded_at,
        created=created,
        error_code=row.error_code,
        error_message=row.error_message,
    )


def lock_project(conn: sa.Connection, project_id: int) -> str:
    """Lock the project's row until the transaction ends (SQLite's write transactions
    hold the whole database already) and return its folder. Whoever picks a free name or
    checks for duplicates in a project takes it first, so two requests at once cannot
    both find the same name free or the same bytes new."""
    return folder_of(conn, project_id, lock=True)


def folder_of(conn: sa.Connection, project_id: int, lock: bool = False) -> str:
    query = sa.select(projects.c.folder).where(projects.c.id == project_id)
    return str(conn.execute(query.with_for_update() if lock else query).scalar_one())


def live_duplicate(conn: sa.Connection, project_id: int, checksum: str) -> sa.Row[Any] | None:
    """The project's live image with these bytes (or that had them when they arrived,
    before enlarger wrote XMP into it), if any."""
    return conn.execute(
        sa.select(images)
        .where(
            images.c.project_id == project_id,
            _has_checksum(checksum),
            images.c.deleted_at.is_(None),
        )
        .order_by(images.c.checksum != checksum)
    ).first()


def _has_checksum(checksum: str) -> sa.ColumnElement[bool]:
    return sa.or_(images.c.checksum == checksum, images.c.source_checksum == checksum)


def trashed_twin(library: Library, collection: str, checksum: str) -> sa.Row[Any] | None:
    """The image of the collection's project with these bytes whose file is in its
    trash (a rejected photo's, say), if any: a card imported again skips it."""
    with library.engine.connect() as conn:
        project_id = find_project_id(conn, collection)
        if project_id is None:
            return None
        rows = list(
            conn.execute(
                sa.select(images)
                .where(
                    images.c.project_id == project_id,
                    _has_checksum(checksum),
                    images.c.deleted_at.is_not(None),
                    images.c.original_key.is_not(None),
                )
                .order_by(images.c.deleted_at.desc())
            )
        )
    return next((row for row in rows if library.blobs.exists(row.original_key)), None)


FOLDER_CHARS = 100  # a folder made from a collection's name keeps this much of it


def _folder_of(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower())[:FOLDER_CHARS].strip("-")


def find_project_id(conn: sa.Connection, name: str) -> int | None:
    """The project a collection name means: the one of that name, folder or title, or the
    one whose folder the name makes ("Wedding 2026" is wedding-2026's)."""
    for column, value in (
        (projects.c.name, name),
        (projects.c.folder, name),
        (projects.c.title, name),
        (projects.c.folder, _folder_of(name)),
    ):
        query = sa.select(projects.c.id).where(column == value).order_by(projects.c.id)
        found = conn.execute(query.limit(1)).scalar()
        if found is not None:
            return int(found)
    return None


def project_id_for(library: Library, conn: sa.Connection, name: str) -> int:
    """The project a collection name means (`find_project_id`), never a copy of it;
    created on first use otherwise (with its maintenance schedules)."""
    found = find_project_id(conn, name)
    if found is not None:
        return found
    folder = _folder_of(name)
    if not folder:  # nothing of the name makes a folder: the first free "project-N"
        like = projects.c.folder.like("project%")
        taken = set(conn.execute(sa.select(projects.c.folder).where(like)).scalars())
        candidates = ("project", *(f"project-{n}" for n in range(2, len(taken) + 2)))
        folder = next(f for f in candidates if f not in taken)
    stmt = (
        projects.insert()
        .values(name=name, folder=folder, created_at=db_now())
        .returning(projects.c.id)
    )
    project_id = int(conn.execute(stmt).scalar_one())
    schedule_project(library.queue, conn, folder)
    return project_id


# ---- offload and derivatives (called by the job handlers) ------------------------------


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
                enqueue_preview(library, conn, image_id, key, priority=DERIVATIVE_PRIORITY)
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
            key = _free_key(conn, row, folder, row.project_id, joining, skip)
        if _foreign_file(library, key, row.checksum):
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
            if _free_key(conn, row, folder, row.project_id, joining, skip) != key:
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
    """The preview job; when it is done it enqueues the thumbnails, made from the preview
    (so a 24 MP original is decoded once, not once per job). What is made already is not
    made again, unless `again` (a forced backfill, an assessment to measure)."""
    recipe = library.recipes.preview
    return library.queue.enqueue(
        JobType.PREVIEW_GENERATION,
        {
            "imageId": image_id,
            "originalPath": original_key,
            "sizes": [recipe.long_side],
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


def _free_key(
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


def _foreign_file(library: Library, key: str, checksum: str) -> bool:
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


DERIVATIVES_FOLDER = "derivatives"


def derivative_folder(image_id: str) -> str:
    return f"{DERIVATIVES_FOLDER}/{image_id[:2]}/{image_id}"


def derivative_key(image_id: str, recipe: Recipe) -> str:
    return f"{derivative_folder(image_id)}/{recipe.name}-{recipe.hash}.{recipe.extension}"


def record_derivatives(
    library: Library,
    image_id: str,
    made: list[dict[str, Any]],
    thumbhash: str | None,
    then: Callable[[sa.Connection], object] | None = None,
    assessment: dict[str, Any] | None = None,
    fence: Callable[[sa.Connection], object] | None = None,
) -> ImageStatus:
    """Record written derivatives; the job that completes the set marks the image STORED.
    `fence` runs first and may refuse (the job's lease moved on); then the image row is
    locked, so two jobs finishing together cannot both miss it. `then` (say, enqueueing
    the next job) commits with the record or not at all."""
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
        if then is not None:
            then(conn)
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


def announce_image(library: Library, conn: sa.Connection, image_id: str, status: str) -> None:
    """An `image` event on the live stream (with the image's project, for filtering, and
    the photo it is a file of, so a page showing the project fetches that one photo),
    committed with the change it tells of."""
    found = conn.execute(
        sa.select(projects.c.folder, photos.c.basename)
        .select_from(images)
        .join(projects, images.c.project_id == projects.c.id)
        .outerjoin(photo_files, photo_files.c.image_id == images.c.id)
        .outerjoin(photos, photos.c.id == photo_files.c.photo_id)
        .where(images.c.id == image_id)
    ).first()
    folder, basename = found if found is not None else (None, None)
    data = {"imageId": image_id, "project": folder, "photo": basename}
    library.queue.store.record_event(conn, "image", data, str(status))


# ---- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImagePage:
    rows: list[sa.Row[Any]]  # images joined with their collection's name as `collection`
    count: int  # how many match the filters in all
    collections: list[str]  # every collection's name


def _image_query() -> sa.Select[Any]:
    return sa.select(images, projects.c.name.label("collection"), projects.c.folder).join(
        projects, projects.c.id == images.c.project_id
    )


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


def get_image_row(library: Library, image_id: str, include_deleted: bool = False) -> sa.Row[Any]:
    query = _image_query().where(images.c.id == image_id)
    if not include_deleted:
        query = query.where(images.c.deleted_at.is_(None))
    with library.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no image {image_id!r}")
    return row


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
        _image_query()
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


# ---- changing and deleting ------------------------------------------------------------------


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
                key = _free_key(conn, row, folder, project_id, True, skip)
            if _foreign_file(library, key, row.checksum):
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
            elif pending is None and _free_key(conn, row, folder, project_id, True, skip) != key:
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
    if _foreign_file(library, key, row.checksum):  # put there by hand (not our own copy)
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


# ---- backfill -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Backfill:
    images: int  # images that got a job (work already queued is not queued twice)


def backfill(library: Library, everything: bool = False) -> Backfill:
    """Queue derivative work, in the low-priority lane, for every stored original that
    lacks a derivative of the current recipes (after a recipe change, or for images from
    before derivatives existed) or its culling assessment; with `everything`, for every
    original. FAILED images are
    left alone: their file is broken."""
    current_preview = (PREVIEW_NAME, library.recipes.preview.hash)
    current_thumbs = {(r.name, r.hash) for r in library.recipes.thumbnails}
    touched = 0
    last_id = ""
    while True:
        with library.engine.connect() as conn:
            page = list(
                conn.execute(
                    _image_query()
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
            return Backfill(touched)
        last_id = page[-1].id
        made = derivatives_of(library, [row.id for row in page])
        with library.engine.begin() as conn:
            for row in page:
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


def copy_to_temp(library: Library, source: Path) -> Received:
    """For imports: the user's file is copied (never moved) to the temp directory."""
    with source.open("rb") as fh:
        return receive(library, read_chunks(fh))
