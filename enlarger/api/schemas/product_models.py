"""Product jobs (reference 004) as the API shows them: every field, each artifact's key
and signed URL, and the costs of each provider call."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from enlarger.api.schemas.base_models import ApiModel, Pagination, Timestamp, absent_if_none
from enlarger.catalog import product_jobs
from enlarger.catalog.catalog import Catalog
from enlarger.catalog.publish import composites_of
from enlarger.catalog.states import DESCRIPTIONS, ProductStatus, remaining_seconds


class ProductCreated(ApiModel):
    """An announced or uploaded photo: its job, new or the one it duplicates."""

    job_id: str
    status: Literal["created", "duplicate"]


class Composite(ApiModel):
    key: str
    name: str
    width: int | None = Field(None, exclude_if=absent_if_none, description="Made by enlarger")
    height: int | None = Field(None, exclude_if=absent_if_none, description="Made by enlarger")
    thumb_key: str | None
    url: str | None
    thumb_url: str | None


class Concern(ApiModel):
    code: str
    message: str


class ArtifactUrls(ApiModel):
    original: str | None
    mask: str | None
    cutout: str | None
    backgrounds: list[str | None]
    composites: list[str | None]
    thumbs: list[str | None]


class Cost(ApiModel):
    stage: str
    provider: str
    amount_usd: float
    at: Timestamp | None


class ProductJob(ApiModel):
    id: str
    sku: str
    image_url: str | None
    sha256: str | None
    theme: str
    mode: str
    status: ProductStatus
    status_description: str
    estimated_seconds_remaining: float
    error_code: str | None
    error_message: str | None
    cutout_method: str | None
    confidence: float | None
    concerns: list[Concern]
    requested_method: str | None
    review_decision: str | None
    reviewed_at: Timestamp | None
    original_key: str | None
    mask_key: str | None
    cutout_key: str | None
    bg_keys: list[str]
    composite_keys: list[str]
    thumb_keys: list[str]
    composites: list[Composite]
    media_ids: list[str]
    published: dict[str, Any] = Field(description="What each publisher said, by name")
    urls: ArtifactUrls
    cost_usd: float
    costs: list[Cost]
    created_at: Timestamp | None
    updated_at: Timestamp | None
    started_at: Timestamp | None
    completed_at: Timestamp | None
    duration_s: float | None

    @classmethod
    def of(cls, catalog: Catalog, job: dict[str, Any], costs: list[dict[str, Any]]) -> ProductJob:
        return cls(**product_job_fields(catalog, job, costs))


def product_job_fields(
    catalog: Catalog, job: dict[str, Any], costs: list[dict[str, Any]]
) -> dict[str, Any]:
    """What `ProductJob` shows of a job row and its costs."""
    ttl = catalog.settings.url_expiry_seconds

    def url(key: str | None) -> str | None:
        return catalog.blobs.url(key, ttl) if key else None

    status = ProductStatus(job["status"])
    composites = (
        [
            Composite.model_validate(
                {**item, "url": url(item["key"]), "thumbUrl": url(item.get("thumbKey"))}
            )
            for item in composites_of(job)
        ]
        if job["composite_keys"]
        else []
    )
    started, completed = job["created_at"], job["completed_at"]
    return {
        "id": job["id"],
        "sku": job["sku"],
        "image_url": job["image_url"],
        "sha256": job["sha256"],
        "theme": job["theme"],
        "mode": job["mode"],
        "status": status,
        "status_description": DESCRIPTIONS[status],
        "estimated_seconds_remaining": remaining_seconds(status),
        "error_code": job["error_code"],
        "error_message": job["error_message"],
        "cutout_method": job["cutout_method"],
        "confidence": job["confidence"],
        "concerns": job["concerns"] or [],
        "requested_method": job["requested_method"],
        "review_decision": job["review_decision"],
        "reviewed_at": job["reviewed_at"],
        "original_key": job["original_key"],
        "mask_key": job["mask_key"],
        "cutout_key": job["cutout_key"],
        "bg_keys": job["bg_keys"] or [],
        "composite_keys": job["composite_keys"] or [],
        "thumb_keys": job["thumb_keys"] or [],
        "composites": composites,
        "media_ids": job["media_ids"] or [],
        "published": job["published"] or {},
        "urls": ArtifactUrls(
            original=url(job["original_key"]),
            mask=url(job["mask_key"]),
            cutout=url(job["cutout_key"]),
            backgrounds=[url(k) for k in job["bg_keys"] or []],
            composites=[url(k) for k in job["composite_keys"] or []],
            thumbs=[url(k) for k in job["thumb_keys"] or []],
        ),
        "cost_usd": float(product_jobs.from_nano_usd(sum(c["nano_usd"] for c in costs))),
        "costs": [
            Cost(
                stage=c["stage"],
                provider=c["provider"],
                amount_usd=float(product_jobs.from_nano_usd(c["nano_usd"])),
                at=c["created_at"],
            )
            for c in costs
        ],
        "created_at": job["created_at"],
        "updated_at": job["updated_at"],
        "started_at": job["started_at"],
        "completed_at": completed,
        "duration_s": round((completed - started).total_seconds(), 3) if completed else None,
    }


class ProductJobList(ApiModel):
    jobs: list[ProductJob]
    pagination: Pagination


class PresignedUrls(ApiModel):
    """Signed URLs for one artifact of a job: PUT it to `putUrl`, read it at `getUrl`."""

    kind: str
    key: str
    put_url: str
    get_url: str
    expires_in: int


class StartedProductJob(ProductJob):
    uploads: dict[Literal["original", "mask"], PresignedUrls]


class ProductStats(ApiModel):
    total: int
    by_status: dict[ProductStatus, int]
    failures_by_code: dict[str, int]
    total_cost_usd: float
    avg_duration_s: float | None
    failure_rate: float
    cutout_failure_rate: float


class Deleted(ApiModel):
    deleted: int = Field(description="How many finished jobs were deleted")
