"""One library: every stored image of a project is a photo of it. Images of the photo API
and of `enlarger import` used to stay out of their project's photos; each now takes the
name its original has in the folder and joins the photo of that base name (made, or
found, and marked to keep the file), as an upload does from now on at offload.

It is written against the tables as they are at this revision, not the code's
helpers, so a later change to them cannot change what it does. The downgrade keeps the
links: the older code reads them as project photos, which they are.

Revision ID: 0009_one_library
Revises: 0008_schedule_names
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from enlarger.db.types import db_now

# the RAW formats as they were at this revision (media.sniff may grow; a migration may not)
RAW_FORMATS = frozenset({"dng", "cr2", "cr3", "nef", "arw", "raf", "orf", "rw2", "raw"})

revision = "0009_one_library"
down_revision = "0008_schedule_names"
branch_labels = None
depends_on = None

projects = sa.table("projects", sa.column("id"), sa.column("folder"))
images = sa.table(
    "images",
    sa.column("id"),
    sa.column("project_id"),
    sa.column("original_filename"),
    sa.column("original_key"),
    sa.column("format"),
    sa.column("deleted_at"),
)
photos = sa.table(
    "photos",
    sa.column("id"),
    sa.column("project_id"),
    sa.column("basename"),
    sa.column("keep_jpg"),
    sa.column("keep_raw"),
    sa.column("created_at"),
    sa.column("updated_at"),
)
photo_files = sa.table(
    "photo_files", sa.column("image_id"), sa.column("photo_id"), sa.column("role")
)


def upgrade() -> None:
    conn = op.get_bind()
    unlinked = (
        sa.select(images.c.id, images.c.project_id, images.c.original_key, images.c.format)
        .add_columns(projects.c.folder)
        .join(projects, projects.c.id == images.c.project_id)
        .where(
            images.c.deleted_at.is_(None),
            images.c.original_key.is_not(None),
            ~sa.exists().where(photo_files.c.image_id == images.c.id),
        )
        .order_by(images.c.original_key)
    )
    for image in list(conn.execute(unlinked)):
        folder_prefix = f"projects/{image.folder}/"
        name = image.original_key.removeprefix(folder_prefix)
        if name == image.original_key or "/" in name:
            continue  # not a file of its project's folder
        role = "raw" if image.format in RAW_FORMATS else "jpg"
        stem, dot, _ = name.rpartition(".")
        photo_id = _photo(conn, image.project_id, stem if dot and stem else name)
        conn.execute(photo_files.insert().values(image_id=image.id, photo_id=photo_id, role=role))
        conn.execute(
            photos.update()
            .where(photos.c.id == photo_id)
            .values(updated_at=db_now(), **{f"keep_{role}": True})
        )
        conn.execute(images.update().where(images.c.id == image.id).values(original_filename=name))


def _photo(conn: sa.Connection, project_id: int, basename: str) -> int:
    found = conn.execute(
        sa.select(photos.c.id).where(
            photos.c.project_id == project_id, photos.c.basename == basename
        )
    ).scalar()
    if found is not None:
        return int(found)
    now = db_now()
    made = photos.insert().values(
        project_id=project_id,
        basename=basename,
        keep_jpg=False,
        keep_raw=False,
        created_at=now,
        updated_at=now,
    )
    return int(conn.execute(made.returning(photos.c.id)).scalar_one())


def downgrade() -> None:
    pass
