"""The product job's state machine (reference 004): statuses, the transitions allowed
between them, the fields each status needs, error codes, descriptions and estimates.

NEW → QUEUED → SEGMENTING → BG_GENERATING → COMPOSITING → PUBLISHING → DONE, and from
any status that is not final, FAILED with an error code. The reference's SHOPIFY_PUSH is
PUBLISHING here: a job may publish to a folder, S3, a webhook or Shopify.

A job whose cut-out is doubtful (low confidence, a product cut off by the frame, a small
photo enlarged a lot) waits after COMPOSITING in NEEDS_REVIEW, where a person accepts it
(→ PUBLISHING), rejects it (→ FAILED, REJECTED) or has it cut out again by another method
(→ SEGMENTING). Nothing doubtful is published unseen.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from itertools import pairwise
from typing import Any

from enlarger.errors import Conflict


class ProductStatus(StrEnum):
    NEW = "NEW"
    QUEUED = "QUEUED"
    SEGMENTING = "SEGMENTING"
    BG_GENERATING = "BG_GENERATING"
    COMPOSITING = "COMPOSITING"
    NEEDS_REVIEW = "NEEDS_REVIEW"
    PUBLISHING = "PUBLISHING"
    DONE = "DONE"
    FAILED = "FAILED"


class ProductError(StrEnum):
    """Why a product job failed: a closed set, so clients can act on the code."""

    DOWNLOAD_FAILED = "DOWNLOAD_FAILED"
    INVALID_IMAGE = "INVALID_IMAGE"
    SEGMENT_FAILED = "SEGMENT_FAILED"
    BG_FAILED = "BG_FAILED"
    COMPOSITE_FAILED = "COMPOSITE_FAILED"
    PUBLISH_FAILED = "PUBLISH_FAILED"
    PROVIDER_TIMEOUT = "PROVIDER_TIMEOUT"
    RATE_LIMITED = "RATE_LIMITED"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    REJECTED = "REJECTED"  # a reviewer turned the cut-out down
    INTERNAL_ERROR = "INTERNAL_ERROR"


TERMINAL = frozenset({ProductStatus.DONE, ProductStatus.FAILED})
PIPELINE = (
    ProductStatus.NEW,
    ProductStatus.QUEUED,
    ProductStatus.SEGMENTING,
    ProductStatus.BG_GENERATING,
    ProductStatus.COMPOSITING,
    ProductStatus.PUBLISHING,
    ProductStatus.DONE,
)
TRANSITIONS: dict[ProductStatus, frozenset[ProductStatus]] = {
    status: frozenset({following, ProductStatus.FAILED}) for status, following in pairwise(PIPELINE)
}
TRANSITIONS[ProductStatus.COMPOSITING] |= {ProductStatus.NEEDS_REVIEW}
TRANSITIONS[ProductStatus.NEEDS_REVIEW] = frozenset(
    {ProductStatus.PUBLISHING, ProductStatus.SEGMENTING, ProductStatus.FAILED}
)
TRANSITIONS[ProductStatus.DONE] = frozenset()
TRANSITIONS[ProductStatus.FAILED] = frozenset()

# What a job must carry to be in each status (column names of `product_jobs`).
REQUIRED_FIELDS: dict[ProductStatus, tuple[str, ...]] = {
    ProductStatus.NEW: ("sku", "image_url", "sha256", "theme"),
    ProductStatus.QUEUED: ("sku", "image_url", "sha256", "theme"),
    ProductStatus.SEGMENTING: ("original_key",),
    ProductStatus.BG_GENERATING: ("original_key", "mask_key"),
    ProductStatus.COMPOSITING: ("mask_key", "bg_keys"),
    ProductStatus.NEEDS_REVIEW: ("composite_keys", "thumb_keys"),
    ProductStatus.PUBLISHING: ("composite_keys", "thumb_keys"),
    ProductStatus.DONE: ("composite_keys", "media_ids"),
    ProductStatus.FAILED: ("error_code", "error_message"),
}

DESCRIPTIONS: dict[ProductStatus, str] = {
    ProductStatus.NEW: "Received; waiting to be started",
    ProductStatus.QUEUED: "Queued; fetching the original image",
    ProductStatus.SEGMENTING: "Cutting the product out of its background",
    ProductStatus.BG_GENERATING: "Making the backgrounds",
    ProductStatus.COMPOSITING: "Placing the product on its backgrounds",
    ProductStatus.NEEDS_REVIEW: "Held for review: the cut-out may be wrong",
    ProductStatus.PUBLISHING: "Publishing the composites",
    ProductStatus.DONE: "Done: the composites are published",
    ProductStatus.FAILED: "Failed",
}

# Typical seconds each status takes with the built-in providers (an external worker's
# stages take what it takes); the remaining estimate sums the statuses still ahead.
ESTIMATED_SECONDS: dict[ProductStatus, float] = {
    ProductStatus.NEW: 0.0,
    ProductStatus.QUEUED: 2.0,
    ProductStatus.SEGMENTING: 3.0,
    ProductStatus.BG_GENERATING: 1.0,
    ProductStatus.COMPOSITING: 4.0,
    ProductStatus.NEEDS_REVIEW: 0.0,  # waits for a person: not counted
    ProductStatus.PUBLISHING: 2.0,
    ProductStatus.DONE: 0.0,
    ProductStatus.FAILED: 0.0,
}


class InvalidTransition(Conflict):
    """The change is not allowed from the job's status, or the job lacks a field the new
    status needs; `code` is INVALID_TRANSITION."""

    code = ProductError.INVALID_TRANSITION


def check_transition(current: ProductStatus, new: ProductStatus) -> None:
    if current in TERMINAL:
        raise InvalidTransition(f"the job is {current.value}, which is final")
    if new not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current]))
        raise InvalidTransition(f"{current.value} cannot become {new.value} (only {allowed})")


def missing_fields(status: ProductStatus, job: Mapping[str, Any]) -> list[str]:
    """The fields `status` needs that `job` (its row after the change) lacks."""
    return [name for name in REQUIRED_FIELDS[status] if job.get(name) in (None, "", [])]


def check_fields(status: ProductStatus, job: Mapping[str, Any]) -> None:
    missing = missing_fields(status, job)
    if missing:
        raise InvalidTransition(f"a {status.value} job needs {', '.join(missing)}")


def remaining_seconds(status: ProductStatus) -> float:
    """A rough time to DONE from the start of `status` (0 for final statuses)."""
    if status in TERMINAL:
        return 0.0
    if status is ProductStatus.NEEDS_REVIEW:
        status = ProductStatus.PUBLISHING  # once accepted
    ahead = PIPELINE[PIPELINE.index(status) :]
    return sum(ESTIMATED_SECONDS[s] for s in ahead)


class StageFailed(Exception):
    """A stage of the pipeline could not do its work: the code the job fails with, and
    whether trying again later may help (a timeout, a rate limit) or not (a 404)."""

    def __init__(self, code: ProductError, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
