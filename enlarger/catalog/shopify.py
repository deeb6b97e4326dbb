"""The Shopify publisher: composites become media of the product whose variant has the
job's SKU, through the Admin GraphQL API.

For each composite: `stagedUploadsCreate` gives an upload target, the JPEG is POSTed to
it as a form, and `productCreateMedia` attaches the uploaded file to the product. Each
media's alt text carries a marker (`[enlarger:<job id>:<name>]`); before creating
anything the product's media are read, and a composite whose marker is already there is
not sent again, so a publish retried after a crash (or a lost answer) never adds the
same media twice.

Requests are paced by Shopify's cost bucket: every answer reports how many points are
available and how fast they come back, and the next request waits until its expected
cost is there; a THROTTLED answer waits for the points it asked for and tries again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from enlarger.catalog import calls
from enlarger.catalog.states import ProductError, StageFailed

TIMEOUT_S = 30.0
MAX_THROTTLED_TRIES = 8

FIND_PRODUCT = """
query FindProduct($query: String!) {
  productVariants(first: 1, query: $query) { edges { node { sku product { id } } } }
}"""
PRODUCT_MEDIA = """
query ProductMedia($id: ID!) {
  product(id: $id) { media(first: 250) { edges { node { id alt } } } }
}"""
STAGE_UPLOAD = """
mutation StageUpload($input: [StagedUploadInput!]!) {
  stagedUploadsCreate(input: $input) {
    stagedTargets { url resourceUrl parameters { name value } }
    userErrors { field message }
  }
}"""
CREATE_MEDIA = """
mutation CreateMedia($productId: ID!, $media: [CreateMediaInput!]!) {
  productCreateMedia(productId: $productId, media: $media) {
    media { id alt }
    mediaUserErrors { field message }
  }
}"""


@dataclass
class CostBucket:
    """What Shopify last said about the query cost bucket."""

    available: float = 1000.0
    maximum: float = 1000.0
    restore_rate: float = 50.0
    at: float = field(default_factory=time.monotonic)
    last_cost: float = 0.0

    def wait_for(self, cost: float) -> float:
        """Seconds until `cost` points are back in the bucket."""
        now = time.monotonic()
        estimate = min(self.maximum, self.available + (now - self.at) * self.restore_rate)
        return max(0.0, (cost - estimate) / self.restore_rate)

    def update(self, extensions: dict[str, Any]) -> None:
        cost = extensions.get("cost") or {}
        status = cost.get("throttleStatus") or {}
        if status:
            self.available = float(status["currentlyAvailable"])
            self.maximum = float(status["maximumAvailable"])
            self.restore_rate = float(status["restoreRate"]) or self.restore_rate
            self.at = time.monotonic()
        if "requestedQueryCost" in cost:
            self.last_cost = float(cost["requestedQueryCost"])


class ShopifyClient:
    def __init__(self, shop: str, token: str, api_version: str) -> None:
        base = shop.rstrip("/") if shop.startswith(("http://", "https://")) else f"https://{shop}"
        self.endpoint = f"{base}/admin/api/{api_version}/graphql.json"
        self.http = httpx.Client(
            headers={"X-Shopify-Access-Token": token, "Content-Type": "application/json"},
            timeout=TIMEOUT_S,
        )
        self.bucket = CostBucket()
        self.throttled = 0  # how many THROTTLED answers were waited out

    def close(self) -> None:
        self.http.close()

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        for _ in range(MAX_THROTTLED_TRIES):
            time.sleep(self.bucket.wait_for(self.bucket.last_cost))
            answer = self._post(query, variables)
            self.bucket.update(answer.get("extensions") or {})
            errors = answer.get("errors") or []
            if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
                self.throttled += 1
                continue  # the bucket now says how long to wait
            if errors:
                messages = "; ".join(str(e.get("message")) for e in errors)
                raise StageFailed(ProductError.PUBLISH_FAILED, f"Shopify refused: {messages}")
            return dict(answer["data"])
        raise StageFailed(
            ProductError.RATE_LIMITED, "Shopify kept throttling the requests", retryable=True
        )

    def _post(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        payload = {"query": query, "variables": variables}
        response = calls.post(self.http, self.endpoint, "Shopify", json=payload)
        if response.status_code == 429:
            wait = float(response.headers.get("retry-after", "1") or 1)
            time.sleep(min(wait, 10.0))
            return {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}
        if response.status_code in (401, 403):
            raise StageFailed(
                ProductError.PUBLISH_FAILED,
                f"Shopify answered {response.status_code}: check shopify_access_token",
            )
        calls.check_answer(response, "Shopify")
        return dict(response.json())

    def stage_upload(self, filename: str, data: bytes) -> str:
        """Upload bytes to a staged target; its resource URL for productCreateMedia."""
        staged = self.graphql(
            STAGE_UPLOAD,
            {
                "input": [
                    {
                        "filename": filename,
                        "mimeType": "image/jpeg",
                        "resource": "IMAGE",
                        "httpMethod": "POST",
                        "fileSize": str(len(data)),
                    }
                ]
            },
        )["stagedUploadsCreate"]
        _user_errors(staged["userErrors"])
        target = staged["stagedTargets"][0]
        fields = {p["name"]: p["value"] for p in target["parameters"]}
        upload = calls.post(
            None,
            target["url"],
            "the staged upload target",
            data=fields,
            files={"file": (filename, data, "image/jpeg")},
            timeout=TIMEOUT_S,
        )
        calls.check_answer(upload, "the staged upload target")
        return str(target["resourceUrl"])


def _user_errors(errors: list[dict[str, Any]]) -> None:
    if errors:
        messages = "; ".join(str(e.get("message")) for e in errors)
        raise StageFailed(ProductError.PUBLISH_FAILED, f"Shopify refused: {messages}")


def marker(job_id: str, name: str) -> str:
    return f"[enlarger:{job_id}:{name}]"


def publish(
    client: ShopifyClient, job_id: str, sku: str, composites: list[tuple[str, bytes]]
) -> list[str]:
    """Make each (name, JPEG) a media of the SKU's product, once; their media ids."""
    found = client.graphql(FIND_PRODUCT, {"query": f"sku:{sku}"})["productVariants"]["edges"]
    if not found:
        raise StageFailed(
            ProductError.PUBLISH_FAILED, f"no Shopify product has a variant with SKU {sku!r}"
        )
    product_id = found[0]["node"]["product"]["id"]
    media = client.graphql(PRODUCT_MEDIA, {"id": product_id})["product"]["media"]["edges"]
    existing = {node["node"]["alt"] or "": node["node"]["id"] for node in media}
    ids = []
    for name, data in composites:
        tag = marker(job_id, name)
        already = next((mid for alt, mid in existing.items() if tag in alt), None)
        if already is not None:
            ids.append(already)
            continue
        source = client.stage_upload(f"{sku}-{name}.jpg", data)
        created = client.graphql(
            CREATE_MEDIA,
            {
                "productId": product_id,
                "media": [
                    {"originalSource": source, "mediaContentType": "IMAGE", "alt": f"{sku} {tag}"}
                ],
            },
        )["productCreateMedia"]
        _user_errors(created["mediaUserErrors"])
        ids.append(created["media"][0]["id"])
    return ids
