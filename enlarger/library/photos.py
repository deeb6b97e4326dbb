"""A photo is every file of a project sharing a base name (IMG_0001.JPG + IMG_0001.CR2).
These are the few rules that put a file into its photo, shared by every way a file
arrives: a project upload or a dropped file joins at once, an upload of the photo API or
`enlarger import` when its original is stored and so has its name in the folder.

A name is not enough: two cameras count files the same way, so camera B's IMG_5002.DNG
must not join camera A's IMG_5002.JPG. A file joins a photo only when it is the same
capture as the files there (`same_capture`); otherwise it takes the next free name
(`IMG_5002-2.DNG`), which is where camera B's own JPG went too."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from enlarger.db.schema import images, photo_files, photo_sidecars, photos
from enlarger.db.types import db_now
from enlarger.media.sniff import RAW_FORMATS
from enlarger.media.xmp import UNFLAGGED

JPG, RAW = "jpg", "raw"
FAILED_STATUS = "FAILED"  # service.ImageStatus.FAILED (service imports this module)
DECISION_FIELDS = ("flag", "rating", "label")  # a photo's culling decisions (media/xmp.py)


def basename_of(filename: str) -> str:
    """The name without its last extension: what a JPG and its RAW share."""
    stem, dot, _ = filename.rpartition(".")
    return stem if dot and stem else filename


def numbered_names(name: str, limit: int = 1000) -> Iterator[str]:
    """`name`, then `stem-2.ext`, `stem-3.ext`… (the extension kept)."""
    yield name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    for n in range(2, limit):
        yield f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}"


@dataclass(frozen=True)
class Capture:
    """What tells one press of the shutter from another, as a file's metadata says it:
    when (to the fraction of a second the camera records) and with which camera."""

    taken_at: str | None = None
    make: str | None = None
    model: str | None = None
    serial: str | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Capture:
        """From an image row (or the dict `service.examine` makes)."""
        exif = row.get("exif") or {}
        return cls(
            row.get("taken_at"),
            row.get("camera_make"),
            row.get("camera_model"),
            exif.get("camera_serial"),
        )


def same_capture(a: Capture, b: Capture) -> bool:
    """Whether two files can be one capture (a RAW and the JPG the camera made with it):
    nothing they both record differs: the camera's serial number, its make and model,
    the capture time (to the fraction of a second when both give one). Files that record
    none of it (an export with its metadata stripped) go by their name alone."""
    if a.serial and b.serial and a.serial.strip().casefold() != b.serial.strip().casefold():
        return False
    if a.model and b.model and _camera(a) != _camera(b):
        return False
    if a.taken_at and b.taken_at:
        return _moment(a.taken_at, b.taken_at) == _moment(b.taken_at, a.taken_at)
    return True


def _camera(capture: Capture) -> tuple[str, str]:
    return ((capture.make or "").strip().casefold(), (capture.model or "").strip().casefold())


def _moment(stamp: str, other: str) -> datetime | str:
    """The local capture time to the precision both stamps have (offsets dropped: one
    camera may write an offset in its RAW and not in its JPG)."""
    try:
        moment = datetime.fromisoformat(stamp).replace(tzinfo=None)
    except ValueError:
        return stamp
    if "." not in other[10:] or "." not in stamp[10:]:
        moment = moment.replace(microsecond=0)
    return moment


def photo_captures(conn: sa.Connection, project_id: int, basename: str) -> list[Capture]:
    """The captures of the files (kept or trashed) of the project's photo of this name."""
    rows = conn.execute(
        sa.select(images.c.taken_at, images.c.camera_make, images.c.camera_model, images.c.exif)
        .join(photo_files, photo_files.c.image_id == images.c.id)
        .join(photos, photos.c.id == photo_files.c.photo_id)
        .where(photos.c.project_id == project_id, photos.c.basename == basename)
    )
    return [Capture.of(row._mapping) for row in rows]


def fits_photo(conn: sa.Connection, project_id: int, filename: str, capture: Capture) -> bool:
    """Whether a file of this name and capture may join the photo its name gives: every
    file there is the same capture (or there is no such photo yet)."""
    found = photo_captures(conn, project_id, basename_of(filename))
    return all(same_capture(capture, other) for other in found)


def sidecar_basename(name: str, has_photo: Callable[[str], bool]) -> str:
    """The photo an `.xmp` belongs to: `IMG_1.xmp` (Lightroom's naming) is IMG_1's, and
    so is `IMG_1.CR2.xmp` (darktable's and digiKam's) when there is a photo IMG_1 and
    none called IMG_1.CR2."""
    stem = basename_of(name)
    inner = basename_of(stem)
    if inner != stem and not has_photo(stem) and has_photo(inner):
        return inner
    return stem


