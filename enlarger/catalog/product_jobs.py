"""Product jobs: create them from announced images, move them through the state
machine, record their costs, read them back. HTTP handlers, the CLI and the pipeline's
job handlers call these.

A status change and the queue job that carries the product job on (for built-in themes)
are written in one transaction, so a job never waits in a stage with nobody to run it.
Every change is a compare-and-set on the status: two writers racing cannot both move it.

One module, though long: every write here is a compare-and-set on the same status with
the same transaction rules, and the external workers' reports at the end go through
the same `advance`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from enlarger.catalog.catalog import Catalog
from enlarger.catalog.states import (
    TERMINAL,
    InvalidTransition,
    ProductError,
    ProductStatus,
    check_fields,
    check_transition,
)
from enlarger.db.engine import is_postgres, read_connection
from enlarger.db.schema import product_costs, product_jobs, webhook_deliveries
from enlarger.db.types import db_now, db_seconds_between
from enlarger.errors import Conflict, Invalid, NotFound
from enlarger.media import Limits, probe
from enlarger.storage import safe_name

STAGE_JOB_TYPES: dict[ProductStatus, str] = {
    ProductStatus.QUEUED: "product_fetch",
    ProductStatus.SEGMENTING: "product_segment",
    ProductStatus.BG_GENERATING: "product_backgrounds",
    ProductStatus.COMPOSITING: "product_composite",
    ProductStatus.PUBLISHING: "product_publish",
}
# Below uploads' priority lane (product work is batch work); each later stage one higher,
# so jobs already under way finish before new ones start (results arrive early).
STAGE_PRIORITY = 50
NANO = Decimal("0.000000001")
# Jobs that failed before there was a photo to cut out, and jobs whose cut-out failed
# (or was turned down): the cut-out failure rate counts the second among those that had
# a photo to cut.
NOT_CUT_OUT = (ProductError.DOWNLOAD_FAILED, ProductError.INVALID_IMAGE)
CUT_OUT_FAILURES = (ProductError.SEGMENT_FAILED, ProductError.REJECTED)


class LimitReached(Conflict):
    """The SKU already has `image_max_per_sku` product jobs."""

    code = "LIMIT_REACHED"


class UnknownTheme(Invalid):
    code = "UNKNOWN_THEME"


@dataclass(frozen=True)
class Created:
    job_id: str
    created: bool  # False: the same (sku, sha256, theme) or webhook id was seen before


@dataclass(frozen=True)
class Cost:
    stage: ProductStatus
    provider: str
    amount_usd: Decimal


def to_nano_usd(amount: Decimal) -> int:
    """Dollars as billionths, exactly (rounded half-even past nine decimal places)."""
    return int((amount / NANO).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def from_nano_usd(nano: int) -> Decimal:
    return (Decimal(nano) * NANO).normalize()


# ---- creating ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Uploaded:
    """A product photo sent with the request and stored already under the job id it
    will have: the fetch stage finds it there and fetches nothing."""

    job_id: str
    original_key: str


def new_job_id() -> str:
    return secrets.token_urlsafe(15)


def create_job(
    catalog: Catalog,
    sku: str,
    image_url: str,
    sha256: str,
    theme: str,
    webhook_id: str | None = None,
    uploaded: Uploaded | None = None,
) -> Created:
    """One job per (sku, sha256, theme) and per webhook id, however many deliveries race;
    once that job has FAILED, the same photo announced again (under a new webhook id)
    makes a new job. A built-in theme's job is QUEUED at once with its fetch job; an
    external one waits in NEW for `start`."""
    check_theme(catalog, theme)
    for _ in range(3):  # a racing delivery may win between our read and our insert
        try:
            with catalog.engine.begin() as conn:
                return _create(catalog, conn, sku, image_url, sha256, theme, webhook_id, uploaded)
        except sa.exc.IntegrityError:
            continue
    raise RuntimeError("a product job kept being created and removed under us")


def create_uploaded_job(
    catalog: Catalog, sku: str, theme: str, photo: Path, sha256: str, filename: str | None
) -> Created:
    """A job for a product photo sent with the request rather than announced by URL: it
    is checked to be an image, stored as the job's original (before the job exists, so
    no transaction waits on storage), then the job created; a duplicate's copy is
    removed again. `image_url` records `upload:<file name>`."""
    check_theme(catalog, theme)
    found = probe(photo, Limits(catalog.fetch_limits.max_bytes))  # MediaError: not an image
    job_id = new_job_id()
    key = f"products/{sku_folder(sku)}/{job_id}/original.{found.format}"
    catalog.blobs.take_file(key, photo)
    try:
        created = create_job(
            catalog,
            sku,
            f"upload:{safe_name(filename or 'photo', 'photo')}",
            sha256,
            theme,
            uploaded=Uploaded(job_id, key),
        )
    except BaseException:
        catalog.blobs.delete(key)
        raise
    if not created.created:
        catalog.blobs.delete(key)
    return created


def check_theme(catalog: Catalog, theme: str) -> None:
    if theme not in catalog.themes:
        known = ", ".join(sorted(catalog.themes))
        raise UnknownTheme(f"unknown theme {theme!r} (known: {known})")


def _create(
    catalog: Catalog,
    conn: sa.Connection,
    sku: str,
    image_url: str,
    sha256: str,
    theme: str,
    webhook_id: str | None,
    uploaded: Uploaded | None,
) -> Created:
    if webhook_id is not None:
        seen = conn.execute(
            sa.select(webhook_deliveries.c.product_job_id).where(
                webhook_deliveries.c.webhook_id == webhook_id
            )
        ).scalar()
        if seen is not None:
            return Created(seen, False)
    if is_postgres(catalog.engine):  # SQLite's single writer already serialises this
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(sku))))
    existing = conn.execute(
        sa.select(product_jobs.c.id).where(
            product_jobs.c.sku == sku,
            product_jobs.c.sha256 == sha256,
            product_jobs.c.theme == theme,
            product_jobs.c.status != ProductStatus.FAILED.value,  # a failed one is tried anew
        )
    ).scalar()
    if existing is None:
        _check_sku_limit(catalog, conn, sku)
        announced = {"sku": sku, "image_url": image_url, "sha256": sha256, "theme": theme}
        existing = _insert(catalog, conn, announced, uploaded)
        created = True
    else:
        created = False
    if webhook_id is not None:
        conn.execute(
            webhook_deliveries.insert().values(
                webhook_id=webhook_id, product_job_id=existing, received_at=db_now()
            )
        )
    return Created(existing, created)


def _check_sku_limit(catalog: Catalog, conn: sa.Connection, sku: str) -> None:
    limit = catalog.settings.image_max_per_sku
    count = conn.execute(
        sa.select(sa.func.count()).where(
            product_jobs.c.sku == sku, product_jobs.c.status != ProductStatus.FAILED.value
        )
    ).scalar_one()
    if count >= limit:
        raise LimitReached(
            f"SKU {sku!r} already has {count} image(s), the limit (ENLARGER_IMAGE_MAX_PER_SKU)"
        )


def _insert(
    catalog: Catalog, conn: sa.Connection, announced: dict[str, str], uploaded: Uploaded | None
) -> str:
    """A new job of an announced (sku, image_url, sha256, theme), QUEUED at once on the
    built-in providers."""
    job_id = uploaded.job_id if uploaded else new_job_id()
    external = catalog.themes[announced["theme"]].external
    conn.execute(
        product_jobs.insert().values(
            **announced,
            id=job_id,
            original_key=uploaded.original_key if uploaded else None,
            mode="external" if external else "builtin",
            status=ProductStatus.NEW.value,
            created_at=db_now(),
            updated_at=db_now(),
        )
    )
    _announce(catalog, conn, {**announced, "id": job_id}, ProductStatus.NEW)
    if not external:
        _transition(catalog, conn, _locked(conn, job_id), ProductStatus.QUEUED, {})
    return job_id


# ---- moving through the states ---------------------------------------------------------------


def advance(
    catalog: Catalog,
    job_id: str,
    expected: ProductStatus,
    new: ProductStatus,
    updates: Mapping[str, Any] | None = None,
    costs: Iterable[Cost] = (),
) -> dict[str, Any]:
    """Move a job from `expected` to `new` with `updates` and its costs, in one
    transaction; InvalidTransition when it is not in `expected` (any more)."""
    with catalog.engine.begin() as conn:
        job = _locked(conn, job_id)
        if job["status"] != expected.value:
            raise InvalidTransition(f"the job is {job['status']}, not {expected.value}")
        _record_costs(conn, job_id, costs)
        return _transition(catalog, conn, job, new, dict(updates or {}))


def fail(
    catalog: Catalog,
    job_id: str,
    code: ProductError,
    message: str,
    expected: ProductStatus | None = None,
) -> bool:
    """Mark a job FAILED (unless final already, or not in `expected`); True if it was."""
    with catalog.engine.begin() as conn:
        job = _locked(conn, job_id)
        status = ProductStatus(job["status"])
        if status in TERMINAL or (expected is not None and status is not expected):
            return False
        updates = {"error_code": ProductError(code).value, "error_message": message[:2000]}
        _transition(catalog, conn, job, ProductStatus.FAILED, updates)
        return True


def _locked(conn: sa.Connection, job_id: str) -> dict[str, Any]:
    row = (
        conn.execute(sa.select(product_jobs).where(product_jobs.c.id == job_id).with_for_update())
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no product job {job_id!r}")
    return dict(row)


def _transition(
    catalog: Catalog,
    conn: sa.Connection,
    job: dict[str, Any],
    new: ProductStatus,
    updates: dict[str, Any],
) -> dict[str, Any]:
    """Validate and write one change of status; enqueue the new stage's queue job when the
    job runs on the built-in providers."""
    current = ProductStatus(job["status"])
    check_transition(current, new)
    after = {**job, **updates}
    check_fields(new, after)
    values: dict[str, Any] = {**updates, "status": new.value, "updated_at": db_now()}
    if new is ProductStatus.QUEUED:
        values["started_at"] = db_now()
    if new in TERMINAL:
        values["completed_at"] = db_now()
    if job["mode"] == "builtin" and new in STAGE_JOB_TYPES:
        values["stage_job_id"] = catalog.queue.enqueue(
            STAGE_JOB_TYPES[new],
            {"productJobId": job["id"]},
            conn=conn,
            priority=STAGE_PRIORITY + list(STAGE_JOB_TYPES).index(new),
            idempotency_key=f"product:{job['id']}:{new.value}",
        ).id
    changed = conn.execute(
        product_jobs.update()
        .where(product_jobs.c.id == job["id"], product_jobs.c.status == current.value)
        .values(**values)
    )
    if changed.rowcount != 1:
        raise InvalidTransition("the job changed while it was being updated")
    _announce(catalog, conn, after, new)
    return {**after, "status": new.value}


def _announce(
    catalog: Catalog, conn: sa.Connection, job: Mapping[str, Any], status: ProductStatus
) -> None:
    """A `product` event on the live stream, committed with the change it tells of."""
    data = {"productJobId": job["id"], "sku": job["sku"], "theme": job["theme"]}
    if status is ProductStatus.FAILED:
        data["errorCode"] = job.get("error_code")
    catalog.queue.store.record_event(conn, "product", data, status.value)


def _record_costs(conn: sa.Connection, job_id: str, costs: Iterable[Cost]) -> None:
    rows = [
        {
            "product_job_id": job_id,
            "stage": cost.stage.value,
            "provider": cost.provider,
            "nano_usd": to_nano_usd(cost.amount_usd),
        }
        for cost in costs
    ]
    if rows:
        conn.execute(product_costs.insert().values(created_at=db_now()), rows)


# ---- review: a person decides on a doubtful cut-out -----------------------------------------


class ReviewAction(StrEnum):
    ACCEPT = "accept"  # publish it as it is
    REJECT = "reject"  # fail the job (REJECTED): nothing is published
    RERUN = "rerun"  # cut the product out again, with the method asked for


def review(
    catalog: Catalog,
    job_id: str,
    action: ReviewAction,
    method: str | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Carry out a reviewer's decision on a job in NEEDS_REVIEW (InvalidTransition when
    it is not there: decided already, or never held)."""
    with catalog.engine.begin() as conn:
        job = _locked(conn, job_id)
        if job["status"] != ProductStatus.NEEDS_REVIEW.value:
            raise InvalidTransition(f"the job is {job['status']}, not NEEDS_REVIEW")
        decided: dict[str, Any] = {"reviewed_at": db_now()}
        if action is ReviewAction.ACCEPT:
            decided["review_decision"] = "accepted"
            new = ProductStatus.PUBLISHING
        elif action is ReviewAction.REJECT:
            message = "the cut-out was rejected in review" + (f": {note}" if note else "")
            decided |= {
                "review_decision": "rejected",
                "error_code": ProductError.REJECTED.value,
                "error_message": message[:2000],
            }
            new = ProductStatus.FAILED
        else:
            decided |= {"review_decision": "rerun", "requested_method": method}
            new = ProductStatus.SEGMENTING
        _transition(catalog, conn, job, new, decided)
    return get_job(catalog, job_id)


