"""Projects and their photos (reference 003): a project is a folder of files under
`projects/<folder>/`; a photo is every file in it sharing a base name (IMG_0001.JPG and
IMG_0001.CR2), with the user's intent to keep or drop its JPG and its RAW, and their
culling decisions (pick or reject, stars, a colour label), which commit-changes applies
to the folder and writes into each photo's `.xmp` sidecars (`library.sidecars`). How the
photos are read for the API and the dashboard is `library.listing`.

Each file is an image row (so the photo API sees it too), linked to its photo with a
role: `jpg` for any rendered image, `raw` for camera RAW. A photo's thumbnails and
preview are made from its JPG when it has one, else from its RAW.

One module, though long: creating a project, taking files into it and committing its
decisions change the same rows under the same project lock, each a section here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from enlarger.db.engine import hold_briefly
from enlarger.db.schema import derivatives, images, photo_files, photos, projects
from enlarger.db.types import db_now
from enlarger.errors import Conflict, NotFound
from enlarger.library import edits, image_records, ingest, listing, lookups, processing, sidecars
from enlarger.library.image_records import ImageStatus, JobType, Received
from enlarger.library.ingest import InvalidName
from enlarger.library.library import Library
from enlarger.library.photos import (
    DECISION_FIELDS,
    JPG,
    RAW,
    Capture,
    basename_of,
    fits_photo,
    join_photo,
    live_files_query,
    numbered_names,
    shown_file,
)
from enlarger.library.sidecars import Handoff
from enlarger.library.tasks import AFTER_COMMIT, Maintenance, enqueue_task, schedule_project
from enlarger.media import MediaError
from enlarger.media.xmp import REJECT, UNFLAGGED, Decisions
from enlarger.queue import JobStatus
from enlarger.storage import StorageError, check_name


def check_folder(folder: str) -> str:
    try:
        return check_name(folder, "folder name")
    except StorageError as error:
        raise InvalidName(str(error)) from None


# ---- projects ------------------------------------------------------------------------------


def create_project(library: Library, folder: str, title: str | None = None) -> sa.Row[Any]:
    """A new, empty project; Conflict when the folder (or the title, which is also its
    collection name in the photo API) is taken."""
    folder = check_folder(folder)
    name = (title or folder).strip() or folder
    try:
        with library.engine.begin() as conn:
            conn.execute(
                projects.insert().values(name=name, folder=folder, title=title, created_at=db_now())
            )
            schedule_project(library.queue, conn, folder)
    except sa.exc.IntegrityError:
        raise Conflict(
            f"a project with the folder {folder!r} or the name {name!r} exists"
        ) from None
    return get_project(library, folder)


def get_project(library: Library, folder: str) -> sa.Row[Any]:
    with library.engine.connect() as conn:
        row = conn.execute(sa.select(projects).where(projects.c.folder == folder)).first()
    if row is None:
        raise NotFound(f"no project {folder!r}")
    return row


def project_with_count(library: Library, folder: str) -> tuple[sa.Row[Any], int]:
    """The project and how many photos it has."""
    project = get_project(library, folder)
    with library.engine.connect() as conn:
        count = conn.execute(
            sa.select(sa.func.count()).where(photos.c.project_id == project.id)
        ).scalar_one()
    return project, int(count)


def settling(library: Library, folder: str) -> list[str]:
    """Files in the project's folder still being written when folder_check last looked
    (it looks again by itself): the last finished folder_check's `settling`."""
    project = get_project(library, folder)
    done, _ = library.queue.store.list_jobs(
        status=JobStatus.COMPLETED,
        job_type=Maintenance.FOLDER_CHECK.value,
        payload_match=("folder", project.folder),
        limit=5,
    )
    for job in done:  # newest first; a dry run's look is not the project's state
        if isinstance(job.result, dict) and not job.result.get("dry_run"):
            return list(job.result.get("settling", []))
    return []


def set_handoff(library: Library, folder: str, changes: dict[str, Any]) -> sa.Row[Any]:
    """Change how the project's decisions are written (`Handoff`, camelCase keys);
    ValueError naming the option for a value it does not take."""
    project = get_project(library, folder)
    merged = Handoff.of(project.options).as_json() | changes
    handoff = Handoff.of(merged)
    with library.engine.begin() as conn:
        conn.execute(
            projects.update().where(projects.c.id == project.id).values(options=handoff.as_json())
        )
    return get_project(library, folder)


