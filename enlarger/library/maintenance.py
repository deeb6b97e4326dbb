"""Project maintenance (reference 003): the folder (or the S3 prefix) is the truth, and
these tasks bring the database back in line with it.

- trash_maintenance: purges what has been in `.trash` longer than the retention;
- manifest_check: files the database knows that are gone or were changed in place;
- folder_check: files in the folder the database does not know: images and RAWs are
  taken in as photos, sidecars join their photo, anything else goes to `.trash`;
- manifest_cleaning: records nothing points at any more and derivatives no record
  points at; derivatives whose file is gone are made again.

Each task returns a Report of its changes; with `dry_run` it only reports what it would
change. A file changed within `settle_seconds` may still be being written: folder_check
looks at such files twice, `settle_look_seconds` apart, and takes in those whose size
and time held and that end where their format says; the others are reported as settling
and looked at again by a folder_check it queues. The other tasks leave files that young
alone.

One module, though long: the four tasks share the settling rules and the Report, and
each is one section here.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from enlarger.db.schema import derivatives, images, photo_files, photo_sidecars, photos
from enlarger.db.types import db_now
from enlarger.errors import Conflict, NotFound
from enlarger.library import edits, image_records, ingest, processing, projects, sidecars
from enlarger.library.image_records import ImageStatus, Received
from enlarger.library.ingest import InvalidName
from enlarger.library.library import Library
from enlarger.library.photos import has_photo, sidecar_basename
from enlarger.library.tasks import PRIORITY, Maintenance, enqueue_task
from enlarger.media import MediaErrorCode
from enlarger.media.sniff import HEAD_BYTES, TAIL_BYTES, reaches_its_end, sniff
from enlarger.queue import JobStatus
from enlarger.storage import BlobInfo, StorageError, check_name

NOT_IMAGES = {MediaErrorCode.UNSUPPORTED_FORMAT, MediaErrorCode.EMPTY_FILE}


@dataclass(frozen=True)
class Change:
    action: str  # purge, forget, refresh, ingest, attach, trash, drop, regenerate, delete
    name: str  # the file (or photo, or derivative) it concerns
    reason: str


@dataclass
class Report:
    task: str
    folder: str
    dry_run: bool
    changes: list[Change] = field(default_factory=list)
    jobs: list[int] = field(default_factory=list)  # work it queued (upload_postprocess…)
    settling: list[str] = field(default_factory=list)  # files still being written
    recheck: int | None = None  # the same check, queued to look at them again

    def add(self, action: str, name: str, reason: str) -> bool:
        """Note a change; True when it is to be applied (not a dry run)."""
        self.changes.append(Change(action, name, reason))
        return not self.dry_run

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


log = logging.getLogger(__name__)
PROJECTS_FOLDER = "projects"  # each project's folder is in it


def run(library: Library, task: Maintenance, folder: str, *, dry_run: bool = False) -> Report:
    """Run one task on one project (NotFound when there is no such project)."""
    project = projects.get_project(library, folder)
    report = Report(task.value, project.folder, dry_run)
    TASKS[task](library, project, report)
    return report


def _now() -> datetime:
    return datetime.now(UTC)


def _settled(library: Library, blob: BlobInfo) -> bool:
    return _now() - blob.modified_at >= timedelta(seconds=library.settings.settle_seconds)


# ---- trash_maintenance ---------------------------------------------------------------------


def trash_maintenance(library: Library, project: sa.Row[Any], report: Report) -> None:
    retention = timedelta(days=library.settings.trash_retention_days)
    for blob in library.blobs.list_folder(f"projects/{project.folder}/.trash"):
        age = _now() - blob.modified_at
        if age < retention:
            continue
        reason = f"in the trash for {age.days} days (retention {retention.days} days)"
        if report.add("purge", blob.name, reason):
            library.blobs.delete(blob.key)


# ---- manifest_check ------------------------------------------------------------------------


def manifest_check(library: Library, project: sa.Row[Any], report: Report) -> None:
    with library.engine.connect() as conn:
        stored = list(
            conn.execute(
                sa.select(images)
                .where(
                    images.c.project_id == project.id,
                    images.c.deleted_at.is_(None),
                    images.c.original_key.is_not(None),
                    images.c.landing_key.is_(None),  # one being moved is checked once there
                )
                .order_by(images.c.original_key)
            )
        )
        xmps = list(conn.execute(_sidecars_of(project, trashed=False)))
        stalled = list(
            conn.execute(
                sa.select(images).where(
                    images.c.project_id == project.id,
                    images.c.original_key.is_not(None),
                    images.c.landing_key.is_not(None),
                    edits.claim_stalled(),
                )
            )
        )
    for row in stored:
        _check_file(library, row, report)
    for row in stalled:
        _finish_move(library, row, report)
    stalled_since = db_now(-edits.MOVE_STALLED_S)
    with library.engine.connect() as conn:
        moving = list(
            conn.execute(
                _sidecars_of(project, trashed=None).where(
                    photo_sidecars.c.moving_since < stalled_since
                )
            )
        )
    for xmp in moving:
        if report.add("finish", xmp.name, f"its move to {xmp.moving_to} was interrupted"):
            with contextlib.suppress(FileNotFoundError):  # both gone: forgotten next
                sidecars.finish_move(library, xmp.key, xmp.moving_to)
    _forget_missing(library, xmps, report, "forget", "the sidecar is gone from the folder")
    _reread_edited(library, xmps, report)
    if report.settling and not report.dry_run:
        again = Maintenance.MANIFEST_CHECK
        delay_s = library.settings.settle_seconds
        report.recheck = _recheck_later(library, project.folder, again, delay_s)


def _reread_edited(library: Library, xmps: list[sa.Row[Any]], report: Report) -> None:
    """Sidecars edited elsewhere (darktable, Lightroom) since enlarger last read or wrote
    them: their decisions are read (the photo takes them when the edit is the newer),
    once the file has been left alone `settle_seconds`; until then it is settling (a
    tool may still be saving into it)."""
    for xmp in xmps:
        if xmp.moving_to is not None:
            continue
        blob = library.blobs.info(xmp.key)
        if blob is None or xmp.checksum is None:
            continue
        with library.blobs.local_copy(xmp.key) as path:
            if sidecars.checksum_of(path.read_bytes()) == xmp.checksum:
                continue
        if not _settled(library, blob):
            report.settling.append(xmp.name)
            continue
        if report.add("reread", xmp.name, "edited elsewhere since enlarger last saw it"):
            with library.engine.connect() as conn:
                photo = conn.execute(sa.select(photos).where(photos.c.id == xmp.photo_id)).one()
            sidecars.edited_elsewhere(library, photo)


def _forget_missing(
    library: Library, xmps: list[sa.Row[Any]], report: Report, action: str, reason: str
) -> None:
    """Forget the sidecars whose file is gone (but those on their way elsewhere)."""
    for xmp in xmps:
        if xmp.moving_to is not None:
            continue
        if not library.blobs.exists(xmp.key) and report.add(action, xmp.name, reason):
            with library.engine.begin() as conn:
                sidecars.forget(conn, xmp.key)


def _sidecars_of(project: sa.Row[Any], trashed: bool | None) -> sa.Select[Any]:
    """The project's sidecars in its folder (or, `trashed`, in its trash; None: both)."""
    where = (
        sa.true()
        if trashed is None
        else photo_sidecars.c.trashed_at.is_not(None)
        if trashed
        else photo_sidecars.c.trashed_at.is_(None)
    )
    return (
        sa.select(
            photo_sidecars.c.key,
            photo_sidecars.c.name,
            photo_sidecars.c.photo_id,
            photo_sidecars.c.checksum,
            photo_sidecars.c.moving_to,
            photo_sidecars.c.moving_since,
        )
        .join(photos, photos.c.id == photo_sidecars.c.photo_id)
        .where(photos.c.project_id == project.id, where)
    )


