"""The product pipeline's job handlers: one queue job per stage, so each stage is
retried on its own (2 s, 4 s, 8 s… by the engine's backoff) and a crash repeats only the
stage it interrupted.

A stage whose job finds the product job elsewhere (moved on already, failed, deleted)
does nothing. A stage that fails for good marks the product job FAILED with its code; a
stage job that dies without saying so (killed past its time limit, its attempts spent)
is found by `product_reconcile`, which fails the product job it left behind.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn, Protocol

from enlarger.catalog import pipeline, product_jobs
from enlarger.catalog.catalog import Catalog
from enlarger.catalog.states import InvalidTransition, ProductError, ProductStatus, StageFailed
from enlarger.queue import (
    ErrorCode,
    JobContext,
    JobStatus,
    PermanentError,
    Registry,
    RetryableError,
    as_dependency_down,
)
from enlarger.storage import StorageUnavailable

log = logging.getLogger(__name__)
registry = Registry(passing_errors=(StorageUnavailable,))
RECONCILE_EVERY_S = 30.0


class WithCatalog(Protocol):
    """What the catalog's handlers read of the services their worker hands down."""

    @property
    def catalog(self) -> Catalog: ...


def _catalog(ctx: JobContext) -> Catalog:
    services: WithCatalog | None = ctx.services
    if services is None:
        raise RuntimeError("product jobs need a worker started with the application's services")
    return services.catalog


def run_stage(ctx: JobContext, payload: dict[str, Any], status: ProductStatus) -> dict[str, Any]:
    catalog = _catalog(ctx)
    job_id = payload["productJobId"]
    try:
        job = product_jobs.get_job(catalog, job_id)
    except product_jobs.NotFound:
        return {"skipped": "the product job was deleted"}
    if job["status"] != status.value:
        return {"skipped": f"the product job is {job['status']}"}
    work, following = pipeline.STAGES[status]
    try:
        result = work(catalog, job)
    except StageFailed as error:
        _give_up_or_retry(ctx, catalog, job_id, status, error)
    except Exception as exc:  # a bug: retried, then INTERNAL_ERROR
        if isinstance(exc, StorageUnavailable) or as_dependency_down(exc) is not None:
            raise  # an outage: waited out by the engine, attempts unspent
        log.exception("product job %s: %s stage failed", job_id, status.value)
        error = StageFailed(
            ProductError.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", retryable=True
        )
        _give_up_or_retry(ctx, catalog, job_id, status, error)
    following = result.following or following
    try:
        product_jobs.advance(catalog, job_id, status, following, result.updates, result.costs)
    except (InvalidTransition, product_jobs.NotFound) as exc:
        return {"skipped": str(exc)}
    return {"productJobId": job_id, "status": following.value}


def _give_up_or_retry(
    ctx: JobContext, catalog: Catalog, job_id: str, status: ProductStatus, error: StageFailed
) -> NoReturn:
    if error.retryable and ctx.attempt < ctx.max_attempts:
        raise RetryableError(error.code.value, error.message)
    product_jobs.fail(catalog, job_id, error.code, error.message, expected=status)
    raise PermanentError(error.code.value, error.message)


@registry.handler("product_fetch", kind="io", max_attempts=4, timeout_s=300)
def product_fetch(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    return run_stage(ctx, payload, ProductStatus.QUEUED)


@registry.handler("product_segment", kind="cpu", max_attempts=3, timeout_s=600)
def product_segment(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    return run_stage(ctx, payload, ProductStatus.SEGMENTING)


@registry.handler("product_backgrounds", kind="cpu", max_attempts=3, timeout_s=600)
def product_backgrounds(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    return run_stage(ctx, payload, ProductStatus.BG_GENERATING)


@registry.handler("product_composite", kind="cpu", max_attempts=3, timeout_s=900)
def product_composite(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    return run_stage(ctx, payload, ProductStatus.COMPOSITING)


@registry.handler("product_publish", kind="io", max_attempts=5, timeout_s=600)
def product_publish(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    return run_stage(ctx, payload, ProductStatus.PUBLISHING)


@registry.handler("product_reconcile", kind="io", max_attempts=1, timeout_s=300)
def product_reconcile(ctx: JobContext, payload: Any) -> dict[str, Any]:
    """Fail product jobs whose stage job ended without moving them on."""
    return {"failed": reconcile(_catalog(ctx))}


registry.schedule("product_reconcile", "product_reconcile", RECONCILE_EVERY_S, priority=90)


def reconcile(catalog: Catalog) -> list[str]:
    candidates = product_jobs.stalled_candidates(catalog)
    stage_jobs = catalog.queue.store.jobs_by_id([job["stage_job_id"] for job in candidates])
    failed = []
    for job in candidates:
        stage_job = stage_jobs.get(job["stage_job_id"])
        if stage_job is None or stage_job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            continue
        code = ProductError.INTERNAL_ERROR
        if stage_job.error_code == ErrorCode.TIMEOUT:
            code = ProductError.PROVIDER_TIMEOUT
        message = f"the {job['status']} stage ended without finishing: {stage_job.last_error}"
        if product_jobs.fail(
            catalog, job["id"], code, message, expected=ProductStatus(job["status"])
        ):
            failed.append(job["id"])
    return failed