def retitle(library: Library, folder: str, title: str) -> sa.Row[Any]:
    """A new title (the project's collection name stays, so clients uploading to it go on
    finding it); Conflict when another project is known by it."""
    project = get_project(library, folder)
    title = title.strip()
    with library.engine.begin() as conn:
        other = conn.execute(
            sa.select(projects.c.id).where(
                projects.c.id != project.id,
                sa.or_(
                    projects.c.name == title, projects.c.title == title, projects.c.folder == title
                ),
            )
        ).first()
        if other is not None:
            raise Conflict(f"another project is called {title!r}")
        conn.execute(projects.update().where(projects.c.id == project.id).values(title=title))
    return get_project(library, folder)


def list_projects(library: Library) -> list[sa.Row[Any]]:
    """Every project with how many photos it has, oldest first."""
    photo_count = (
        sa.select(sa.func.count())
        .where(photos.c.project_id == projects.c.id)
        .scalar_subquery()
        .label("photo_count")
    )
    with library.engine.connect() as conn:
        return list(conn.execute(sa.select(projects, photo_count).order_by(projects.c.id)))


# ---- upload --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileOutcome:
    """What became of one uploaded file."""

    filename: str | None
    stored_as: str | None = None
    basename: str | None = None
    role: str | None = None
    image_id: str | None = None
    duplicate: bool = False
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class ProjectUpload:
    files: list[FileOutcome]
    job_id: int | None  # the upload_postprocess job, when any file is new


def upload(
    library: Library, folder: str, received: list[tuple[str | None, Received]]
) -> ProjectUpload:
    """Record uploaded files as photos of the project and enqueue one `upload_postprocess`
    job with an item per new file, all in one transaction. A file enlarger refuses (a bad
    name, not an image) is reported and dropped; the others go on."""
    project = get_project(library, folder)
    outcomes: list[FileOutcome] = []
    accepted: list[tuple[str, dict[str, Any], Received]] = []
    xmps: list[tuple[str, Received]] = []  # stored after the files, to find their photo
    for filename, upload_ in received:
        try:
            name = check_name(filename or "", "file name")
        except StorageError as error:
            upload_.path.unlink(missing_ok=True)
            outcomes.append(
                FileOutcome(filename, error_code="INVALID_NAME", error_message=str(error))
            )
            continue
        if sidecars.is_sidecar(name):
            xmps.append((name, upload_))
            continue
        row, failed = ingest.examine(library, upload_, filename=name)
        if failed is not None:
            upload_.path.unlink(missing_ok=True)
            outcomes.append(_refused(name, failed))
            continue
        ingest.stage_upload(library, row["id"], upload_)
        accepted.append((name, row, upload_))
    recorded, job_id = _record(library, project, accepted)
    names = {o.filename: o.stored_as for o in recorded if o.filename and o.stored_as}
    stored = [_store_sidecar(library, project, name, file, names) for name, file in xmps]
    return ProjectUpload(outcomes + recorded + stored, job_id)


def _refused(filename: str, error: MediaError) -> FileOutcome:
    return FileOutcome(filename, error_code=error.code.value, error_message=error.message)


def _record(
    library: Library, project: sa.Row[Any], accepted: list[tuple[str, dict[str, Any], Received]]
) -> tuple[list[FileOutcome], int | None]:
    outcomes: list[FileOutcome] = []
    new_names: list[str] = []
    not_kept: list[tuple[str, Received]] = []
    with library.engine.begin() as conn:
        hold_briefly(conn)  # every upload into the project waits on this lock
        image_records.lock_project(conn, project.id)
        for name, row, upload_ in accepted:
            existing = ingest.live_duplicate(conn, project.id, row["checksum"])
            if existing is not None:
                not_kept.append((row["id"], upload_))
                outcomes.append(_duplicate(name, existing))
                continue
            stored_as = _free_name(conn, project, name, Capture.of(row))
            outcomes.append(_insert_file(library, conn, project.id, name, stored_as, row))
            new_names.append(stored_as)
        job_id = _postprocess(library, conn, project.folder, new_names)
    for image_id, upload_ in not_kept:  # storage I/O: with no transaction open
        upload_.path.unlink(missing_ok=True)
        image_records.discard_staged(library, image_id)
    return outcomes, job_id