def _check_file(library: Library, row: sa.Row[Any], report: Report) -> None:
    """Gone, or changed in place (by size, and by hash unless `manifest_verify_hashes`
    is off: reading every file is the price of noticing an edit that kept the size)."""
    name = row.original_key.rsplit("/", 1)[-1]
    blob = library.blobs.info(row.original_key)
    if blob is None:
        if report.add("forget", name, "the file is gone from the folder"):
            _forget(library, row)
        return
    if not _settled(library, blob):
        return
    if blob.size_bytes != row.size_bytes:
        reason = f"its size changed from {row.size_bytes} to {blob.size_bytes} bytes"
    elif (
        library.settings.manifest_verify_hashes
        and processing.blob_checksum(library, row.original_key) != row.checksum
    ):
        reason = "its content changed (same size, other bytes)"
    else:
        return
    if report.add("refresh", name, reason):
        try:
            status = edits.refresh_original(library, row.id)
        except Conflict as error:
            report.add("trash", name, str(error))
            edits.delete_image(library, row.id)
            return
        if status is not ImageStatus.FAILED:
            _make_derivatives(library, row.id, row.original_key)
            sidecars.edited_file(library, row.id, blob.modified_at)


def _finish_move(library: Library, row: sa.Row[Any], report: Report) -> None:
    """A deletion, restore or move of the file whose process died between claiming the
    file's new name and recording it: what it began is finished."""
    name = row.original_key.rsplit("/", 1)[-1]
    if report.add("finish", name, f"its move to {row.landing_key} was interrupted"):
        # both files gone: the claim is given up, and the image forgotten next time
        with contextlib.suppress(Conflict, NotFound, FileNotFoundError):
            edits.finish_interrupted(library, row)


