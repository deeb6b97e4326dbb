"""A project's photos as the API and the dashboard read them: each photo's files, keep
flags, decisions, culling assistance, the state of its thumbnails and preview, and their
URLs, in base name order, whole or a page at a time.

Built for a wedding's worth of photos (5,000 in under 200 ms): bursts are found over the
whole project only when it has changed since they were last found, and kept on the
photos; derivatives are read by name, without the rows' other columns; blob URLs keep
their expiry for a while, so the same thumbnail has the same URL and a browser's cache
serves it again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from enlarger.db.schema import derivatives, images, photo_files, photos, projects
from enlarger.errors import NotFound
from enlarger.library import culling, lookups, sidecars
from enlarger.library.image_records import ImageStatus
from enlarger.library.library import Library
from enlarger.library.photos import JPG, RAW, basename_of, live_files_query, shown_file

ASSESSED = ("sharpness", "highlights", "shadows", "exposure", "headroom")  # media.assess's
PENDING, PROCESSING, DONE, FAILED = "pending", "processing", "done", "failed"
NO_FILE = "none"  # every file of the photo is in the trash: nothing to make anything from
CHUNK = 500  # ids per IN (…) list


@dataclass(frozen=True)
class PhotoPage:
    photos: list[dict[str, Any]]
    total: int  # the project's photos in all
    next_after: str | None  # the base name to ask for the next page after, if any


def photo_page(
    library: Library,
    project: sa.Row[Any],
    *,
    basenames: Iterable[str] | None = None,
    after: str | None = None,
    limit: int | None = None,
    fresh_bursts: bool = True,
) -> PhotoPage:
    """The project's photos (or those of `basenames`), from the one after `after`, at
    most `limit` of them; their bursts found again first if the project changed (unless
    `fresh_bursts` is off: a job's item events say nothing of bursts)."""
    if fresh_bursts:
        refresh_bursts(library, project)
    query = sa.select(photos).where(photos.c.project_id == project.id)
    if basenames is not None:
        query = query.where(photos.c.basename.in_(list(basenames)))
    if after is not None:
        query = query.where(photos.c.basename > after)
    query = query.order_by(photos.c.basename)
    if limit is not None:
        query = query.limit(limit + 1)
    count = sa.select(sa.func.count()).where(photos.c.project_id == project.id)
    with library.engine.connect() as conn:
        rows = list(conn.execute(query))
        total = int(conn.execute(count).scalar_one())
        more = limit is not None and len(rows) > limit
        rows = rows[:limit] if limit is not None else rows
        whole = basenames is None and after is None and not more
        files_of = _files_of(conn, project, [r.id for r in rows], whole)
        sources = {r.id: shown_file(files_of.get(r.id, [])) for r in rows}
        made = _derivatives_of(library, conn, [s.id for s in sources.values() if s is not None])
        xmps = sidecars.live_names(conn, [r.id for r in rows])
    shown = [
        _photo(library, r, files_of.get(r.id, []), sources[r.id], made, xmps[r.id]) for r in rows
    ]
    return PhotoPage(shown, total, rows[-1].basename if more else None)


def photos_of(library: Library, project: sa.Row[Any]) -> list[dict[str, Any]]:
    return photo_page(library, project).photos


def photo_of(
    library: Library, project: sa.Row[Any], basename: str, fresh_bursts: bool = True
) -> dict[str, Any]:
    found = photo_page(library, project, basenames=[basename], fresh_bursts=fresh_bursts).photos
    if not found:
        raise NotFound(f"no photo {basename!r} in project {project.folder!r}")
    return found[0]


def item_event_data(library: Library, project: sa.Row[Any], filename: str) -> dict[str, Any]:
    """What an item event says about a file's photo (reference 003's SSE `item` shape)."""
    photo = photo_of(library, project, basename_of(filename), fresh_bursts=False)
    return {
        "type": "item",
        "project_folder": project.folder,
        "filename": filename,
        "thumbnail_status": photo["thumbnail_status"],
        "preview_status": photo["preview_status"],
        "updated_at": photo["updated_at"],
    }


def _files_of(
    conn: sa.Connection, project: sa.Row[Any], photo_ids: list[int], whole: bool
) -> dict[int, list[sa.Row[Any]]]:
    """Each photo's live files, by name, with the parts of their assessments the list
    shows (read out of the JSON by the database: decoding thousands of whole assessments
    would take longer than the rest of the list)."""
    assessment = images.c.assessment
    files = live_files_query().add_columns(
        *(assessment[name].as_float().label(name) for name in ASSESSED),
        assessment["phash"].as_string().label("phash"),
        images.c.camera_make,
        images.c.camera_model,
        images.c.exif["camera_serial"].as_string().label("camera_serial"),
    )
    queries = (
        [files.where(images.c.project_id == project.id)]
        if whole
        else [
            files.where(photo_files.c.photo_id.in_(photo_ids[n : n + CHUNK]))
            for n in range(0, len(photo_ids), CHUNK)
        ]
    )
    found: dict[int, list[sa.Row[Any]]] = {}
    for query in queries:
        for row in conn.execute(query.order_by(images.c.original_filename)):
            found.setdefault(row.photo_id, []).append(row)
    return found


@dataclass(frozen=True)
class _Made:
    thumbnail_key: str | None  # the thumbnail a photo is shown by (the nearest 256 px)
    preview_key: str | None


def _derivatives_of(
    library: Library, conn: sa.Connection, image_ids: list[str]
) -> dict[str, _Made]:
    """The keys of the thumbnail a photo is shown by and of its preview, by image."""
    thumbnail = lookups.default_thumbnail_recipe(library).name
    preview = library.recipes.preview.name
    keys: dict[str, dict[str, str]] = {}
    for n in range(0, len(image_ids), CHUNK):
        query = sa.select(derivatives.c.image_id, derivatives.c.name, derivatives.c.storage_key)
        query = query.where(
            derivatives.c.image_id.in_(image_ids[n : n + CHUNK]),
            derivatives.c.name.in_([thumbnail, preview]),
        )
        for image_id, name, key in conn.execute(query):
            keys.setdefault(image_id, {})[name] = key
    return {i: _Made(k.get(thumbnail), k.get(preview)) for i, k in keys.items()}


def _photo(
    library: Library,
    photo: sa.Row[Any],
    files: list[sa.Row[Any]],
    source: sa.Row[Any] | None,
    made: dict[str, _Made],
    xmps: list[str],
) -> dict[str, Any]:
    ttl = library.settings.url_expiry_seconds
    have = made.get(source.id) if source is not None else None
    thumbnail_key = have.thumbnail_key if have else None
    preview_key = have.preview_key if have else None
    stored = source is not None and source.status == ImageStatus.STORED.value
    return {
        "basename": photo.basename,
        "files": [
            {
                "filename": f.original_filename,
                "role": f.role,
                "imageId": f.id,
                "status": f.status,
                "sizeBytes": f.size_bytes,
                "errorCode": f.error_code,
            }
            for f in files
        ],
        "sidecar": _main_sidecar(photo.basename, xmps),
        "sidecars": xmps,
        "jpg_available": any(f.role == JPG for f in files),
        "raw_available": any(f.role == RAW for f in files),
        "keep_jpg": photo.keep_jpg,
        "keep_raw": photo.keep_raw,
        "flag": photo.flag,
        "rating": photo.rating,
        "label": photo.label,
        "takenAt": source.taken_at if source is not None else None,
        "assist": culling.assist(library.settings, _assessment(source), photo),
        "source": source.original_filename if source is not None else None,
        # STORED: every recipe was made (a file its photo is not shown by has none)
        "thumbnail_status": _status(source, stored and thumbnail_key is not None, files),
        "preview_status": _status(source, stored and preview_key is not None, files),
        "thumbnailUrl": library.blobs.url(thumbnail_key, ttl) if thumbnail_key else None,
        "previewUrl": library.blobs.url(preview_key, ttl) if preview_key else None,
        "updated_at": photo.updated_at.isoformat() if photo.updated_at else None,
    }


def _assessment(file: sa.Row[Any] | None) -> dict[str, Any] | None:
    """The parts of a file's assessment the list reads; None before it is measured."""
    if file is None or file.phash is None:
        return None
    return {name: getattr(file, name) for name in (*ASSESSED, "phash")}


def _camera(file: sa.Row[Any]) -> str:
    """Which camera took it: its serial number, else its make and model."""
    if file.camera_serial:
        return f"serial:{file.camera_serial}"
    return f"{(file.camera_make or '').strip()} {(file.camera_model or '').strip()}".casefold()


def _main_sidecar(basename: str, xmps: list[str]) -> str | None:
    """The sidecar a photo is known by: `IMG_1.xmp` when it has it, else its first."""
    main = basename + sidecars.SIDECAR_SUFFIX
    return main if main in xmps else (xmps or [None])[0]


def _status(source: sa.Row[Any] | None, made: bool, files: list[sa.Row[Any]]) -> str:
    if made:
        return DONE
    if source is None:
        return FAILED if files else NO_FILE
    return PROCESSING if source.status == ImageStatus.PROCESSING.value else PENDING


# ---- bursts ----------------------------------------------------------------------------------


def refresh_bursts(library: Library, project: sa.Row[Any]) -> None:
    """Find the project's bursts again when its photos or files changed since they were
    last found (a new photo, an assessment recorded, a file trashed), and keep them on
    the photos. Two readers at once may both do it; they write the same."""
    signature = _signature(library, project)
    if signature == project.bursts_signature:
        return
    with library.engine.connect() as conn:
        rows = list(
            conn.execute(
                sa.select(
                    photos.c.id,
                    photos.c.basename,
                    photos.c.burst,
                    photos.c.burst_size,
                    photos.c.best_in_burst,
                    photos.c.burst_reasons,
                ).where(photos.c.project_id == project.id)
            )
        )
        files_of = _files_of(conn, project, [r.id for r in rows], whole=True)
    shown_by = {r.basename: shown_file(files_of.get(r.id, [])) for r in rows}
    measured = {
        name: (file.taken_at, _assessment(file), _camera(file))
        if file is not None
        else (None, None, "")
        for name, file in shown_by.items()
    }
    places = culling.bursts_of(library.settings, measured)
    changed = []
    for row in rows:
        place = places.get(row.basename)
        wanted = (
            (place.burst, place.size, place.best, place.reasons)
            if place
            else (None, None, False, None)
        )
        if (row.burst, row.burst_size, row.best_in_burst, row.burst_reasons) != wanted:
            changed.append(
                {"photo": row.id, "b": wanted[0], "n": wanted[1], "best": wanted[2], "r": wanted[3]}
            )
    with library.engine.begin() as conn:
        if changed:
            conn.execute(
                photos.update()
                .where(photos.c.id == sa.bindparam("photo"))
                .values(
                    burst=sa.bindparam("b"),
                    burst_size=sa.bindparam("n"),
                    best_in_burst=sa.bindparam("best"),
                    burst_reasons=sa.bindparam("r"),
                ),
                changed,
            )
        conn.execute(
            projects.update().where(projects.c.id == project.id).values(bursts_signature=signature)
        )


def _signature(library: Library, project: sa.Row[Any]) -> str:
    """What the bursts depend on, in a few numbers: how many photos and files the project
    has, when any of its files last changed, and the burst gap setting."""
    of_project = images.c.project_id == project.id
    query = sa.select(
        sa.select(sa.func.count()).where(photos.c.project_id == project.id).scalar_subquery(),
        sa.select(sa.func.count()).where(of_project).scalar_subquery(),
        sa.select(sa.func.max(images.c.updated_at)).where(of_project).scalar_subquery(),
    )
    with library.engine.connect() as conn:
        photo_count, file_count, changed_at = conn.execute(query).one()
    stamp = changed_at.timestamp() if changed_at is not None else 0
    return f"{photo_count}:{file_count}:{stamp:.6f}:{library.settings.burst_gap_seconds}"