# ---- reading ---------------------------------------------------------------------------------


def get_job(catalog: Catalog, job_id: str) -> dict[str, Any]:
    with read_connection(catalog.engine) as conn:
        row = conn.execute(sa.select(product_jobs).where(product_jobs.c.id == job_id)).mappings()
        found = row.first()
    if found is None:
        raise NotFound(f"no product job {job_id!r}")
    return dict(found)


def list_jobs(
    catalog: Catalog,
    *,
    status: str | None = None,
    sku: str | None = None,
    theme: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Jobs newest first, and how many match in all."""
    where = []
    if status:
        where.append(product_jobs.c.status == status)
    if sku:
        where.append(product_jobs.c.sku == sku)
    if theme:
        where.append(product_jobs.c.theme == theme)
    query = (
        sa.select(product_jobs)
        .where(*where)
        .order_by(product_jobs.c.created_at.desc(), product_jobs.c.id)
        .limit(limit)
        .offset(offset)
    )
    count = sa.select(sa.func.count()).select_from(product_jobs).where(*where)
    with read_connection(catalog.engine) as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
        return rows, int(conn.execute(count).scalar_one())


def costs_of(catalog: Catalog, job_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each job's provider calls with their cost, oldest first."""
    found: dict[str, list[dict[str, Any]]] = {job_id: [] for job_id in job_ids}
    if not job_ids:
        return found
    query = (
        sa.select(product_costs)
        .where(product_costs.c.product_job_id.in_(job_ids))
        .order_by(product_costs.c.id)
    )
    with read_connection(catalog.engine) as conn:
        for row in conn.execute(query).mappings():
            found[row["product_job_id"]].append(dict(row))
    return found


def stats(catalog: Catalog) -> dict[str, Any]:
    """Totals for dashboards: jobs by status and failure code, cost, mean time to DONE,
    the failure rate of finished jobs, and that of cut-outs (see NOT_CUT_OUT)."""
    done = ProductStatus.DONE.value
    with read_connection(catalog.engine) as conn:
        by_status = {
            status: int(n)
            for status, n in conn.execute(
                sa.select(product_jobs.c.status, sa.func.count()).group_by(product_jobs.c.status)
            )
        }
        nano = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(product_costs.c.nano_usd), 0)))
        total_nano = int(nano.scalar_one())
        failures = {
            code: int(n)
            for code, n in conn.execute(
                sa.select(product_jobs.c.error_code, sa.func.count())
                .where(product_jobs.c.status == ProductStatus.FAILED.value)
                .group_by(product_jobs.c.error_code)
            )
        }
        average = conn.execute(
            sa.select(
                sa.func.avg(
                    db_seconds_between(product_jobs.c.created_at, product_jobs.c.completed_at)
                )
            ).where(product_jobs.c.status == done)
        ).scalar()
    finished = by_status.get(done, 0) + by_status.get(ProductStatus.FAILED.value, 0)
    failed = by_status.get(ProductStatus.FAILED.value, 0)
    never_cut = sum(failures.get(code.value, 0) for code in NOT_CUT_OUT)
    cut_out_failed = sum(failures.get(code.value, 0) for code in CUT_OUT_FAILURES)
    cut_out = finished - never_cut
    return {
        "total": sum(by_status.values()),
        "byStatus": {status.value: by_status.get(status.value, 0) for status in ProductStatus},
        "failuresByCode": {code.value: failures.get(code.value, 0) for code in ProductError},
        "totalCostUsd": from_nano_usd(total_nano),
        "avgDurationS": None if average is None else round(float(average), 3),
        "failureRate": round(failed / finished, 4) if finished else 0.0,
        "cutoutFailureRate": round(cut_out_failed / cut_out, 4) if cut_out > 0 else 0.0,
    }