def _forget(library: Library, row: sa.Row[Any]) -> None:
    """The file is gone: its image is deleted (derivatives too), unless it moved meanwhile
    (a commit sending it to the trash, say), which `delete_image` checks under a lock."""
    with contextlib.suppress(NotFound):
        edits.delete_image(library, row.id, original_gone=True)


def _make_derivatives(library: Library, image_id: str, original_key: str) -> None:
    """New derivatives for the file its photo is shown by; any other file is done."""
    if not projects.is_derivative_source(library, image_id):
        processing.mark_stored(library, image_id)
        return
    with library.engine.begin() as conn:
        processing.enqueue_preview(
            library, conn, image_id, original_key, image_records.DERIVATIVE_PRIORITY
        )


# ---- folder_check --------------------------------------------------------------------------


RECHECK_AFTER_S = 5.0  # when a folder_check looks again at files still being written


def folder_check(library: Library, project: sa.Row[Any], report: Report) -> None:
    folder = project.folder
    listed = list(library.blobs.list_folder(f"projects/{folder}"))
    tracked, in_flight = _tracked(library, project)  # read after listing: see _tracked
    untracked = _settled_now(library, [b for b in listed if b.key not in tracked], report)
    if report.settling and not report.dry_run:
        report.recheck = _recheck_later(library, folder, Maintenance.FOLDER_CHECK, RECHECK_AFTER_S)
    found: list[dict[str, Any]] = []
    found_sidecars: list[BlobInfo] = []
    for blob in untracked:
        try:
            check_name(blob.name)
        except StorageError as error:
            _to_trash(library, report, blob, str(error))
            continue
        if sidecars.is_sidecar(blob.name):
            found_sidecars.append(blob)
            continue
        row, refusal = _examine(library, blob)
        if refusal is not None:
            _to_trash(library, report, blob, refusal)
        elif row["checksum"] in in_flight:
            continue  # an upload of these very bytes is landing here right now
        else:
            found.append(row)
    new_basenames: set[str] = set()
    if found:
        new_basenames = _ingest(library, folder, found, report)
    for blob in found_sidecars:
        _attach_sidecar(library, project, blob, new_basenames, report)


def _settled_now(library: Library, blobs: list[BlobInfo], report: Report) -> list[BlobInfo]:
    """The files that are whole, by name: those changed long ago, and the recent ones
    whose size and time held across a second look; the rest go in `report.settling`."""
    settled: list[BlobInfo] = []
    recent: list[BlobInfo] = []
    for blob in blobs:
        (settled if _settled(library, blob) else recent).append(blob)
    if recent:
        time.sleep(library.settings.settle_look_seconds)
    for blob in recent:
        again = library.blobs.info(blob.key)
        if again is None:
            continue  # gone meanwhile (moved on by whoever wrote it)
        held = (again.size_bytes, again.modified_at) == (blob.size_bytes, blob.modified_at)
        if held and _reaches_its_end(library, again):
            settled.append(again)
        else:
            report.settling.append(blob.name)
    report.settling.sort()
    return sorted(settled, key=lambda b: b.name)


