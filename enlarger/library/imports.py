"""Bulk import from the local file system: find the files, ingest each one (copied, never
moved), and read back where each stands. The CLI's `enlarger import` drives these."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from enlarger.db.schema import images
from enlarger.library import service
from enlarger.library.runtime import Library
from enlarger.library.service import ImageStatus

SETTLED = (ImageStatus.STORED.value, ImageStatus.FAILED.value)


def discover(paths: Iterable[Path]) -> list[Path]:
    """Every file named, and every file under each folder named (recursively, skipping
    hidden files and folders such as .DS_Store or .trash). Missing paths raise."""
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(Path(root) / f for f in sorted(files) if not f.startswith("."))
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return found


def import_file(library: Library, path: Path, project: str | None) -> service.Ingested:
    return service.ingest(
        library, service.copy_to_temp(library, path), filename=path.name, collection=project
    )


@dataclass(frozen=True)
class Standing:
    status: ImageStatus
    error_code: str | None


def standings(library: Library, image_ids: Iterable[str]) -> dict[str, Standing]:
    """Each image's status and error code, read in chunks the databases accept."""
    ids = list(dict.fromkeys(image_ids))
    found: dict[str, Standing] = {}
    with library.engine.connect() as conn:
        for start in range(0, len(ids), 500):
            query = sa.select(images.c.id, images.c.status, images.c.error_code).where(
                images.c.id.in_(ids[start : start + 500])
            )
            for row in conn.execute(query):
                found[row.id] = Standing(ImageStatus(row.status), row.error_code)
    return found


def derivative_locations(library: Library, image_id: str) -> dict[str, str]:
    """Where each derivative is: a file path on local storage, an s3:// URI on S3."""
    made = service.derivatives_of(library, [image_id])[image_id]
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
        "derivatives": derivatives,
    }
