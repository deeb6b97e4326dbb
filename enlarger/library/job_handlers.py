"""The photo library's job handlers: where the queue meets images.

OFFLOAD_ORIGINAL is I/O (a move into storage) and enqueues PREVIEW_GENERATION, which
decodes the original once and makes the 2000 px preview and, from it in memory, the
thumbnails: one record of all of them marks the image STORED. THUMBNAIL_GENERATION
makes thumbnails alone (a backfill after their recipes changed), from the stored
preview. The derivative jobs are CPU work and run in the worker's supervised child
processes. A broken image fails its image at once with the media error's code (no
retries); anything else is retried by the engine.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa

from enlarger import errors
from enlarger.library import (
    full_views,
    image_records,
    ingest,
    listing,
    lookups,
    maintenance,
    processing,
    projects,
    sidecars,
)
from enlarger.library.image_records import JobType
from enlarger.library.library import Library
from enlarger.library.tasks import Maintenance
from enlarger.media import MediaError, Recipe, probe, render
from enlarger.queue import FailedJob, ItemStatus, JobContext, PermanentError, Registry
from enlarger.storage import StorageError, StorageUnavailable

registry = Registry(passing_errors=(StorageUnavailable,))


class WithLibrary(Protocol):
    """What the library's handlers read of the services their worker hands down."""

    @property
    def library(self) -> Library: ...


def _library(ctx: JobContext | FailedJob) -> Library:
    services: WithLibrary | None = ctx.services
    if services is None:
        raise RuntimeError("library jobs need a worker started with the application's services")
    return services.library


STORAGE_ERROR = "STORAGE_ERROR"


def _fail_its_image(failed: FailedJob) -> None:
    """The job of one image failed for good, perhaps where its handler could not say so
    (its process killed for memory, its time limit, a crash, its worker gone): the image
    is FAILED with the job's error, not left INGESTED or PROCESSING for ever."""
    code, message = _reason(failed)
    processing.fail_waiting(_library(failed), [failed.payload["imageId"]], code, message)


def _fail_its_files(failed: FailedJob) -> None:
    """The same for a project job's files (`folder`, `filenames`) still waiting."""
    library = _library(failed)
    image_ids = []
    for name in failed.payload["filenames"]:
        with contextlib.suppress(errors.NotFound):
            image_ids.append(projects.file_row(library, failed.payload["folder"], name).id)
    processing.fail_waiting(library, image_ids, *_reason(failed))


# an address in an error (an S3 client's "Could not connect to the endpoint URL: …"):
# where the storage service lives inside the installation is no user's business
_URL_IN_TEXT = re.compile(r"""["']?\b[a-z][a-z0-9+.-]*://[^\s"']+["']?""", re.IGNORECASE)


def _reason(failed: FailedJob) -> tuple[str, str]:
    """The code and message its image is failed with: the job's, without addresses."""
    code = failed.error_code or "JOB_FAILED"
    said = _URL_IN_TEXT.sub("the storage service", failed.error or "")
    return code, said or f"its {failed.type} job failed"