def _reaches_its_end(library: Library, blob: BlobInfo) -> bool:
    """Whether the file ends where its format says (a copy that paused for longer than
    the look does not); a file of no image format is whole as far as anyone can tell."""
    with library.blobs.local_copy(blob.key) as path, path.open("rb") as fh:
        head = fh.read(HEAD_BYTES)
        fh.seek(max(0, blob.size_bytes - TAIL_BYTES))
        tail = fh.read()
    kind = sniff(head)
    return kind is None or reaches_its_end(kind, head, tail, blob.size_bytes)


def sweep_library(library: Library) -> dict[str, list[str]]:
    """The whole library at once (every project's own tasks see only its own): project
    folders no project has become projects again, and derivatives of images the
    database does not know are deleted (`ingest.sweep_derivatives`)."""
    return {"adopted": adopt_folders(library), "swept": ingest.sweep_derivatives(library)}


def adopt_folders(library: Library) -> list[str]:
    """Project folders in storage the database has no project for (made after the
    backup a restored database came from): each becomes a project again, and a
    folder_check is queued to take its files in. Returns the folders adopted."""
    adopted = []
    for folder in sorted(library.blobs.list_subfolders(PROJECTS_FOLDER)):
        try:
            projects.get_project(library, folder)
            continue
        except NotFound:
            pass
        try:
            projects.create_project(library, folder)
        except (Conflict, InvalidName) as error:
            log.warning("projects/%s is no project's folder and cannot be one: %s", folder, error)
            continue
        enqueue_task(library.queue, folder, Maintenance.FOLDER_CHECK)
        adopted.append(folder)
    return adopted


def _recheck_later(library: Library, folder: str, task: Maintenance, delay_s: float) -> int | None:
    """`task` again in `delay_s`, for the files still settling, unless one waits
    already; returns its job id."""
    waiting = [
        job
        for job in library.queue.store.live_jobs_by_payload("folder", [folder])
        if job.type == task.value and job.status == JobStatus.PENDING
    ]
    if waiting:
        return None
    return library.queue.enqueue(
        task.value, {"folder": folder}, priority=PRIORITY[task], delay_s=delay_s
    ).id


def _tracked(library: Library, project: sa.Row[Any]) -> tuple[set[str], set[str]]:
    """Keys the project knows (its files, their sidecars, and the names uploads,
    restores and moves from other projects still on their way will take) and the
    checksums of those uploads. Read after the folder is listed, so a file moved in by an
    upload meanwhile is known by then."""
    with library.engine.connect() as conn:
        rows = list(
            conn.execute(
                sa.select(
                    images.c.original_key,
                    images.c.landing_key,
                    images.c.original_filename,
                    images.c.checksum,
                ).where(
                    sa.or_(
                        sa.and_(
                            images.c.project_id == project.id,
                            sa.or_(
                                images.c.deleted_at.is_(None), images.c.landing_key.is_not(None)
                            ),
                        ),  # and images of other projects moving here
                        images.c.landing_key.startswith(
                            f"projects/{project.folder}/", autoescape=True
                        ),
                    )
                )
            )
        )
        sidecar_keys: set[str] = set()
        for row in conn.execute(_sidecars_of(project, trashed=None)):
            sidecar_keys |= {row.key, row.moving_to} - {None}  # and where one is on its way
    keys = {r.original_key for r in rows if r.original_key is not None}
    landing = [r for r in rows if r.original_key is None and r.original_filename]
    keys |= {f"projects/{project.folder}/{r.original_filename}" for r in landing}
    keys |= {r.landing_key for r in rows if r.landing_key is not None}  # restores too
    return keys | sidecar_keys, {r.checksum for r in landing}


def _examine(library: Library, blob: BlobInfo) -> tuple[dict[str, Any], str | None]:
    """The image row for a file found in the folder, or why it is not an image."""
    with library.blobs.local_copy(blob.key) as path:
        with path.open("rb") as fh:
            kind = sniff(fh.read(HEAD_BYTES))
        received = Received(path, processing.file_checksum(path), path.stat().st_size)
        row, failed = ingest.examine(library, received, filename=blob.name)
    if failed is not None and (kind is None or failed.code in NOT_IMAGES):
        return row, f"not an image enlarger takes ({failed.message})"
    row.update(original_key=blob.key, temp_path=None, format=kind)
    if failed is None:  # already where it belongs: its processing is all that is left
        row.update(status=ImageStatus.PROCESSING.value)
    return row, None


