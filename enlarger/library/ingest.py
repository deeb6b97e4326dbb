"""Taking images in: receiving an upload's bytes, checking its names, recording the
image (or finding it a duplicate) with the job that stores it, staging uploads for
remote storage, and sweeping what no image waits for any more."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa

from enlarger.db.schema import images, projects
from enlarger.db.types import db_now
from enlarger.errors import Invalid
from enlarger.library.image_records import (
    CHUNK,
    DEFAULT_COLLECTION,
    DERIVATIVES_FOLDER,
    STAGED_ORPHAN_AFTER_S,
    STAGING_PREFIX,
    UPLOAD_PRIORITY,
    ImageStatus,
    Ingested,
    JobType,
    Received,
    announce_image,
    discard_staged,
    find_project_id,
    folder_for_name,
    get_image_row,
    staging_key,
)
from enlarger.library.library import Library
from enlarger.library.tasks import schedule_project
from enlarger.media import (
    MIME_TYPES,
    MediaError,
    MediaErrorCode,
    probe,
    read_metadata,
)


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
    # as recorded here (INGESTED or FAILED): read back, it was at times PROCESSING already,
    # when a worker took the upload's job before this answer was made
    return dataclasses.replace(
        _ingested(get_image_row(library, image_id), created=True),
        status=ImageStatus(row["status"]),
        error_code=row.get("error_code"),
        error_message=row.get("error_message"),
    )


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


def project_id_for(library: Library, conn: sa.Connection, name: str) -> int:
    """The project a collection name means (`find_project_id`), never a copy of it;
    created on first use otherwise (with its maintenance schedules)."""
    found = find_project_id(conn, name)
    if found is not None:
        return found
    folder = folder_for_name(name)
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


def copy_to_temp(library: Library, source: Path) -> Received:
    """For imports: the user's file is copied (never moved) to the temp directory."""
    with source.open("rb") as fh:
        return receive(library, read_chunks(fh))