def artifact_keys(job: Mapping[str, Any]) -> list[str]:
    """Every blob the job made or fetched (published copies are not its to remove)."""
    keys = [job.get(name) for name in ("original_key", "mask_key", "cutout_key")]
    for name in ("bg_keys", "composite_keys", "thumb_keys"):
        keys.extend(job.get(name) or [])
    return [key for key in keys if key]


def cleanup(catalog: Catalog, older_than_days: float) -> int:
    """Delete DONE and FAILED jobs finished more than `older_than_days` ago, with their
    artifacts, costs and webhook deliveries; the number of jobs deleted."""
    cutoff = db_now(-timedelta(days=older_than_days).total_seconds())
    with catalog.engine.begin() as conn:
        rows = [
            dict(r)
            for r in conn.execute(
                sa.select(product_jobs)
                .where(
                    product_jobs.c.status.in_([s.value for s in TERMINAL]),
                    product_jobs.c.completed_at < cutoff,
                )
                .with_for_update()
            ).mappings()
        ]
        ids = [row["id"] for row in rows]
        if ids:
            conn.execute(product_costs.delete().where(product_costs.c.product_job_id.in_(ids)))
            conn.execute(
                webhook_deliveries.delete().where(webhook_deliveries.c.product_job_id.in_(ids))
            )
            conn.execute(product_jobs.delete().where(product_jobs.c.id.in_(ids)))
    for row in rows:  # after the commit: a rollback must not leave rows without files
        for key in artifact_keys(row):
            catalog.blobs.delete(key)
    return len(rows)