def _insert_file(
    library: Library,
    conn: sa.Connection,
    project_id: int,
    given: str,
    stored_as: str,
    row: dict[str, Any],
) -> FileOutcome:
    """The file's image row, joined to the photo of its base name, which keeps it."""
    now = db_now()
    conn.execute(
        images.insert().values(
            **(row | {"original_filename": stored_as}),
            project_id=project_id,
            uploaded_at=now,
            updated_at=now,
        )
    )
    role = join_photo(conn, project_id, row["id"], stored_as, row["format"], row.get("exif"))
    image_records.announce_image(library, conn, row["id"], row["status"])
    return FileOutcome(given, stored_as, basename_of(stored_as), role, row["id"])


def _postprocess(
    library: Library, conn: sa.Connection, folder: str, filenames: list[str]
) -> int | None:
    """One upload_postprocess job with an item per file, in the caller's transaction."""
    if not filenames:
        return None
    return library.queue.enqueue(
        JobType.UPLOAD_POSTPROCESS,
        {"folder": folder, "filenames": filenames},
        priority=image_records.UPLOAD_PRIORITY,
        items=filenames,
        conn=conn,
    ).id


def adopt(
    library: Library, folder: str, found: list[dict[str, Any]]
) -> tuple[list[FileOutcome], int | None]:
    """Files someone put into the project's folder by hand (rows from `ingest.examine`,
    with `original_key` where they lie): recorded as the project's photos where they are
    and post-processed like an upload. A file that turns out to hold the bytes of a file
    the project has is left out (its outcome says `duplicate`)."""
    project = get_project(library, folder)
    outcomes: list[FileOutcome] = []
    to_process: list[str] = []
    with library.engine.begin() as conn:
        for row in found:
            name = row["original_filename"]
            existing = ingest.live_duplicate(conn, project.id, row["checksum"])
            if existing is not None and existing.original_key == row["original_key"]:
                continue  # known by now: a restore or an upload put it there meanwhile
            if existing is not None:
                outcomes.append(_duplicate(name, existing))
                continue
            outcomes.append(_insert_file(library, conn, project.id, name, name, row))
            if row["status"] != ImageStatus.FAILED.value:
                to_process.append(name)
        job_id = _postprocess(library, conn, folder, to_process)
    return outcomes, job_id


def twin_in(library: Library, folder: str, checksum: str) -> str | None:
    """The name of the project's live file holding these bytes, if any."""
    project = get_project(library, folder)
    with library.engine.connect() as conn:
        existing = ingest.live_duplicate(conn, project.id, checksum)
    return existing.original_filename if existing is not None else None


def _duplicate(filename: str, existing: sa.Row[Any]) -> FileOutcome:
    """These bytes are already in the project, as `existing`."""
    stored_as = existing.original_filename
    return FileOutcome(
        filename, stored_as, basename_of(stored_as), image_id=existing.id, duplicate=True
    )


def _free_name(conn: sa.Connection, project: sa.Row[Any], name: str, capture: Capture) -> str:
    """`name`, or the first `name-2.ext`… no live file of the project has, no file on its
    way into the folder claims (a restore, a move from another project), and whose photo
    is this capture's (or nobody's yet)."""
    for candidate in numbered_names(name):
        if not fits_photo(conn, project.id, candidate, capture):
            continue
        key = f"projects/{project.folder}/{candidate}"
        taken = conn.execute(
            sa.select(images.c.id).where(
                sa.or_(
                    sa.and_(
                        images.c.project_id == project.id,
                        images.c.original_filename == candidate,
                        images.c.deleted_at.is_(None),
                    ),
                    images.c.landing_key == key,
                )
            )
        ).first()
        if taken is None:
            return candidate
    raise Conflict(f"no free name like {name!r}")


def _store_sidecar(
    library: Library,
    project: sa.Row[Any],
    name: str,
    upload_: Received,
    names: dict[str, str],
) -> FileOutcome:
    """An .xmp of the upload goes next to its photo's files. When it describes a file of
    the same upload (`names`: each file's name as sent and as stored) it follows that
    file's name: camera B's IMG_5002.xmp goes with its IMG_5002.JPG, stored as
    IMG_5002-2.JPG, to IMG_5002-2.xmp."""
    data = upload_.path.read_bytes()
    upload_.path.unlink(missing_ok=True)
    given = sidecars.described(name, names)
    if given is not None:
        name = sidecars.renamed(name, given, names[given])
        data = sidecars.following(data, given, names[given])
    basename = basename_of(names[given]) if given is not None else None
    photo, stored_as = sidecars.store(library, project, name, data, basename)
    return FileOutcome(name, stored_as, photo, "sidecar")


# ---- processing (the upload_postprocess job) -----------------------------------------------