def _ingest(library: Library, folder: str, found: list[dict[str, Any]], report: Report) -> set[str]:
    """Take the files in as the project's photos; returns the base names they give."""
    if report.dry_run:
        for row in found:
            twin = projects.twin_in(library, folder, row["checksum"])
            if twin is None:
                report.add("ingest", row["original_filename"], "an image not in the database")
            else:
                report.add("trash", row["original_filename"], f"the same bytes as {twin!r}")
        return {projects.basename_of(row["original_filename"]) for row in found}
    outcomes, job_id = projects.adopt(library, folder, found)
    by_name = {row["original_filename"]: row for row in found}
    for outcome in outcomes:
        if outcome.duplicate:
            blob = library.blobs.info(by_name[outcome.filename]["original_key"])
            if blob is not None:
                _to_trash(library, report, blob, f"the same bytes as {outcome.stored_as!r}")
        else:
            report.add("ingest", outcome.filename or "", "an image not in the database")
    if job_id is not None:
        report.jobs.append(job_id)
    return {o.basename for o in outcomes if not o.duplicate and o.basename}


def _attach_sidecar(
    library: Library,
    project: sa.Row[Any],
    blob: BlobInfo,
    new_basenames: set[str],
    report: Report,
) -> None:
    with library.engine.connect() as conn:
        in_database = has_photo(conn, project.id)
        basename = sidecar_basename(blob.name, lambda b: b in new_basenames or in_database(b))
        photo_id = conn.execute(
            sa.select(photos.c.id).where(
                photos.c.project_id == project.id, photos.c.basename == basename
            )
        ).scalar()
    if photo_id is None and basename not in new_basenames:
        _to_trash(library, report, blob, f"a sidecar of no photo (no {basename!r} here)")
    elif report.add("attach", blob.name, f"a sidecar of {basename!r}"):
        with library.blobs.local_copy(blob.key) as path:
            data = path.read_bytes()
        decisions = sidecars.decisions_in(data)
        with library.engine.begin() as conn:
            photo_id = conn.execute(
                sa.select(photos.c.id).where(
                    photos.c.project_id == project.id, photos.c.basename == basename
                )
            ).scalar_one()
            if sidecars.holder(conn, blob.key) is None:
                sidecars.attach(conn, photo_id, blob.key, data)
            conn.execute(
                photos.update()
                .where(photos.c.id == photo_id)
                .values(updated_at=db_now(), **decisions)
            )


def _to_trash(library: Library, report: Report, blob: BlobInfo, reason: str) -> None:
    if report.add("trash", blob.name, reason):
        trash_key = edits.free_trash_key(library, report.folder, blob.name)
        with contextlib.suppress(StorageError, FileNotFoundError):  # gone meanwhile: fine
            library.blobs.move(blob.key, trash_key)


# ---- manifest_cleaning ---------------------------------------------------------------------


def manifest_cleaning(library: Library, project: sa.Row[Any], report: Report) -> None:
    with library.engine.connect() as conn:
        rows = list(conn.execute(sa.select(images).where(images.c.project_id == project.id)))
        recorded = list(
            conn.execute(
                sa.select(derivatives)
                .join(images, images.c.id == derivatives.c.image_id)
                .where(images.c.project_id == project.id)
            )
        )
    keys_of: dict[str, set[str]] = {}
    for derivative in recorded:
        keys_of.setdefault(derivative.image_id, set()).add(derivative.storage_key)
    for row in rows:
        _clean_derivative_folder(library, row, keys_of.get(row.id, set()), report)
    _regenerate_missing(library, rows, recorded, report)
    dropped: set[str] = set()
    for row in rows:
        if not _is_orphaned(library, row):
            continue
        name = row.original_filename or row.id
        applying = report.add("drop", name, "deleted, and its file is gone from the trash")
        if not applying or _drop_image(library, row):  # a dry run drops it in thought
            dropped.add(row.id)
    _drop_gone_sidecars(library, project, report)
    _drop_empty_photos(library, project, dropped, report)


def _drop_gone_sidecars(library: Library, project: sa.Row[Any], report: Report) -> None:
    """Sidecars in the trash whose file is gone from it (purged): nothing to restore."""
    with library.engine.connect() as conn:
        trashed = list(conn.execute(_sidecars_of(project, trashed=True)))
    _forget_missing(library, trashed, report, "drop", "a sidecar whose file is gone from the trash")