def has_photo(conn: sa.Connection, project_id: int) -> Callable[[str], bool]:
    """Whether the project has a photo of a base name (for `sidecar_basename`)."""

    def check(basename: str) -> bool:
        query = sa.select(photos.c.id).where(
            photos.c.project_id == project_id, photos.c.basename == basename
        )
        return conn.execute(query).first() is not None

    return check


def role_of(image_format: str | None) -> str:
    return RAW if image_format in RAW_FORMATS else JPG


def photo_for(conn: sa.Connection, project_id: int, basename: str) -> int:
    """The id of the project's photo of this base name, made (keeping nothing yet) if new."""
    found = conn.execute(
        sa.select(photos.c.id).where(
            photos.c.project_id == project_id, photos.c.basename == basename
        )
    ).scalar()
    if found is not None:
        return int(found)
    now = db_now()
    return int(
        conn.execute(
            photos.insert()
            .values(
                project_id=project_id,
                basename=basename,
                keep_jpg=False,
                keep_raw=False,
                created_at=now,
                updated_at=now,
            )
            .returning(photos.c.id)
        ).scalar_one()
    )


def join_photo(
    conn: sa.Connection,
    project_id: int,
    image_id: str,
    filename: str,
    image_format: str | None,
    metadata: dict[str, Any] | None = None,
) -> str:
    """Link the image to the photo of its file name's base name, which now keeps it (as
    a file the user brought in is meant to be kept); returns its role. A photo nobody has
    decided on yet takes the decisions the file's own XMP records (`metadata`)."""
    role = role_of(image_format)
    photo_id = photo_for(conn, project_id, basename_of(filename))
    values: dict[str, Any] = {"updated_at": db_now(), f"keep_{role}": True}
    if _only_in_the_trash(conn, photo_id):  # a new file of a photo thrown away: undecided
        values.update(flag=UNFLAGGED, rating=0, label=None)
    conn.execute(photo_files.insert().values(image_id=image_id, photo_id=photo_id, role=role))
    conn.execute(photos.update().where(photos.c.id == photo_id).values(**values))
    recorded = {k: v for k, v in (metadata or {}).items() if k in DECISION_FIELDS}
    if recorded:
        conn.execute(photos.update().where(photos.c.id == photo_id, undecided()).values(**recorded))
    return role


def _only_in_the_trash(conn: sa.Connection, photo_id: int) -> bool:
    """The photo has files, and every one is in the trash (rejected and committed, say):
    the decisions it keeps were made on those, not on a file joining it now."""
    deleted = (
        sa.select(images.c.deleted_at)
        .join(photo_files, photo_files.c.image_id == images.c.id)
        .where(photo_files.c.photo_id == photo_id)
    )
    found = list(conn.execute(deleted).scalars())
    return bool(found) and all(at is not None for at in found)


def undecided() -> sa.ColumnElement[bool]:
    """A photo with no flag, no stars and no label."""
    return sa.and_(photos.c.flag == UNFLAGGED, photos.c.rating == 0, photos.c.label.is_(None))


def in_photo(conn: sa.Connection, image_id: str) -> bool:
    found = sa.select(photo_files.c.image_id).where(photo_files.c.image_id == image_id)
    return conn.execute(found).first() is not None


def leave_photo(conn: sa.Connection, image_id: str) -> None:
    """Unlink the image from its photo (it moves to another project); a photo left with
    no file and no sidecar is gone with it."""
    photo_id = conn.execute(
        sa.select(photo_files.c.photo_id).where(photo_files.c.image_id == image_id)
    ).scalar()
    if photo_id is None:
        return
    conn.execute(photo_files.delete().where(photo_files.c.image_id == image_id))
    files_left = sa.select(photo_files.c.image_id).where(photo_files.c.photo_id == photo_id)
    if conn.execute(files_left).first() is None:
        xmps = sa.select(photo_sidecars.c.key).where(photo_sidecars.c.photo_id == photo_id)
        if conn.execute(xmps).first() is None:
            conn.execute(photos.delete().where(photos.c.id == photo_id))


def live_files_query() -> sa.Select[Any]:
    """Live files with their photo and role."""
    return (
        sa.select(
            photo_files.c.photo_id,
            photo_files.c.role,
            images.c.id,
            images.c.original_filename,
            images.c.status,
            images.c.size_bytes,
            images.c.error_code,
            images.c.taken_at,
            images.c.format,
        )
        .join(images, images.c.id == photo_files.c.image_id)
        .where(images.c.deleted_at.is_(None))
    )


def shown_file(files: list[sa.Row[Any]]) -> sa.Row[Any] | None:
    """The file a photo is shown by: its JPG, else its RAW (failed files never); of two
    (a JPG and a HEIC of one name), the first by name, whatever order `files` came in, so
    the list and the derivative jobs agree."""
    usable = sorted(
        (f for f in files if f.status != FAILED_STATUS), key=lambda f: f.original_filename or ""
    )
    jpgs = [f for f in usable if f.role == JPG]
    raws = [f for f in usable if f.role == RAW]
    return (jpgs or raws or [None])[0]