def file_row(library: Library, folder: str, filename: str) -> sa.Row[Any]:
    """A live file of the project, with its photo and role."""
    query = (
        sa.select(images, photo_files.c.photo_id, photo_files.c.role)
        .join(photo_files, photo_files.c.image_id == images.c.id)
        .join(projects, projects.c.id == images.c.project_id)
        .where(
            projects.c.folder == folder,
            images.c.original_filename == filename,
            images.c.deleted_at.is_(None),
        )
    )
    with library.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no file {filename!r} in project {folder!r}")
    return row


def is_derivative_source(library: Library, image_id: str) -> bool:
    """Whether this file is the one its photo is shown by (`shown_file`); an image of
    the photo API, in no photo, shows itself."""
    with library.engine.connect() as conn:
        photo_id = conn.execute(
            sa.select(photo_files.c.photo_id).where(photo_files.c.image_id == image_id)
        ).scalar()
    if photo_id is None:
        return True
    source = shown_file(_live_files(library, photo_id))
    return source is not None and source.id == image_id


# ---- photos --------------------------------------------------------------------------------


def change_photos(
    library: Library, folder: str, basenames: list[str], changes: dict[str, Any]
) -> list[str]:
    """Record the user's intent on these photos: keep flags (`keep_jpg`, `keep_raw`) and
    decisions (`flag`, `rating`, `label`, None clearing the label). Nothing moves until
    commit-changes. Returns the base names that are no photo of the project."""
    project = get_project(library, folder)
    unknown = set(changes) - {"keep_jpg", "keep_raw", *DECISION_FIELDS}
    if unknown:
        raise ValueError(f"not a change of a photo: {sorted(unknown)}")
    wanted = set(basenames)
    with library.engine.begin() as conn:
        found = set(
            conn.execute(
                sa.select(photos.c.basename).where(
                    photos.c.project_id == project.id, photos.c.basename.in_(wanted)
                )
            ).scalars()
        )
        if found and changes:
            conn.execute(
                photos.update()
                .where(photos.c.project_id == project.id, photos.c.basename.in_(found))
                .values(updated_at=db_now(), **changes)
            )
            # every page showing the project (another tab, another person) hears of it
            event = {"project": project.folder, "photos": sorted(found)}
            library.queue.store.record_event(conn, "photo", event)
    return sorted(wanted - found)