def stalled_candidates(catalog: Catalog) -> list[dict[str, Any]]:
    """Built-in jobs in a stage, with the queue job that should be carrying them."""
    query = sa.select(product_jobs.c.id, product_jobs.c.status, product_jobs.c.stage_job_id).where(
        product_jobs.c.mode == "builtin",
        product_jobs.c.status.in_([s.value for s in STAGE_JOB_TYPES]),
        product_jobs.c.stage_job_id.is_not(None),
    )
    with read_connection(catalog.engine) as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


# ---- external mode: an outside worker runs the stages ------------------------------------------


class InvalidReport(Invalid):
    """An external worker's report names blobs that are not the job's or do not exist."""

    code = "INVALID_REPORT"


@dataclass(frozen=True)
class Report:
    """What an external worker reports after one stage (reference 004's callbacks)."""

    stage: ProductStatus  # the status the stage runs in
    updates: dict[str, Any]  # product_jobs columns: keys or media ids
    cost: Cost | None = None


# Each callback: the statuses it may come from, and the status it leads to.
REPORT_STEPS: dict[ProductStatus, tuple[tuple[ProductStatus, ...], ProductStatus]] = {
    ProductStatus.SEGMENTING: (
        (ProductStatus.QUEUED, ProductStatus.SEGMENTING),
        ProductStatus.BG_GENERATING,
    ),
    ProductStatus.BG_GENERATING: ((ProductStatus.BG_GENERATING,), ProductStatus.COMPOSITING),
    ProductStatus.COMPOSITING: ((ProductStatus.COMPOSITING,), ProductStatus.PUBLISHING),
    ProductStatus.PUBLISHING: ((ProductStatus.PUBLISHING,), ProductStatus.DONE),
}


