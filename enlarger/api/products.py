"""Product images (reference 004): the signed intake webhook and the product jobs API.

The reference served product jobs under `/api/jobs`, which the photo projects use;
enlarger serves them under `/api/product-jobs`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator

from enlarger.api.deps import CatalogDep, LibraryDep
from enlarger.api.multipart import read_upload_form
from enlarger.api.schemas.base_models import (
    BINARY,
    ERRORS,
    ErrorAnswer,
    Pagination,
    links,
    multipart_body,
)
from enlarger.api.schemas.product_models import (
    Deleted,
    PresignedUrls,
    ProductCreated,
    ProductJob,
    ProductJobList,
    ProductStats,
    StartedProductJob,
    product_job_fields,
)
from enlarger.api.shapes import Offset
from enlarger.catalog import product_jobs
from enlarger.catalog.catalog import Catalog
from enlarger.catalog.states import ProductError, ProductStatus
from enlarger.catalog.themes import DEFAULT_THEME
from enlarger.catalog.webhooks import WebhookRejected, verify

router = APIRouter(tags=["product images"], responses=ERRORS)
TO_PRODUCT_JOB = links(
    "job_id",
    "/jobId",
    get_product_job="The product job",
    start_product_job="Start it (an external theme's job)",
    presign_artifact="Signed URLs for its artifacts (an external theme's job)",
    review_product_job="Decide on its cut-out, once held",
)
CREATED = {
    201: {"description": "A job was created", "links": TO_PRODUCT_JOB},
    200: {
        "model": ProductCreated,
        "description": "A duplicate: the job this photo has already",
        "links": TO_PRODUCT_JOB,
    },
}
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
MAX_WEBHOOK_BYTES = 64 * 1024


class AnnouncedImage(BaseModel):
    """A product system's announcement of an image for a SKU."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    sku: str = Field(min_length=1, max_length=200)
    # the validators below check these; the patterns document them
    imageUrl: str = Field(
        min_length=8, max_length=4000, json_schema_extra={"pattern": "^[hH][tT][tT][pP][sS]?://"}
    )
    sha256: str = Field(json_schema_extra={"pattern": SHA256.pattern})
    theme: str = Field(DEFAULT_THEME, min_length=1, max_length=100)

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        if not SHA256.match(value):
            raise ValueError("sha256 must be the image's 64 hex digit SHA-256")
        return value.lower()

    @field_validator("imageUrl")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.lower().startswith(("http://", "https://")):
            raise ValueError("imageUrl must be an http or https URL")
        return value


def _verified_webhook_id(catalog: Catalog, request: Request, body: bytes) -> str | None:
    """The delivery's id once its signature checks out; 401 with the reason otherwise."""
    if not catalog.webhook_keys:
        if not catalog.settings.webhooks_insecure:
            raise HTTPException(
                401,
                "webhooks are refused: no secret is configured (set ENLARGER_WEBHOOK_SECRETS, "
                "or ENLARGER_WEBHOOKS_INSECURE=1 to accept unsigned webhooks in development)",
            )
        return request.headers.get("webhook-id") or None
    try:
        return verify(request.headers, body, catalog.webhook_keys).webhook_id
    except WebhookRejected as exc:
        raise HTTPException(401, f"webhook signature rejected: {exc}") from None