def change_photo(
    library: Library, folder: str, basename: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """`change_photos` for one photo; returns it as `listing` shows it."""
    if change_photos(library, folder, [basename], changes):
        raise NotFound(f"no photo {basename!r} in project {folder!r}")
    return listing.photo_of(library, get_project(library, folder), basename)


# ---- culling: commit, revert, restore ---------------------------------------------------


@dataclass(frozen=True)
class Committed:
    trashed: list[str]  # file names moved to the project's .trash
    regenerating: list[str]  # RAWs that now show their photo and get derivatives
    jobs: dict[str, int]  # the reconciliation tasks queued after it, by type
    sidecars: list[str]  # .xmp files written with the photos' decisions
    sidecars_refused: dict[str, str]  # sidecar → why it was left as it is (not XMP)
    embedded: list[str]  # JPEG and DNG files the decisions were written into (opt-in)


@dataclass(frozen=True)
class _Culled:
    """A photo as commit-changes reads it."""

    row: sa.Row[Any]  # the photo
    keep: dict[str, bool]  # by role
    files: list[sa.Row[Any]]  # live files: id, original_filename, role, status, format
    said: bool  # a file's own XMP recorded decisions (a rating set in the camera)


def commit_changes(
    library: Library, folder: str, trash: bool = True, dry_run: bool = False
) -> Committed:
    """Apply the intent. Each photo's decisions go into its `.xmp` sidecars, as the
    project's `Handoff` names them (rewritten only where they say otherwise; a sidecar
    edited elsewhere since is read first, and wins when it is newer), and with its
    `embed_xmp` into its JPEG and DNG files that stay. Unless `trash` is off (sidecars
    only), every JPG or RAW not kept, and every file of a rejected photo, goes to
    `.trash` with its own sidecar (its derivatives are deleted at once); a photo left
    with only its RAW gets derivatives from it; a photo left with no file takes its
    other sidecars along. Then manifest_check, folder_check and manifest_cleaning are
    queued to reconcile the rest. A `dry_run` changes nothing and lists the files that
    would move and the sidecars that would be written (as the photos stand now)."""
    trashed: list[str] = []
    regenerating: list[str] = []
    written: list[str] = []
    refused: dict[str, str] = {}
    embedded: list[str] = []
    project = get_project(library, folder)
    handoff = Handoff.of(project.options)
    for photo in _culled(library, project):
        if not photo.files:
            continue  # all in the trash: nothing to describe
        decisions = Decisions(photo.row.flag, photo.row.rating, photo.row.label)
        names = [f.original_filename for f in photo.files]
        wrote = sidecars.write_back(
            library, project, photo.row, names, handoff, photo.said, dry_run=dry_run
        )
        written += wrote.written
        refused |= wrote.refused
        decisions = wrote.decisions
        rejected = decisions.flag == REJECT
        gone = [f for f in photo.files if rejected or not photo.keep[f.role]] if trash else []
        if dry_run:
            trashed += [f.original_filename for f in gone]
            continue
        if handoff.embed_xmp:
            staying = [f for f in photo.files if f not in gone]
            embedded += sidecars.embed(library, staying, decisions, handoff, refused)
        if not trash:
            continue
        for file in gone:
            try:
                moved = edits.delete_image(library, file.id)
            except NotFound:  # another commit, running at once, trashed it
                moved = False
            if moved:
                trashed.append(file.original_filename)
        if not gone:
            continue
        left = [f for f in photo.files if f not in gone]
        own = {f.original_filename + sidecars.SIDECAR_SUFFIX for f in gone}
        sidecars.send_to_trash(library, folder, photo.row.id, own if left else None)
        shown = shown_file(photo.files)
        if left and shown is not None and shown in gone:
            now_shown = sorted(left, key=lambda f: f.role != JPG)[0]  # a JPG, else the RAW
            if _regenerate(library, now_shown.id):
                regenerating.append(now_shown.original_filename)
    jobs = (
        {task.value: enqueue_task(library.queue, folder, task) for task in AFTER_COMMIT}
        if trash and not dry_run
        else {}
    )
    return Committed(trashed, regenerating, jobs, written, refused, embedded)


def _culled(library: Library, project: sa.Row[Any]) -> list[_Culled]:
    """The project's photos with their live files, in base name order."""
    query = sa.select(photos).where(photos.c.project_id == project.id).order_by(photos.c.basename)
    said = sa.or_(*(images.c.exif[field].as_string().is_not(None) for field in DECISION_FIELDS))
    files = live_files_query().add_columns(said.label("said"))
    files = files.where(images.c.project_id == project.id)
    with library.engine.connect() as conn:
        rows = list(conn.execute(query))
        files_of: dict[int, list[sa.Row[Any]]] = {}
        for file in conn.execute(files.order_by(images.c.original_filename)):
            files_of.setdefault(file.photo_id, []).append(file)
    return [
        _Culled(
            row,
            {JPG: row.keep_jpg, RAW: row.keep_raw},
            files_of.get(row.id, []),
            any(f.said for f in files_of.get(row.id, [])),
        )
        for row in rows
    ]


def revert_changes(library: Library, folder: str) -> int:
    """Reset every photo's intent to what is there; returns how many photos changed."""
    project = get_project(library, folder)

    def available(role: str) -> sa.Exists:
        return (
            sa.select(photo_files.c.image_id)
            .join(images, images.c.id == photo_files.c.image_id)
            .where(
                photo_files.c.photo_id == photos.c.id,
                photo_files.c.role == role,
                images.c.deleted_at.is_(None),
            )
            .exists()
        )

    with library.engine.begin() as conn:
        return conn.execute(
            photos.update()
            .where(
                photos.c.project_id == project.id,
                sa.or_(photos.c.keep_jpg != available(JPG), photos.c.keep_raw != available(RAW)),
            )
            .values(keep_jpg=available(JPG), keep_raw=available(RAW), updated_at=db_now())
        ).rowcount


@dataclass(frozen=True)
class Restored:
    restored: list[str]
    refused: dict[str, str]  # file name → why it stays in the trash


def list_trash(library: Library, folder: str) -> list[dict[str, Any]]:
    """The project's files in its `.trash` that can still be restored, newest first, each
    with the thumbnail it keeps there (a RAW shown by its JPG, with its photo's)."""
    project = get_project(library, folder)
    thumbnail = lookups.default_thumbnail_recipe(library).name
    query = (
        sa.select(
            images.c.id,
            images.c.original_filename,
            images.c.original_key,
            images.c.size_bytes,
            images.c.deleted_at,
            photo_files.c.photo_id,
            derivatives.c.storage_key.label("thumbnail_key"),
        )
        .outerjoin(photo_files, photo_files.c.image_id == images.c.id)
        .outerjoin(
            derivatives,
            sa.and_(derivatives.c.image_id == images.c.id, derivatives.c.name == thumbnail),
        )
        .where(
            images.c.project_id == project.id,
            images.c.deleted_at.is_not(None),
            images.c.original_key.like(f"projects/{folder}/.trash/%"),
        )
        .order_by(images.c.deleted_at.desc())
    )
    with library.engine.connect() as conn:
        rows = list(conn.execute(query))
        lacking = {r.photo_id for r in rows if r.thumbnail_key is None and r.photo_id is not None}
        of_photo = dict(
            conn.execute(
                sa.select(photo_files.c.photo_id, derivatives.c.storage_key)
                .join(derivatives, derivatives.c.image_id == photo_files.c.image_id)
                .where(photo_files.c.photo_id.in_(lacking), derivatives.c.name == thumbnail)
            ).all()
        )
    ttl = library.settings.url_expiry_seconds
    seen: set[str] = set()
    found = []
    for row in rows:
        if row.original_filename in seen or not library.blobs.exists(row.original_key):
            continue
        seen.add(row.original_filename)
        thumbnail_key = row.thumbnail_key or of_photo.get(row.photo_id)
        found.append(
            {
                "filename": row.original_filename,
                "sizeBytes": row.size_bytes,
                "trashedAt": row.deleted_at.isoformat() if row.deleted_at else None,
                "thumbnailUrl": library.blobs.url(thumbnail_key, ttl) if thumbnail_key else None,
            }
        )
    return found


def restore_from_trash(library: Library, folder: str, filenames: list[str]) -> Restored:
    """Bring trashed files back under their names while they are still in the trash,
    marked to be kept, with the sidecars that went with them; a rejected photo is no
    longer rejected (else the next commit would trash it again); a restored JPG gets its
    derivatives again."""
    project = get_project(library, folder)
    restored: list[str] = []
    refused: dict[str, str] = {}
    for name in filenames:
        with library.engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    images.c.id, images.c.original_key, photo_files.c.role, photo_files.c.photo_id
                )
                .join(photo_files, photo_files.c.image_id == images.c.id)
                .where(
                    images.c.project_id == project.id,
                    images.c.original_filename == name,
                    images.c.deleted_at.is_not(None),
                    images.c.original_key.like(f"projects/{folder}/.trash/%"),
                )
                .order_by(images.c.deleted_at.desc())
            ).first()
        if row is None or not library.blobs.exists(row.original_key):
            refused[name] = "not in the trash"
            continue
        try:
            edits.restore_image(library, row.id, f"projects/{folder}/{name}")
        except Conflict as error:
            refused[name] = str(error)
            continue
        with library.engine.begin() as conn:  # brought back: meant to be kept
            conn.execute(
                photos.update()
                .where(photos.c.id == row.photo_id)
                .values(
                    updated_at=db_now(),
                    flag=sa.case((photos.c.flag == REJECT, UNFLAGGED), else_=photos.c.flag),
                    **{f"keep_{row.role}": True},
                )
            )
            names = list(
                conn.execute(
                    sa.select(images.c.original_filename)
                    .join(photo_files, photo_files.c.image_id == images.c.id)
                    .where(photo_files.c.photo_id == row.photo_id)
                ).scalars()
            )
        sidecars.bring_back(library, folder, row.photo_id, [name], names)
        with library.engine.connect() as conn:  # its sidecars say at once it is kept now
            photo = conn.execute(sa.select(photos).where(photos.c.id == row.photo_id)).one()
        live = [f.original_filename for f in _live_files(library, row.photo_id)]
        sidecars.write_back(library, project, photo, live, Handoff.of(project.options))
        if row.role == JPG:
            _regenerate(library, row.id)
        restored.append(name)
    return Restored(restored, refused)


def _live_files(library: Library, photo_id: int) -> list[sa.Row[Any]]:
    with library.engine.connect() as conn:
        return list(conn.execute(live_files_query().where(photo_files.c.photo_id == photo_id)))


def _regenerate(library: Library, image_id: str) -> bool:
    """Queue the preview (then the thumbnails) of the file that now shows its photo;
    False when it is not stored yet (its upload_postprocess item will see to it)."""
    row = image_records.get_image_row(library, image_id)
    if row.original_key is None:
        return False
    with library.engine.begin() as conn:
        processing.enqueue_preview(
            library, conn, row.id, row.original_key, image_records.DERIVATIVE_PRIORITY
        )
    return True