def artifact_prefix(job: Mapping[str, Any]) -> str:
    """Where a job's artifacts live, whoever makes them: `products/<sku>/<job id>/`."""
    return f"products/{sku_folder(job['sku'])}/{job['id']}/"


def sku_folder(sku: str) -> str:
    """The SKU as a folder name no other SKU shares: the SKU itself when it is a safe
    name already, else its safe characters and a digest of the whole SKU (`TEE/RED/M` →
    `TEE-RED-M~1c5f…`). A safe name never holds `~`, so the two kinds never meet."""
    cleaned = safe_name(sku.replace("/", "-").replace("\\", "-"), "sku")
    if cleaned == sku:
        return sku
    return f"{cleaned[:120]}~{hashlib.sha256(sku.encode()).hexdigest()[:12]}"


def start(catalog: Catalog, job_id: str) -> dict[str, Any]:
    """NEW → QUEUED for an external worker; the original is to be written to the job's
    `original` key. Starting a job that is QUEUED already changes nothing."""
    with catalog.engine.begin() as conn:
        job = _locked(conn, job_id)
        if job["status"] == ProductStatus.QUEUED.value:
            return job
        if job["mode"] != "external":
            raise InvalidTransition("the job runs on the built-in providers; it started itself")
        return _transition(
            catalog,
            conn,
            job,
            ProductStatus.QUEUED,
            {"original_key": artifact_prefix(job) + "original"},
        )