def _clean_derivative_folder(
    library: Library, row: sa.Row[Any], recorded: set[str], report: Report
) -> None:
    """Files in the image's derivatives folder no record points at (left by a job that
    died between writing and recording, or by an image dropped since)."""
    for blob in library.blobs.list_folder(image_records.derivative_folder(row.id)):
        if blob.key in recorded or not _settled(library, blob):
            continue
        if report.add("delete", blob.key, "a derivative no record points at"):
            library.blobs.delete(blob.key)


def _regenerate_missing(
    library: Library, rows: list[sa.Row[Any]], recorded: list[sa.Row[Any]], report: Report
) -> None:
    live = {row.id: row for row in rows if row.deleted_at is None and row.original_key}
    missing: dict[str, list[sa.Row[Any]]] = {}
    for derivative in recorded:
        if derivative.image_id in live and not library.blobs.exists(derivative.storage_key):
            missing.setdefault(derivative.image_id, []).append(derivative)
    for image_id, gone in missing.items():
        row = live[image_id]
        names = ", ".join(sorted(d.name for d in gone))
        reason = f"its derivatives are gone ({names})"
        if report.add("regenerate", row.original_filename or image_id, reason):
            with library.engine.begin() as conn:
                conn.execute(
                    derivatives.delete().where(
                        derivatives.c.image_id == image_id,
                        derivatives.c.name.in_([d.name for d in gone]),
                    )
                )
                conn.execute(
                    images.update()
                    .where(images.c.id == image_id)
                    .values(status=ImageStatus.PROCESSING.value, updated_at=db_now())
                )
                processing.enqueue_preview(
                    library, conn, image_id, row.original_key, image_records.DERIVATIVE_PRIORITY
                )


def _is_orphaned(library: Library, row: sa.Row[Any]) -> bool:
    """A deleted image whose file is no longer in the trash: nothing can bring it back.
    One being restored (its file on its way back: `landing_key`) is not."""
    if row.deleted_at is None or row.landing_key is not None:
        return False
    return row.original_key is None or not library.blobs.exists(row.original_key)


def _drop_image(library: Library, row: sa.Row[Any]) -> bool:
    """Forget the image for good, unless it is being or was restored meanwhile: the row is
    locked and read again first."""
    image_id = row.id
    with library.engine.begin() as conn:
        current = conn.execute(
            sa.select(images).where(images.c.id == image_id).with_for_update()
        ).first()
        if current is None or not _is_orphaned(library, current):
            return False
        conn.execute(derivatives.delete().where(derivatives.c.image_id == image_id))
        conn.execute(photo_files.delete().where(photo_files.c.image_id == image_id))
        conn.execute(images.delete().where(images.c.id == image_id))
    return True


def _drop_empty_photos(
    library: Library, project: sa.Row[Any], dropped: set[str], report: Report
) -> None:
    """Photos with no file left (in the folder or the trash) and no sidecar in the folder
    (one left in the trash goes with them)."""
    in_folder = (
        sa.select(photo_sidecars.c.key)
        .where(photo_sidecars.c.photo_id == photos.c.id, photo_sidecars.c.trashed_at.is_(None))
        .exists()
    )
    with library.engine.connect() as conn:
        candidates = list(
            conn.execute(
                sa.select(photos.c.id, photos.c.basename, photo_files.c.image_id)
                .outerjoin(photo_files, photo_files.c.photo_id == photos.c.id)
                .where(photos.c.project_id == project.id, ~in_folder)
            )
        )
    files: dict[int, set[str]] = {}
    names: dict[int, str] = {}
    for c in candidates:
        names[c.id] = c.basename
        files.setdefault(c.id, set())
        if c.image_id is not None:
            files[c.id].add(c.image_id)
    for photo_id, image_ids in files.items():
        if image_ids - dropped:
            continue
        if report.add("drop", names[photo_id], "a photo with no file left"):
            with library.engine.begin() as conn:
                conn.execute(photo_sidecars.delete().where(photo_sidecars.c.photo_id == photo_id))
                conn.execute(photos.delete().where(photos.c.id == photo_id))


TASKS: dict[Maintenance, Callable[[Library, sa.Row[Any], Report], None]] = {
    Maintenance.TRASH: trash_maintenance,
    Maintenance.MANIFEST_CHECK: manifest_check,
    Maintenance.FOLDER_CHECK: folder_check,
    Maintenance.MANIFEST_CLEANING: manifest_cleaning,
}
