"""The 100 % view of an original a browser cannot show (RAW, HEIC, TIFF): the original
rendered whole as a JPEG, kept with its derivatives.

Rendering decodes the whole original (a 14000 x 14000 PNG, a RAW's demosaic), so it
never runs in the API process: a request queues a FULL_VIEW job (one per image however
many ask, and at most MAX_WAITING in all) and is answered at once; the render runs in a
worker's CPU child, under its memory ceiling and time limit, and the caller asks again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from enlarger.library import service
from enlarger.library.runtime import Library
from enlarger.library.service import Conflict, JobType, derivative_key
from enlarger.media import Recipe, probe, render
from enlarger.queue import JobStatus

QUALITY = 90
MAX_WAITING = 8  # renders queued at once, all images together
RETRY_AFTER_S = 1  # how soon a caller should ask again while its view renders


class Busy(Exception):
    """MAX_WAITING renders are queued already; ask again later."""


@dataclass(frozen=True)
class FullView:
    status: Literal["done", "rendering", "failed"]
    key: str | None = None  # the JPEG's storage key, once done
    job_id: int | None = None  # the render's job, while it runs or once it failed
    error: str | None = None  # why the last render failed


def _recipe(width: int, height: int) -> Recipe:
    return Recipe("full_view", max(width, height), "jpeg", QUALITY)


def request(library: Library, image_id: str) -> FullView:
    """The image's full view if made; else its render, queued now unless it is already,
    or the last one failed (a render that failed once fails again: the caller is told)."""
    row = service.get_image_row(library, image_id)
    if row.original_key is None or row.width is None or row.height is None:
        raise Conflict(f"image {image_id}: its original is not stored yet")
    key = derivative_key(image_id, _recipe(row.width, row.height))
    if library.blobs.exists(key):
        return FullView("done", key=key)
    store = library.queue.store
    latest, _ = store.list_jobs(
        job_type=JobType.FULL_VIEW, payload_match=("imageId", image_id), limit=1
    )
    if latest and latest[0].status in (JobStatus.PENDING, JobStatus.RUNNING):
        return FullView("rendering", job_id=latest[0].id)
    if latest and latest[0].status == JobStatus.FAILED:
        return FullView("failed", job_id=latest[0].id, error=latest[0].last_error)
    _, waiting = store.list_jobs(job_type=JobType.FULL_VIEW, status=JobStatus.PENDING, limit=1)
    if waiting >= MAX_WAITING:
        raise Busy(f"{waiting} full views are waiting to be rendered; ask again shortly")
    queued = library.queue.enqueue(
        JobType.FULL_VIEW,
        {"imageId": image_id},
        priority=service.DERIVATIVE_PRIORITY,
        idempotency_key=f"{JobType.FULL_VIEW.value}:{image_id}",
    )
    return FullView("rendering", job_id=queued.id)


def render_full_view(library: Library, image_id: str) -> str:
    """Render and keep the full view (the job's work); returns its key."""
    row = service.get_image_row(library, image_id)
    if row.original_key is None or row.width is None or row.height is None:
        raise Conflict(f"image {image_id}: its original is not stored yet")
    recipe = _recipe(row.width, row.height)
    key = derivative_key(image_id, recipe)
    if not library.blobs.exists(key):
        with library.blobs.local_copy(row.original_key) as path:
            rendered = render(path, probe(path, library.limits), [recipe])
        library.blobs.put_bytes(key, rendered.renditions[0].data)
    return key
