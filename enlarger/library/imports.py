"""Bulk import from the local file system: find the files, ingest each one (copied, never
moved) with the `.xmp` sidecars beside it, and read back where each stands. The CLI's
`enlarger import` drives these.

A card imported again changes nothing: a file whose bytes the project holds, or has in
its trash (a rejected photo's), is skipped, and so is a sidecar beside a held file,
unless it was changed after the photo's decisions last were (in Lightroom, say, on the
card): then it brings them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from enlarger.db.schema import images, photo_files, photos
from enlarger.library import image_records, ingest, lookups, sidecars
from enlarger.library.image_records import ImageStatus
from enlarger.library.library import Library
from enlarger.library.photos import basename_of, has_photo, sidecar_basename

SETTLED = (ImageStatus.STORED.value, ImageStatus.FAILED.value)


JUNK = {"thumbs.db", "ehthumbs.db", "desktop.ini"}  # what Windows leaves in photo folders


def discover(paths: Iterable[Path]) -> list[Path]:
    """Every file named, and every file under each folder named (recursively, skipping
    hidden files and folders such as .DS_Store or .trash, and Windows' Thumbs.db and
    desktop.ini). Missing paths raise."""
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(
                    Path(root) / f
                    for f in sorted(files)
                    if not f.startswith(".") and f.casefold() not in JUNK
                )
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return found


@dataclass(frozen=True)
class Planned:
    """An image to import with the sidecars beside it that describe it."""

    path: Path
    sidecars: list[Path] = field(default_factory=list)


def plan(files: list[Path]) -> tuple[list[Planned], list[Path]]:
    """The images, each with its sidecars from the same folder (`IMG_1.CR2.xmp` goes with
    IMG_1.CR2, `IMG_1.xmp` with every IMG_1.*), and the sidecars that describe no image
    of the import."""
    planned = [Planned(f) for f in files if not sidecars.is_sidecar(f.name)]
    in_folder: dict[Path, list[Planned]] = {}
    for item in planned:
        in_folder.setdefault(item.path.parent, []).append(item)
    alone: list[Path] = []
    for xmp in (f for f in files if sidecars.is_sidecar(f.name)):
        neighbours = in_folder.get(xmp.parent, [])
        found = sidecars.described(xmp.name, [n.path.name for n in neighbours])
        if found is None:
            alone.append(xmp)
            continue
        exact = xmp.name.casefold() == (found + sidecars.SIDECAR_SUFFIX).casefold()
        for item in neighbours:
            name = item.path.name
            if name == found or (not exact and basename_of(name) == basename_of(found)):
                item.sidecars.append(xmp)
    return planned, alone


@dataclass(frozen=True)
class Imported:
    image_id: str
    skipped: str | None  # "held": the project has these bytes; "trashed": in its trash
    ignored: list[Path] = field(default_factory=list)  # sidecars older than the photo's say


HELD, TRASHED = "held", "trashed"


def import_file(library: Library, item: Planned, project: str | None) -> Imported:
    """Ingest one image with its sidecars, unless the project holds its bytes (then its
    sidecars go to the photo that has them) or has them in its trash."""
    collection = project or image_records.DEFAULT_COLLECTION
    received = ingest.copy_to_temp(library, item.path)
    twin = ingest.trashed_twin(library, collection, received.checksum)
    if twin is not None:
        received.path.unlink(missing_ok=True)
        return Imported(twin.id, TRASHED, list(item.sidecars))
    given = [(x.name, x.read_bytes()) for x in item.sidecars]
    ingested = ingest.ingest(
        library, received, filename=item.path.name, collection=project, sidecars=given
    )
    if ingested.created:
        return Imported(ingested.image_id, None)
    held = image_records.get_image_row(library, ingested.image_id)
    decided_at = _decided_at(library, held.id)
    if held.original_key is None or decided_at is None:
        return Imported(ingested.image_id, HELD, list(item.sidecars))
    project_row = lookups.project_row(library, held.project_id)
    final = held.original_filename or ""
    ignored = []
    for xmp, (name, data) in zip(item.sidecars, given, strict=True):
        if xmp.stat().st_mtime <= decided_at.timestamp():
            ignored.append(xmp)  # what the card says is older than what the photo says now
            continue
        renamed = sidecars.renamed(name, item.path.name, final)
        data = sidecars.following(data, item.path.name, final)
        sidecars.store(library, project_row, renamed, data, basename_of(final))
    return Imported(ingested.image_id, HELD, ignored)


def _decided_at(library: Library, image_id: str) -> datetime | None:
    """When the photo of an image last changed (its decisions among it)."""
    query = (
        sa.select(photos.c.updated_at)
        .join(photo_files, photo_files.c.photo_id == photos.c.id)
        .where(photo_files.c.image_id == image_id)
    )
    with library.engine.connect() as conn:
        return conn.execute(query).scalar()


class NoPhoto(LookupError):
    """A sidecar of no photo of the project and no image of the import."""


def import_sidecar(library: Library, path: Path, project: str | None) -> tuple[str, str]:
    """A sidecar describing no image of the import joins the project's photo of its name
    (decisions made elsewhere, brought back); returns that photo's base name and the
    sidecar's name in the folder."""
    collection = project or image_records.DEFAULT_COLLECTION
    with library.engine.connect() as conn:
        project_id = image_records.find_project_id(conn, collection)
        basename = (
            sidecar_basename(path.name, has_photo(conn, project_id))
            if project_id is not None
            else None
        )
        if project_id is None or not has_photo(conn, project_id)(basename or ""):
            raise NoPhoto(f"no photo of {collection!r} is called {basename!r}")
    return sidecars.store(
        library, lookups.project_row(library, project_id), path.name, path.read_bytes()
    )