def report(catalog: Catalog, job_id: str, done: Report) -> dict[str, Any]:
    """Record an external worker's stage: validated, and idempotent (the same report
    again, once the job moved on, changes nothing; a different one is refused)."""
    sources, target = REPORT_STEPS[done.stage]
    with catalog.engine.begin() as conn:
        job = _locked(conn, job_id)
        if job["mode"] != "external":
            raise InvalidTransition(
                "the job runs on the built-in providers, not an external worker"
            )
        status = ProductStatus(job["status"])
        if status not in sources:
            if all(job.get(name) == value for name, value in done.updates.items()):
                return job  # a retried callback: already recorded
            expected = " or ".join(s.value for s in sources)
            raise InvalidTransition(f"the job is {status.value}; this report is for {expected}")
        _check_reported_keys(catalog, job, done.updates)
        if status is ProductStatus.QUEUED:
            job = _transition(catalog, conn, job, ProductStatus.SEGMENTING, {})
        _record_costs(conn, job_id, [done.cost] if done.cost else [])
        return _transition(catalog, conn, job, target, done.updates)


def _check_reported_keys(
    catalog: Catalog, job: Mapping[str, Any], updates: Mapping[str, Any]
) -> None:
    prefix = artifact_prefix(job)
    for name, value in updates.items():
        if not name.endswith(("_key", "_keys")):
            continue
        for key in value if isinstance(value, list) else [value]:
            if not isinstance(key, str) or not key.startswith(prefix):
                raise InvalidReport(f"{name}: {key!r} is not under this job's folder {prefix!r}")
            if not catalog.blobs.exists(key):
                raise InvalidReport(f"{name}: nothing was uploaded to {key!r}")


def fail_reported(
    catalog: Catalog, job_id: str, code: ProductError, message: str
) -> dict[str, Any]:
    """An external worker gives up: FAILED with its code. The same failure again changes
    nothing; failing a finished job is refused."""
    with catalog.engine.begin() as conn:
        job = _locked(conn, job_id)
        if job["status"] == ProductStatus.FAILED.value and job["error_code"] == code.value:
            return job
        updates = {"error_code": code.value, "error_message": message[:2000]}
        return _transition(catalog, conn, job, ProductStatus.FAILED, updates)


PRESIGN_KINDS = ("original", "mask", "bg", "composite", "thumb")
MAX_PRESIGN_S = 7 * 86400  # what S3 allows for a presigned URL


def presign_key(
    job: Mapping[str, Any], kind: str, variant: int, aspect: str, kind_type: str
) -> str:
    """The key an external worker writes a `kind` of artifact to: the reference's names
    (`<aspect>_<variant>_<type>`), under the job's folder."""
    prefix, ratio = artifact_prefix(job), aspect.replace(":", "x")
    names = {
        "original": "original",
        "mask": "mask.png",
        "bg": f"bg-{variant}.jpg",
        "composite": f"composite-{ratio}-{variant}-{kind_type}.jpg",
        "thumb": f"thumb-{ratio}-{variant}.jpg",
    }
    return prefix + names[kind]


def presign(
    catalog: Catalog,
    job_id: str,
    kind: str,
    *,
    variant: int = 1,
    aspect: str = "1:1",
    kind_type: str = "master",
    expires_in: int = 3600,
) -> dict[str, Any]:
    """Signed PUT and GET URLs for one of a job's artifacts (presigned on S3, enlarger's
    own on local storage), valid `expires_in` seconds (at most seven days)."""
    job = get_job(catalog, job_id)
    if ProductStatus(job["status"]) in TERMINAL:
        raise InvalidTransition(f"the job is {job['status']}; it takes no more uploads")
    key = presign_key(job, kind, variant, aspect, kind_type)
    return {
        "kind": kind,
        "key": key,
        "putUrl": catalog.blobs.upload_url(key, expires_in),
        "getUrl": catalog.blobs.url(key, expires_in),
        "expiresIn": expires_in,
    }
