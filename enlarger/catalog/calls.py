"""HTTP calls to the services a publisher talks to, with failures mapped to the product
job's error codes: a timeout is PROVIDER_TIMEOUT, 429 is RATE_LIMITED, a 5xx or a broken
connection may be retried, any other refusal is PUBLISH_FAILED for good."""

from __future__ import annotations

from typing import Any

import httpx

from enlarger.catalog.states import ProductError, StageFailed


def post(client: httpx.Client | None, url: str, what: str, **request: Any) -> httpx.Response:
    """POST with `client` (or a one-off request); StageFailed naming `what` if the call
    itself fails. The answer's status is the caller's to judge (see `check_answer`)."""
    try:
        if client is None:
            return httpx.post(url, **request)
        return client.post(url, **request)
    except httpx.TimeoutException:
        raise StageFailed(
            ProductError.PROVIDER_TIMEOUT, f"{what} did not answer in time", retryable=True
        ) from None
    except httpx.HTTPError as exc:
        raise StageFailed(
            ProductError.PUBLISH_FAILED, f"cannot reach {what}: {exc}", retryable=True
        ) from None


def check_answer(response: httpx.Response, what: str) -> None:
    if response.status_code == 429:
        raise StageFailed(ProductError.RATE_LIMITED, f"{what} answered 429", retryable=True)
    if not response.is_success:
        raise StageFailed(
            ProductError.PUBLISH_FAILED,
            f"{what} answered {response.status_code}",
            retryable=response.status_code >= 500,
        )
