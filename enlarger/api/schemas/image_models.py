"""The photo library's images (reference documents 000-002) as the API shows them."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field

from enlarger.api.schemas.base_models import ApiModel, Pagination, Timestamp
from enlarger.api.schemas.job_models import Job
from enlarger.library import lookups
from enlarger.library.image_records import ImageStatus
from enlarger.library.library import PREVIEW, Library
from enlarger.queue import Job as QueueJob


class Derivative(ApiModel):
    """One size of an image: a thumbnail or the preview."""

    url: str
    path: str
    width: int
    height: int
    format: str
    size_bytes: int
    recipe_hash: str


class Gps(ApiModel):
    latitude: float
    longitude: float
    altitude_m: float | None


class CameraMetadata(ApiModel):
    """The camera metadata read at ingest (`media.Metadata`), units in the names."""

    taken_at: str | None
    camera_make: str | None
    camera_model: str | None
    lens: str | None
    exposure_time_seconds: float | None
    aperture: float | None
    iso: int | None
    focal_length_mm: float | None
    gps: Gps | None
    color_profile: str | None

    @classmethod
    def of(cls, exif: dict[str, Any]) -> CameraMetadata:
        latitude, longitude = exif.get("gps_latitude"), exif.get("gps_longitude")
        gps = None
        if latitude is not None and longitude is not None:
            gps = Gps(latitude=latitude, longitude=longitude, altitude_m=exif.get("gps_altitude_m"))
        return cls(
            taken_at=exif.get("taken_at"),
            camera_make=exif.get("camera_make"),
            camera_model=exif.get("camera_model"),
            lens=exif.get("lens"),
            exposure_time_seconds=exif.get("exposure_time_s"),
            aperture=exif.get("f_number"),
            iso=exif.get("iso"),
            focal_length_mm=exif.get("focal_length_mm"),
            gps=gps,
            color_profile=exif.get("color_profile"),
        )


class Image(ApiModel):
    """One image: its state, metadata, signed URLs of the original and every derivative
    (`sizes`), and its live jobs."""

    id: str
    title: str | None
    collection: str | None
    status: ImageStatus
    is_processing: bool
    is_stored: bool
    error_code: str | None
    error_message: str | None
    original_filename: str | None
    checksum: str
    size_bytes: int
    format: str | None
    mime_type: str | None
    width: int | None
    height: int | None
    orientation: int | None
    taken_at: str | None = Field(description="ISO 8601, with the camera's offset if it gave one")
    camera_make: str | None
    camera_model: str | None
    metadata: CameraMetadata
    thumbhash: str | None
    original_path: str | None
    original_url: str | None
    thumbnail_path: str | None
    thumbnail_url: str | None
    preview_path: str | None
    preview_url: str | None
    sizes: dict[str, Derivative]
    processing_jobs: list[Job]
    uploaded_at: Timestamp | None
    updated_at: Timestamp | None
    stored_at: Timestamp | None

    @classmethod
    def of(
        cls,
        library: Library,
        row: sa.Row[Any],
        derivatives: dict[str, sa.Row[Any]],
        live_jobs: list[QueueJob],
    ) -> Image:
        ttl = library.settings.url_expiry_seconds
        sizes = {
            name: Derivative(
                url=library.blobs.url(d.storage_key, ttl),
                path=d.storage_key,
                width=d.width,
                height=d.height,
                format=d.format,
                size_bytes=d.size_bytes,
                recipe_hash=d.recipe_hash,
            )
            for name, d in sorted(derivatives.items())
        }
        thumbnail = lookups.default_thumbnail(library, derivatives)
        preview = derivatives.get(PREVIEW)
        original = row.original_key
        return cls(
            id=row.id,
            title=row.title,
            collection=row.collection,
            status=row.status,
            is_processing=row.status == ImageStatus.PROCESSING,
            is_stored=row.status == ImageStatus.STORED,
            error_code=row.error_code,
            error_message=row.error_message,
            original_filename=row.original_filename,
            checksum=row.checksum,
            size_bytes=row.size_bytes,
            format=row.format,
            mime_type=row.mime_type,
            width=row.width,
            height=row.height,
            orientation=row.orientation,
            taken_at=row.taken_at,
            camera_make=row.camera_make,
            camera_model=row.camera_model,
            metadata=CameraMetadata.of(row.exif or {}),
            thumbhash=row.thumbhash,
            original_path=original,
            original_url=library.blobs.url(original, ttl) if original else None,
            thumbnail_path=thumbnail.storage_key if thumbnail else None,
            thumbnail_url=sizes[thumbnail.name].url if thumbnail else None,
            preview_path=preview.storage_key if preview else None,
            preview_url=sizes[PREVIEW].url if preview else None,
            sizes=sizes,
            processing_jobs=[Job.of(job) for job in live_jobs],
            uploaded_at=row.uploaded_at,
            updated_at=row.updated_at,
            stored_at=row.stored_at,
        )


def images_of(library: Library, rows: list[sa.Row[Any]]) -> list[Image]:
    """Images with their derivatives and live jobs, read in two queries for the page."""
    ids = [row.id for row in rows]
    made = lookups.derivatives_of(library, ids)
    live = lookups.live_jobs_of(library, ids)
    return [Image.of(library, row, made[row.id], live[row.id]) for row in rows]


def image_of(library: Library, row: sa.Row[Any]) -> Image:
    return images_of(library, [row])[0]


class ImageList(ApiModel):
    data: list[Image]
    collections: list[str]
    count: int
    pagination: Pagination


class Uploaded(ApiModel):
    """An upload taken in: `duplicate` when the collection held these bytes already."""

    image_id: str
    status: ImageStatus
    checksum: str
    size_bytes: int
    uploaded_at: Timestamp | None
    duplicate: bool


class UploadRefused(Uploaded):
    """An upload that is not an image enlarger takes: recorded as FAILED, with why."""

    error_code: str | None
    error_message: str | None
    detail: str


class FullView(ApiModel):
    status: Literal["done", "rendering", "failed"]
    url: str | None = Field(None, description="A signed URL of the JPEG, once done")
    job_id: int | None = Field(None, description="The render's job, while it runs or failed")
    error_code: str | None = Field(None, description="Why the render failed: CORRUPT_IMAGE…")
    error: str | None = Field(None, description="Why the render failed, in words")


class ReceivedBlob(ApiModel):
    """A blob written through a signed upload URL."""

    key: str
    size_bytes: int
    sha256: str
