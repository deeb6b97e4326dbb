"""Publishers: where finished composites go (setting `product_publishers`).

- `folder`: a copy of each composite and a `manifest.json` under
  `<sku>/<job id>/` of `product_publish_url` (a `file://` folder or an `s3://` prefix;
  by default `products/published/` of enlarger's own storage). Writing it again writes
  the same files, so a retried publish is harmless.
- `webhook`: a Standard Webhooks signed POST of the job's composites to
  `product_webhook_url`; its `webhook-id` is fixed per job, so a receiver that sees a
  retry can tell it is one.
- `shopify`: media on the product whose variant has the SKU, through the Admin GraphQL
  API (see `enlarger.catalog.shopify`).

Each returns the ids it published under (`mediaIds`), details for the job, and a cost.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from enlarger.catalog import calls, shopify
from enlarger.catalog.catalog import Catalog
from enlarger.catalog.product_jobs import sku_folder
from enlarger.catalog.webhooks import secret_key, sign_standard
from enlarger.storage import BlobStore, open_blob_store, safe_name

DEFAULT_PUBLISH_PREFIX = "products/published/"
WEBHOOK_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Published:
    media_ids: list[str]
    details: dict[str, Any]
    cost_usd: Decimal = Decimal(0)


def composites_of(job: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's composites with their names (an external worker gives keys only)."""
    if job.get("composites"):
        return list(job["composites"])
    thumbs = job.get("thumb_keys") or []
    return [
        {
            "key": key,
            "name": key.rsplit("/", 1)[-1].rsplit(".", 1)[0],
            "thumbKey": thumbs[n] if n < len(thumbs) else None,
        }
        for n, key in enumerate(job["composite_keys"])
    ]


def _folder_target(catalog: Catalog) -> tuple[BlobStore, str]:
    url = catalog.settings.product_publish_url
    if not url:
        return catalog.blobs, DEFAULT_PUBLISH_PREFIX
    settings = catalog.settings
    blobs = open_blob_store(
        url, s3_endpoint_url=settings.s3_endpoint_url, timeout_s=settings.storage_timeout_seconds
    )
    return blobs, ""


def publish_to_folder(catalog: Catalog, job: dict[str, Any]) -> Published:
    target, prefix = _folder_target(catalog)
    base = f"{prefix}{sku_folder(job['sku'])}/{job['id']}/"
    files = []
    for item in composites_of(job):
        extension = item["key"].rsplit(".", 1)[-1]
        key = f"{base}{safe_name(item['name'])}.{extension}"
        with catalog.blobs.local_copy(item["key"]) as path:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            target.put_file(key, path)
        files.append(
            {
                "key": key,
                "name": item["name"],
                "width": item.get("width"),
                "height": item.get("height"),
                "sha256": digest,
            }
        )
    manifest = {
        "jobId": job["id"],
        "sku": job["sku"],
        "theme": job["theme"],
        "sourceSha256": job["sha256"],
        "publishedAt": datetime.now(UTC).isoformat(),
        "files": files,
    }
    manifest_key = f"{base}manifest.json"
    target.put_bytes(manifest_key, json.dumps(manifest, indent=2).encode())
    return Published(
        [f["key"] for f in files],
        {"manifestKey": manifest_key, "location": target.location(manifest_key)},
    )


def publish_to_webhook(catalog: Catalog, job: dict[str, Any]) -> Published:
    settings = catalog.settings
    ttl = settings.url_expiry_seconds
    body = json.dumps(
        {
            "type": "product.published",
            "data": {
                "jobId": job["id"],
                "sku": job["sku"],
                "theme": job["theme"],
                "sourceSha256": job["sha256"],
                "composites": [
                    {**item, "url": catalog.blobs.url(item["key"], ttl)}
                    for item in composites_of(job)
                ],
            },
        }
    ).encode()
    webhook_id = f"msg_{job['id']}_published"
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_standard(
            secret_key(settings.product_webhook_secret), webhook_id, timestamp, body
        ),
    }
    receiver = "the webhook receiver"
    response = calls.post(
        None,
        settings.product_webhook_url,
        receiver,
        content=body,
        headers=headers,
        timeout=WEBHOOK_TIMEOUT_S,
    )
    calls.check_answer(response, receiver)
    return Published([webhook_id], {"webhookId": webhook_id, "status": response.status_code})


def publish_to_shopify(catalog: Catalog, job: dict[str, Any]) -> Published:
    settings = catalog.settings
    composites = []
    for item in composites_of(job):
        with catalog.blobs.local_copy(item["key"]) as path:
            composites.append((item["name"], path.read_bytes()))
    client = shopify.ShopifyClient(
        settings.shopify_shop, settings.shopify_access_token, settings.shopify_api_version
    )
    try:
        media_ids = shopify.publish(client, job["id"], job["sku"], composites)
    finally:
        client.close()
    return Published(media_ids, {"mediaIds": media_ids, "throttled": client.throttled})


PUBLISHERS: dict[str, Callable[[Catalog, dict[str, Any]], Published]] = {
    "folder": publish_to_folder,
    "webhook": publish_to_webhook,
    "shopify": publish_to_shopify,
}
