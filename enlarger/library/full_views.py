"""The 100 % view of an original a browser cannot show (RAW, HEIC, TIFF): the original
rendered whole as a JPEG, kept with its derivatives.

Rendering decodes the whole original (a 14000 x 14000 PNG, a RAW's demosaic), so it
never runs in the API process: a request queues a FULL_VIEW job (one per image however
many ask, and at most MAX_WAITING in all) and is answered at once; the render runs in a
worker's CPU child, under its memory ceiling and time limit, and the caller asks again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from enlarger.errors import Conflict
from enlarger.library import image_records
from enlarger.library.image_records import JobType, derivative_key
from enlarger.library.library import Library
from enlarger.media import MediaErrorCode, Recipe, probe, render
from enlarger.queue import ErrorCode, Job, JobStatus

QUALITY = 90
MAX_WAITING = 8  # renders queued at once, all images together
RETRY_AFTER_S = 1  # how soon a caller should ask again while its view renders
TRY_AGAIN_AFTER = timedelta(minutes=1)  # a render that failed for a passing cause
_queueing = threading.Lock()  # counting the waiting renders and adding one, as one step


class Busy(Exception):
    """MAX_WAITING renders are queued already; ask again later."""


@dataclass(frozen=True)
class FullView:
    status: Literal["done", "rendering", "failed"]
    key: str | None = None  # the JPEG's storage key, once done
    job_id: int | None = None  # the render's job, while it runs or once it failed
    error_code: str | None = None  # why the last render failed: CORRUPT_IMAGE, JOB_TIMEOUT…
    error: str | None = None  # and in words


def _recipe(width: int, height: int) -> Recipe:
    return Recipe("full_view", max(width, height), "jpeg", QUALITY)


def request(library: Library, image_id: str) -> FullView:
    """The image's full view if made; else its render, queued now unless it is already.
    A render that failed because of the file fails again: the caller is told, until the
    original changes; so does one past the memory ceiling (the same file needs the same
    memory). One that failed for a passing cause (its time limit on a busy machine, a
    lost worker) is tried again when asked TRY_AGAIN_AFTER it failed."""
    row = image_records.get_image_row(library, image_id)
    if row.original_key is None or row.width is None or row.height is None:
        raise Conflict(f"image {image_id}: its original is not stored yet")
    key = derivative_key(image_id, _recipe(row.width, row.height))
    if library.blobs.exists(key):
        return FullView("done", key=key)
    store = library.queue.store
    latest, _ = store.list_jobs(
        job_type=JobType.FULL_VIEW, payload_match=("imageId", image_id), limit=1
    )
    last = latest[0] if latest else None
    if last is not None and last.status in (JobStatus.PENDING, JobStatus.RUNNING):
        return FullView("rendering", job_id=last.id)
    stamp = _stamp(library, row.original_key)
    if last is not None and last.status == JobStatus.FAILED and _sticks(last, stamp):
        return FullView("failed", job_id=last.id, error_code=last.error_code, error=_said(last))
    with _queueing:  # in this process; several API processes each keep their own bound
        _, waiting = store.list_jobs(job_type=JobType.FULL_VIEW, status=JobStatus.PENDING, limit=1)
        if waiting >= MAX_WAITING:
            raise Busy(f"{waiting} full views are waiting to be rendered; ask again shortly")
        queued = library.queue.enqueue(
            JobType.FULL_VIEW,
            {"imageId": image_id, "original": stamp},
            priority=image_records.DERIVATIVE_PRIORITY,
            idempotency_key=f"{JobType.FULL_VIEW.value}:{image_id}",
        )
    return FullView("rendering", job_id=queued.id)


def _stamp(library: Library, key: str) -> str | None:
    """The original's size and time as the store has them now: a file put right on disk
    (or broken) since a render failed is another file to render."""
    info = library.blobs.info(key)
    return None if info is None else f"{info.size_bytes}@{info.modified_at.isoformat()}"


def _sticks(failed: Job, stamp: str | None) -> bool:
    """Whether a failed render stands: the file could not be rendered (or not within the
    memory ceiling) and has not changed since, or a passing failure is too recent to try
    again."""
    if failed.payload.get("original") != stamp:
        return False
    if (
        failed.error_code in MediaErrorCode.__members__
        or failed.error_code == ErrorCode.MEMORY_LIMIT
    ):
        return True
    ended = failed.finished_at or failed.updated_at or failed.created_at
    return datetime.now(UTC) - ended.replace(tzinfo=ended.tzinfo or UTC) < TRY_AGAIN_AFTER


def _said(failed: Job) -> str | None:
    """The failure in words, without the exception's class the worker puts first."""
    text = failed.last_error or ""
    head, sep, rest = text.partition(": ")
    return rest if sep and head.isidentifier() else text or None


def render_full_view(library: Library, image_id: str) -> str:
    """Render and keep the full view (the job's work); returns its key."""
    row = image_records.get_image_row(library, image_id)
    if row.original_key is None or row.width is None or row.height is None:
        raise Conflict(f"image {image_id}: its original is not stored yet")
    recipe = _recipe(row.width, row.height)
    key = derivative_key(image_id, recipe)
    if not library.blobs.exists(key):
        with library.blobs.local_copy(row.original_key) as path:
            rendered = render(path, probe(path, library.limits), [recipe])
        library.blobs.put_bytes(key, rendered.renditions[0].data)
    return key