@dataclass(frozen=True)
class Standing:
    status: ImageStatus
    error_code: str | None
    error_message: str | None
    stored_as: str | None  # the name in the project's folder, once stored


def standings(library: Library, image_ids: Iterable[str]) -> dict[str, Standing]:
    """Each image's status and error, read in chunks the databases accept."""
    ids = list(dict.fromkeys(image_ids))
    found: dict[str, Standing] = {}
    with library.engine.connect() as conn:
        for start in range(0, len(ids), 500):
            query = sa.select(
                images.c.id,
                images.c.status,
                images.c.error_code,
                images.c.error_message,
                images.c.original_key,
            ).where(images.c.id.in_(ids[start : start + 500]))
            for row in conn.execute(query):
                name = row.original_key.rsplit("/", 1)[-1] if row.original_key else None
                found[row.id] = Standing(
                    ImageStatus(row.status), row.error_code, row.error_message, name
                )
    return found


def derivative_locations(library: Library, image_id: str) -> dict[str, str]:
    """Where each derivative is: a file path on local storage, an s3:// URI on S3."""
    made = lookups.derivatives_of(library, [image_id])[image_id]
    return {
        r.name: library.blobs.location(made[r.name].storage_key)
        for r in library.recipes.all
        if r.name in made
    }


def report(
    library: Library, path: Path, image_id: str, standing: Standing, with_derivatives: bool
) -> dict[str, Any]:
    """One line of `enlarger import --json` (the format DESIGN.md fixes)."""
    derivatives = {}
    if with_derivatives and standing.status is ImageStatus.STORED:
        derivatives = derivative_locations(library, image_id)
    return {
        "path": str(path),
        "image_id": image_id,
        "status": standing.status.value,
        "error_code": standing.error_code,
        "error_message": standing.error_message,
        "derivatives": derivatives,
        "stored_as": standing.stored_as,
    }


def sidecar_stored_as(sidecar: Path, image: Path, standing: Standing) -> str | None:
    """The name in the project's folder of a sidecar imported with `image`: it follows
    the name the image took there (None until the image is stored)."""
    if standing.stored_as is None:
        return None
    return sidecars.renamed(sidecar.name, image.name, standing.stored_as)