@router.post(
    "/api/webhooks/images",
    summary="Announce a product image (signed webhook)",
    status_code=201,
    responses=CREATED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "Signed with Standard Webhooks headers (webhook-id, "
            "webhook-timestamp, webhook-signature) or the legacy x-webhook-signature HMAC",
            "content": {"application/json": {"schema": AnnouncedImage.model_json_schema()}},
        }
    },
)
async def receive_image(
    request: Request, response: Response, catalog: CatalogDep
) -> ProductCreated:
    too_large = HTTPException(413, f"a webhook body is at most {MAX_WEBHOOK_BYTES:,} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        raise too_large
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WEBHOOK_BYTES:
            raise too_large
    webhook_id = _verified_webhook_id(catalog, request, body)
    try:
        announced = AnnouncedImage.model_validate_json(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise HTTPException(422, f"invalid announcement: {problems}") from None
    created = await run_in_threadpool(
        product_jobs.create_job,
        catalog,
        announced.sku,
        announced.imageUrl,
        announced.sha256,
        announced.theme,
        webhook_id,
    )
    return _created(response, created)


def _created(response: Response, created: product_jobs.Created) -> ProductCreated:
    response.status_code = 201 if created.created else 200
    return ProductCreated(
        job_id=created.job_id, status="created" if created.created else "duplicate"
    )


@router.post(
    "/api/product-jobs/upload",
    summary="Send a product photo (multipart: file, sku, theme) instead of announcing a URL",
    status_code=201,
    responses={
        **CREATED,
        422: {"model": ErrorAnswer, "description": "not an image, no SKU, or an unknown theme"},
    },
    openapi_extra=multipart_body(
        {
            "file": BINARY,
            "sku": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"},
            "theme": {"type": "string", "description": f"Default: {DEFAULT_THEME}"},
        },
        ["file", "sku"],
        "The photo, its SKU and the theme to render it in",
    ),
)
async def upload_product_photo(
    request: Request, response: Response, catalog: CatalogDep, library: LibraryDep
) -> ProductCreated:
    form = await read_upload_form(request, library, "file")
    photo = form.file.received
    try:
        sku = (form.fields.get("sku") or "").strip()
        theme = (form.fields.get("theme") or "").strip() or DEFAULT_THEME
        if not sku or len(sku) > 200:
            raise HTTPException(422, "sku is required: a form field of 1 to 200 characters")
        created = await run_in_threadpool(
            product_jobs.create_uploaded_job,
            catalog,
            sku,
            theme,
            photo.path,
            photo.checksum,
            form.file.filename,
        )
    finally:
        photo.path.unlink(missing_ok=True)
    return _created(response, created)


def _status_filter(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return ProductStatus(value.upper()).value
    except ValueError:
        known = ", ".join(s.value for s in ProductStatus)
        raise HTTPException(422, f"unknown status {value!r}; use one of {known}") from None


@router.get("/api/product-jobs", summary="List product jobs, newest first")
def list_product_jobs(
    catalog: CatalogDep,
    status: str | None = None,
    sku: str | None = None,
    theme: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> ProductJobList:
    rows, total = product_jobs.list_jobs(
        catalog, status=_status_filter(status), sku=sku, theme=theme, limit=limit, offset=offset
    )
    costs = product_jobs.costs_of(catalog, [row["id"] for row in rows])
    return ProductJobList(
        jobs=[ProductJob.of(catalog, row, costs[row["id"]]) for row in rows],
        pagination=Pagination.of(total, limit, offset, len(rows)),
    )


@router.get("/api/product-jobs/stats", summary="Totals: by status, cost, duration, failure rate")
def product_job_stats(catalog: CatalogDep) -> ProductStats:
    totals = product_jobs.stats(catalog)
    return ProductStats.model_validate({**totals, "totalCostUsd": float(totals["totalCostUsd"])})


class Cleanup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    olderThanDays: float = Field(ge=0, le=36_500, allow_inf_nan=False)  # at most a century


@router.post("/api/product-jobs/cleanup", summary="Delete finished jobs older than N days")
def cleanup_product_jobs(cleanup: Cleanup, catalog: CatalogDep) -> Deleted:
    return Deleted(deleted=product_jobs.cleanup(catalog, cleanup.olderThanDays))


@router.get(
    "/api/product-jobs/{job_id}",
    summary="One product job with its artifacts and costs",
    operation_id="get_product_job",
)
def get_product_job(job_id: str, catalog: CatalogDep) -> ProductJob:
    return _job_with_costs(catalog, product_jobs.get_job(catalog, job_id))


# ---- external mode -----------------------------------------------------------------------------


@router.post(
    "/api/product-jobs/{job_id}/start",
    summary="Start an external theme's job: QUEUED, with upload URLs for the original and mask",
    operation_id="start_product_job",
)
def start_product_job(job_id: str, catalog: CatalogDep) -> StartedProductJob:
    job = product_jobs.start(catalog, job_id)
    ttl = catalog.settings.url_expiry_seconds
    uploads = {
        kind: product_jobs.presign(catalog, job_id, kind, expires_in=ttl)
        for kind in ("original", "mask")
    }
    costs = product_jobs.costs_of(catalog, [job["id"]])[job["id"]]
    return StartedProductJob(**product_job_fields(catalog, job, costs), uploads=uploads)


def _job_with_costs(catalog: Catalog, job: dict[str, Any]) -> ProductJob:
    return ProductJob.of(catalog, job, product_jobs.costs_of(catalog, [job["id"]])[job["id"]])


class PresignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["original", "mask", "bg", "composite", "thumb"]
    variant: int = Field(1, ge=1, le=999)
    aspect: Literal["1:1", "4:5", "3:4", "16:9"] = "1:1"
    type: str = Field("master", pattern=r"^[a-z0-9][a-z0-9-]{0,19}$")
    expiresIn: int = Field(3600, ge=1, le=product_jobs.MAX_PRESIGN_S)


@router.post(
    "/api/product-jobs/{job_id}/presign",
    summary="Signed PUT and GET URLs for one artifact of a job (at most seven days)",
    operation_id="presign_artifact",
)
def presign_artifact(job_id: str, request: PresignRequest, catalog: CatalogDep) -> PresignedUrls:
    found = product_jobs.presign(
        catalog,
        job_id,
        request.kind,
        variant=request.variant,
        aspect=request.aspect,
        kind_type=request.type,
        expires_in=request.expiresIn,
    )
    return PresignedUrls.model_validate(found)


class CostReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # a number, or a string of one (read exactly); documented as a number, as sent
    costUsd: Annotated[
        Decimal | None,
        WithJsonSchema(
            {"anyOf": [{"type": "number", "minimum": 0, "maximum": 10_000}, {"type": "null"}]}
        ),
    ] = Field(None, ge=0, le=10_000)
    provider: str = Field("external", min_length=1, max_length=100)


class SegmentationReport(CostReport):
    maskKey: str = Field(min_length=1, max_length=700)


class BackgroundsReport(CostReport):
    bgKeys: list[str] = Field(min_length=1, max_length=50)


class CompositeReport(CostReport):
    composites: list[str] = Field(min_length=1, max_length=50)
    thumbs: list[str] = Field(min_length=1, max_length=50)  # one per composite


class PublishReport(CostReport):
    mediaIds: list[str] = Field(min_length=1, max_length=50)


class FailReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: ProductError
    message: str = Field(min_length=1, max_length=2000)


def _report(
    catalog: Catalog, job_id: str, stage: ProductStatus, body: CostReport, updates: dict[str, Any]
) -> ProductJob:
    cost = None
    if body.costUsd is not None:
        cost = product_jobs.Cost(stage, body.provider, body.costUsd)
    job = product_jobs.report(catalog, job_id, product_jobs.Report(stage, updates, cost))
    return _job_with_costs(catalog, job)


@router.post("/api/product-jobs/{job_id}/segmentation", summary="External: the mask is made")
def report_segmentation(job_id: str, body: SegmentationReport, catalog: CatalogDep) -> ProductJob:
    return _report(catalog, job_id, ProductStatus.SEGMENTING, body, {"mask_key": body.maskKey})


@router.post("/api/product-jobs/{job_id}/backgrounds", summary="External: backgrounds are made")
def report_backgrounds(job_id: str, body: BackgroundsReport, catalog: CatalogDep) -> ProductJob:
    return _report(catalog, job_id, ProductStatus.BG_GENERATING, body, {"bg_keys": body.bgKeys})


@router.post("/api/product-jobs/{job_id}/composite", summary="External: composites are made")
def report_composite(job_id: str, body: CompositeReport, catalog: CatalogDep) -> ProductJob:
    if len(body.thumbs) != len(body.composites):
        raise HTTPException(422, "thumbs are one per composite")
    updates = {"composite_keys": body.composites, "thumb_keys": body.thumbs}
    return _report(catalog, job_id, ProductStatus.COMPOSITING, body, updates)


@router.post("/api/product-jobs/{job_id}/publish", summary="External: composites are published")
@router.post("/api/product-jobs/{job_id}/shopify", summary="External: published (reference name)")
def report_publish(job_id: str, body: PublishReport, catalog: CatalogDep) -> ProductJob:
    return _report(catalog, job_id, ProductStatus.PUBLISHING, body, {"media_ids": body.mediaIds})


class ReviewDecision(BaseModel):
    """A reviewer's decision on a job held in NEEDS_REVIEW."""

    model_config = ConfigDict(extra="forbid")
    action: product_jobs.ReviewAction
    method: Literal["auto", "model", "backdrop"] | None = None  # rerun: how to cut it out
    note: str | None = Field(None, max_length=500)  # reject: why (kept in errorMessage)


@router.post(
    "/api/product-jobs/{job_id}/review",
    summary="Decide on a held cut-out: accept (publish), reject (fail) or rerun with a method",
    operation_id="review_product_job",
    responses={409: {"model": ErrorAnswer, "description": "the job is not waiting for review"}},
)
def review_product_job(job_id: str, body: ReviewDecision, catalog: CatalogDep) -> ProductJob:
    if body.action is product_jobs.ReviewAction.RERUN and body.method is None:
        raise HTTPException(422, "rerun needs a method: auto, model or backdrop")
    if body.action is not product_jobs.ReviewAction.RERUN and body.method is not None:
        raise HTTPException(422, f"a method is for rerun only, not for {body.action.value}")
    if body.action is not product_jobs.ReviewAction.REJECT and body.note is not None:
        raise HTTPException(422, f"a note is for reject only, not for {body.action.value}")
    job = product_jobs.review(catalog, job_id, body.action, body.method, body.note)
    return _job_with_costs(catalog, job)


@router.post("/api/product-jobs/{job_id}/fail", summary="Fail a job with an error code")
def report_failure(job_id: str, body: FailReport, catalog: CatalogDep) -> ProductJob:
    return _job_with_costs(
        catalog, product_jobs.fail_reported(catalog, job_id, body.code, body.message)
    )
