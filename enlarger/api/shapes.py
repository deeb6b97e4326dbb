"""The JSON the API answers with, in the reference documents' shapes (camelCase)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Path, Query

from enlarger.library import service
from enlarger.library.library import PREVIEW, Library
from enlarger.library.service import ImageStatus
from enlarger.queue import Job

# Numbers that reach the database fit its 64-bit integers (a larger one is a 422, not an
# overflow deep in the driver).
MAX_DB_INT = 2**63 - 1
Offset = Annotated[int, Query(ge=0, le=MAX_DB_INT)]
JobId = Annotated[int, Path(ge=1, le=MAX_DB_INT)]


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def pagination(total: int, limit: int, offset: int, returned: int) -> dict[str, Any]:
    return {"total": total, "limit": limit, "offset": offset, "hasMore": offset + returned < total}


def image_json(
    library: Library,
    row: sa.Row[Any],
    derivatives: dict[str, sa.Row[Any]],
    live_jobs: list[Job],
) -> dict[str, Any]:
    ttl = library.settings.url_expiry_seconds
    sizes = {
        name: {
            "url": library.blobs.url(d.storage_key, ttl),
            "path": d.storage_key,
            "width": d.width,
            "height": d.height,
            "format": d.format,
            "sizeBytes": d.size_bytes,
            "recipeHash": d.recipe_hash,
        }
        for name, d in sorted(derivatives.items())
    }
    thumbnail = service.default_thumbnail(library, derivatives)
    preview = derivatives.get(PREVIEW)
    return {
        "id": row.id,
        "title": row.title,
        "collection": row.collection,
        "status": row.status,
        "isProcessing": row.status == ImageStatus.PROCESSING,
        "isStored": row.status == ImageStatus.STORED,
        "errorCode": row.error_code,
        "errorMessage": row.error_message,
        "originalFilename": row.original_filename,
        "checksum": row.checksum,
        "sizeBytes": row.size_bytes,
        "format": row.format,
        "mimeType": row.mime_type,
        "width": row.width,
        "height": row.height,
        "orientation": row.orientation,
        "takenAt": row.taken_at,
        "cameraMake": row.camera_make,
        "cameraModel": row.camera_model,
        "metadata": metadata_json(row.exif or {}),
        "thumbhash": row.thumbhash,
        "originalPath": row.original_key,
        "originalUrl": library.blobs.url(row.original_key, ttl) if row.original_key else None,
        "thumbnailPath": thumbnail.storage_key if thumbnail else None,
        "thumbnailUrl": sizes[thumbnail.name]["url"] if thumbnail else None,
        "previewPath": preview.storage_key if preview else None,
        "previewUrl": sizes[PREVIEW]["url"] if preview else None,
        "sizes": sizes,
        "processingJobs": [job_json(job) for job in live_jobs],
        "uploadedAt": iso(row.uploaded_at),
        "updatedAt": iso(row.updated_at),
        "storedAt": iso(row.stored_at),
    }


def metadata_json(exif: dict[str, Any]) -> dict[str, Any]:
    """The camera metadata read at ingest (`media.Metadata`), units in the names."""
    latitude, longitude = exif.get("gps_latitude"), exif.get("gps_longitude")
    return {
        "takenAt": exif.get("taken_at"),
        "cameraMake": exif.get("camera_make"),
        "cameraModel": exif.get("camera_model"),
        "lens": exif.get("lens"),
        "exposureTimeSeconds": exif.get("exposure_time_s"),
        "aperture": exif.get("f_number"),
        "iso": exif.get("iso"),
        "focalLengthMm": exif.get("focal_length_mm"),
        "gps": {
            "latitude": latitude,
            "longitude": longitude,
            "altitudeM": exif.get("gps_altitude_m"),
        }
        if latitude is not None and longitude is not None
        else None,
        "colorProfile": exif.get("color_profile"),
    }


def images_json(library: Library, rows: list[sa.Row[Any]]) -> list[dict[str, Any]]:
    """Images with their derivatives and live jobs, read in two queries for the page."""
    ids = [row.id for row in rows]
    made = service.derivatives_of(library, ids)
    live = service.live_jobs_of(library, ids)
    return [image_json(library, row, made[row.id], live[row.id]) for row in rows]


# payload keys that name a place on the server's disk: the API never shows them
SERVER_PATH_KEYS = frozenset({"tempPath"})


def job_json(job: Job) -> dict[str, Any]:
    payload = job.payload if isinstance(job.payload, dict) else {}
    shown = {k: v for k, v in payload.items() if k not in SERVER_PATH_KEYS}
    return {
        "id": job.id,
        "type": job.type,
        "status": job.status.value.upper(),
        "priority": job.priority,
        "attempts": job.attempts,
        "maxAttempts": job.max_attempts,
        "progress": job.progress,
        "payload": shown if isinstance(job.payload, dict) else job.payload,
        "imageId": payload.get("imageId"),
        "lockedBy": job.locked_by,
        "lockedAt": iso(job.locked_at),
        "errorCode": job.error_code,
        "lastError": job.last_error,
        "runAt": iso(job.run_at),
        "createdAt": iso(job.created_at),
        "updatedAt": iso(job.updated_at),
        "finishedAt": iso(job.finished_at),
        "archived": job.archived,
    }


def job_detail_json(job: Job, image: dict[str, Any] | None) -> dict[str, Any]:
    """`job_json` plus the lease, what a retry would do, the result and the image."""
    running = job.status.value == "running"
    remaining = max(job.max_attempts - job.attempts, 0)
    waiting_to_retry = job.status.value == "pending" and job.attempts > 0
    return {
        **job_json(job),
        "locked": running,
        "lock": {
            "lockedBy": job.locked_by,
            "lockedAt": iso(job.locked_at),
            "leaseExpiresAt": iso(job.lease_expires_at),
            "leaseToken": job.lease_token,
        }
        if running
        else None,
        "retryInfo": {
            "attempts": job.attempts,
            "maxAttempts": job.max_attempts,
            "remainingAttempts": remaining,
            "willRetry": waiting_to_retry,
            "nextAttemptAt": iso(job.run_at) if waiting_to_retry else None,
            "canRetryManually": job.status.value in ("failed", "cancelled"),
            "lastError": job.last_error,
            "errorCode": job.error_code,
        },
        "cancelRequested": job.cancel_requested,
        "result": job.result,
        "itemsSummary": job.items_summary,
        "image": image,
    }
