"""A photo is every file of a project sharing a base name (IMG_0001.JPG + IMG_0001.CR2).
These are the few rules that put a file into its photo, shared by every way a file
arrives: a project upload or a dropped file joins at once, an upload of the photo API or
`enlarger import` when its original is stored and so has its name in the folder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from enlarger.db.schema import photo_files, photos
from enlarger.db.types import db_now
from enlarger.media.sniff import RAW_FORMATS
from enlarger.media.xmp import UNFLAGGED

JPG, RAW = "jpg", "raw"
DECISION_FIELDS = ("flag", "rating", "label")  # a photo's culling decisions (media/xmp.py)


def basename_of(filename: str) -> str:
    """The name without its last extension: what a JPG and its RAW share."""
    stem, dot, _ = filename.rpartition(".")
    return stem if dot and stem else filename


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
    conn.execute(photo_files.insert().values(image_id=image_id, photo_id=photo_id, role=role))
    values: dict[str, Any] = {"updated_at": db_now(), f"keep_{role}": True}
    conn.execute(photos.update().where(photos.c.id == photo_id).values(**values))
    recorded = {k: v for k, v in (metadata or {}).items() if k in DECISION_FIELDS}
    if recorded:
        conn.execute(photos.update().where(photos.c.id == photo_id, undecided()).values(**recorded))
    return role


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
        conn.execute(photos.delete().where(photos.c.id == photo_id, photos.c.sidecar_key.is_(None)))