@registry.handler(
    JobType.OFFLOAD_ORIGINAL, kind="io", max_attempts=5, timeout_s=600, on_failed=_fail_its_image
)
def offload_original(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Storage errors are retried; on the last attempt the image is marked FAILED with
    STORAGE_ERROR, so it never waits as INGESTED for an offload that will not come. An
    outage of the storage service is waited out instead, for the outage budget."""
    library = _library(ctx)
    try:
        key = processing.offload_original(library, payload["imageId"])
        sidecars.adopt(library, payload["imageId"], payload.get("sidecars", []))
    except errors.NotFound:
        return {"skipped": "the image was deleted"}
    except StorageUnavailable:
        raise  # waited out by the engine (see queue.retry), attempts unspent
    except (OSError, StorageError) as error:
        if ctx.attempt < ctx.max_attempts:
            raise
        message = f"the original could not be stored: {type(error).__name__}"
        processing.fail_waiting(library, [payload["imageId"]], STORAGE_ERROR, message)
        raise PermanentError(STORAGE_ERROR, message) from None
    return {"originalPath": key}


@registry.handler(
    JobType.PREVIEW_GENERATION, kind="cpu", max_attempts=3, timeout_s=600, on_failed=_fail_its_image
)
def preview_generation(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """The preview from the original, measured for culling, and the thumbnails and the
    thumbhash from it in memory, unless the payload says `thenThumbnails: false` (a
    backfill of the preview alone)."""
    library = _library(ctx)
    recipes = (
        library.recipes.preview,
        *(library.recipes.thumbnails if payload.get("thenThumbnails", True) else ()),
    )
    return _derive(
        ctx,
        library,
        payload,
        payload["originalPath"],
        recipes,
        keep_thumbhash=len(recipes) > 1,
        assess_on=library.recipes.preview,
    )


@registry.handler(
    JobType.THUMBNAIL_GENERATION,
    kind="cpu",
    max_attempts=3,
    timeout_s=600,
    on_failed=_fail_its_image,
)
def thumbnail_generation(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Thumbnails and the thumbhash, from the preview when there is one large enough,
    else from the original."""
    library = _library(ctx)
    source = payload.get("sourcePath")
    if not (source and _preview_can_feed_thumbnails(library) and library.blobs.exists(source)):
        source = payload["originalPath"]
    return _derive(ctx, library, payload, source, library.recipes.thumbnails, keep_thumbhash=True)


@registry.handler(
    JobType.UPLOAD_POSTPROCESS,
    kind="cpu",
    max_attempts=3,
    timeout_s=3600,
    on_failed=_fail_its_files,
)
def upload_postprocess(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """A project upload, one item per file: each is moved into the project's folder and,
    when its photo is shown by it (its JPG, or a lone RAW), gets its preview and
    thumbnails. A broken file fails its item and its image; the others go on."""
    library = _library(ctx)
    folder, names = payload["folder"], payload["filenames"]
    project = projects.get_project(library, folder)
    failed = 0
    for done, name in enumerate(names, start=1):
        _start_item(ctx, library, project, name)
        try:
            outcome = _postprocess_file(ctx, library, project, name)
        except PermanentError as error:
            failed += 1
            ctx.item(name, ItemStatus.FAILED, error=f"{error.code}: {error}")
        else:
            status = ItemStatus.SKIPPED if outcome is None else ItemStatus.DONE
            ctx.item(name, status, data=outcome)
        ctx.progress(done / len(names))
    return {"files": len(names), "failed": failed}


def _start_item(ctx: JobContext, library: Library, project: sa.Row[Any], name: str) -> None:
    """The item is running; its event says what is being made (reference 003's shape)."""
    data = None
    with contextlib.suppress(errors.NotFound):
        data = listing.item_event_data(library, project, name)
        for field in ("thumbnail_status", "preview_status"):
            if data[field] != listing.DONE:
                data[field] = listing.PROCESSING
    ctx.item(name, ItemStatus.RUNNING, data=data)


def _postprocess_file(
    ctx: JobContext, library: Library, project: sa.Row[Any], name: str
) -> dict[str, Any] | None:
    """The item's event data once its file is done; None when it was deleted meanwhile."""
    try:
        row = projects.file_row(library, project.folder, name)
    except errors.NotFound:
        return None
    key = processing.offload_original(library, row.id, enqueue_derivatives=False)
    if projects.is_derivative_source(library, row.id):
        _render_photo(ctx, library, row.id, key)
    else:
        processing.mark_stored(library, row.id)
    return listing.item_event_data(library, project, name)


def _render_photo(
    ctx: JobContext, library: Library, image_id: str, original_key: str, again: bool = False
) -> None:
    """Preview and thumbnails from one decode, in this job (one item's whole work);
    `again` renders them even when they are made already."""
    payload = {"imageId": image_id, "originalPath": original_key}
    recipes = library.recipes.preview, *library.recipes.thumbnails
    _derive(
        ctx,
        library,
        payload,
        original_key,
        recipes,
        keep_thumbhash=True,
        assess_on=library.recipes.preview,
        again=again,
    )


@registry.handler(JobType.FULL_VIEW, kind="cpu", max_attempts=1, timeout_s=300)
def full_view(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """An original rendered whole for a 100 % view (full_views.py): here, in a CPU child
    under its memory ceiling, never in the API process. A file that cannot be rendered
    fails the job with the media error's code; the viewer is told, the image stays."""
    try:
        key = full_views.render_full_view(_library(ctx), payload["imageId"])
    except errors.NotFound:
        return {"skipped": "the image was deleted"}
    except MediaError as error:
        raise PermanentError(error.code.value, str(error)) from None
    return {"key": key}


@registry.handler(JobType.STAGING_SWEEP, kind="io", max_attempts=1, timeout_s=600)
def staging_sweep(ctx: JobContext, payload: Any) -> dict[str, Any]:
    """Uploads, staged or in the temp folder, that no image waits for (`sweep_staged`)."""
    return {"swept": ingest.sweep_staged(_library(ctx))}


registry.schedule(JobType.STAGING_SWEEP, JobType.STAGING_SWEEP, 3600, priority=10)


@registry.handler(JobType.LIBRARY_SWEEP, kind="io", max_attempts=1, timeout_s=3600)
def library_sweep(ctx: JobContext, payload: Any) -> dict[str, Any]:
    """Daily, over the whole library (`maintenance.sweep_library`)."""
    return dict(maintenance.sweep_library(_library(ctx)))


registry.schedule(JobType.LIBRARY_SWEEP, JobType.LIBRARY_SWEEP, 86400, priority=10)


@registry.handler(JobType.GENERATE_DERIVATIVES, kind="cpu", max_attempts=3, timeout_s=3600)
def generate_derivatives(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Thumbnails and previews for a project's photos (`filenames`, one item each): made
    where any is missing or not of the current recipes, or for all with `force`. A file
    its photo is not shown by (a RAW beside its JPG) is skipped."""
    library = _library(ctx)
    folder, names = payload["folder"], payload["filenames"]
    project = projects.get_project(library, folder)
    force = bool(payload.get("force"))
    current = {(r.name, r.hash) for r in library.recipes.all}
    rendered = failed = 0
    for done, name in enumerate(names, start=1):
        _start_item(ctx, library, project, name)
        try:
            row = projects.file_row(library, folder, name)
        except errors.NotFound:
            ctx.item(name, ItemStatus.SKIPPED, error="no such file in the project")
            continue
        made = lookups.derivatives_of(library, [row.id])[row.id].values()
        have = {(d.name, d.recipe_hash) for d in made}
        shows_photo = row.original_key is not None and projects.is_derivative_source(
            library, row.id
        )
        if not shows_photo or (not force and current <= have):
            ctx.item(name, ItemStatus.SKIPPED, data=listing.item_event_data(library, project, name))
        else:
            try:
                _render_photo(ctx, library, row.id, row.original_key, again=force)
            except PermanentError as error:
                failed += 1
                ctx.item(name, ItemStatus.FAILED, error=f"{error.code}: {error}")
            else:
                rendered += 1
                ctx.item(
                    name, ItemStatus.DONE, data=listing.item_event_data(library, project, name)
                )
        ctx.progress(done / len(names))
    return {"files": len(names), "rendered": rendered, "failed": failed}


def _run_maintenance(task: Maintenance) -> Callable[[JobContext, dict[str, Any]], dict[str, Any]]:
    def handle(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            report = maintenance.run(
                _library(ctx), task, payload["folder"], dry_run=bool(payload.get("dryRun"))
            )
        except errors.NotFound as error:
            raise PermanentError("NOT_FOUND", str(error)) from None
        return report.as_dict()

    handle.__doc__ = (
        f"The project maintenance task {task.value} (see enlarger.library.maintenance)."
    )
    return handle


for _task in Maintenance:
    registry.register(
        _task.value, _run_maintenance(_task), kind="io", max_attempts=3, timeout_s=3600
    )


def _preview_can_feed_thumbnails(library: Library) -> bool:
    """A preview at least as large as every thumbnail loses them nothing."""
    largest = max(r.long_side for r in library.recipes.thumbnails)
    return library.recipes.preview.long_side >= largest


def _derive(
    ctx: JobContext,
    library: Library,
    payload: dict[str, Any],
    source_key: str,
    recipes: tuple[Recipe, ...],
    keep_thumbhash: bool = False,
    assess_on: Recipe | None = None,
    again: bool = False,
) -> dict[str, Any]:
    """Render `recipes` from `source_key`, store them and record them in a transaction
    that commits only while this run holds the job's lease; `assess_on`'s rendition (the
    preview) is measured for culling. Recipes already made (by a run of this job before
    its worker was lost, by a second job a rescue queued) are not made twice, unless
    `again`."""
    image_id = payload["imageId"]

    def fence(conn: sa.Connection) -> None:
        library.queue.store.hold_lease(conn, ctx.job_id, ctx.lease_token)

    try:
        image_records.get_image_row(library, image_id)
    except errors.NotFound:
        return {"skipped": "the image was deleted"}
    made_before = lookups.derivatives_of(library, [image_id])[image_id].values()
    if not (again or payload.get("again")):
        have = {(d.name, d.recipe_hash) for d in made_before}
        missing = tuple(r for r in recipes if (r.name, r.hash) not in have)
        if not missing:
            return {"skipped": "already made"}
        smallest = min(recipes, key=lambda r: r.long_side)
        assess_on = assess_on if assess_on in missing else None
        keep_thumbhash = keep_thumbhash and smallest in missing  # else it stays as it was
        recipes = missing
    try:
        with library.blobs.local_copy(source_key) as path:
            found = probe(path, library.limits)
            rendered = render(path, found, recipes, keep_thumbhash, assess_on)
    except MediaError as error:
        processing.mark_failed(library, image_id, error.code.value, error.message)
        raise PermanentError(error.code.value, error.message) from None
    made = []
    for rendition in rendered.renditions:
        recipe = rendition.recipe
        key = image_records.derivative_key(image_id, recipe)
        library.blobs.put_bytes(key, rendition.data)
        made.append(
            {
                "name": recipe.name,
                "storage_key": key,
                "format": recipe.format,
                "width": rendition.width,
                "height": rendition.height,
                "size_bytes": len(rendition.data),
                "recipe_hash": recipe.hash,
            }
        )
    assessment = rendered.assessment.as_dict() if rendered.assessment is not None else None
    status = processing.record_derivatives(
        library, image_id, made, rendered.thumbhash, assessment=assessment, fence=fence
    )
    ctx.count("derivatives_written", len(made))
    ctx.count("derivative_bytes_written", sum(m["size_bytes"] for m in made))
    return {
        "derivatives": [m["name"] for m in made],
        "keys": [m["storage_key"] for m in made],
        "source": source_key,
        "imageStatus": status.value,
    }
