"""The Shopify publisher against a local server that answers as Shopify's Admin GraphQL
API documents: access-token check, a query cost bucket that answers THROTTLED when it
runs dry, staged uploads taken as a form POST, productCreateMedia. A publish retried
after a lost answer never adds the same media twice."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from enlarger.bootstrap import build_services
from enlarger.catalog.catalog import Catalog
from enlarger.catalog.publish import publish_to_shopify
from enlarger.catalog.states import ProductError, StageFailed
from tests.conftest import FAST

TOKEN = "shpat_test_token"
NAMES = ["1x1", "4x5", "3x4", "16x9", "shopify", "amazon-main"]


class FakeShopify:
    """One product (variant SKU-1); costs 2 points a query and 20 a mutation, from a
    bucket of 21 restoring 200 points a second."""

    def __init__(self) -> None:
        self.media: list[dict[str, str]] = []
        self.uploads: dict[str, bytes] = {}
        self.staged = 0
        self.throttled = 0
        self.lose_answer_of_media = -1  # create the nth media, then answer 502
        self.available, self.at = 21.0, time.monotonic()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                if self.path.startswith("/staged/"):
                    file = re.search(
                        rb"filename=\"[^\"]+\"\r\n[^\r]*\r\n\r\n(.*)\r\n--", body, re.S
                    )
                    fake.uploads[self.path] = file.group(1) if file else b""
                    self._answer(201, b"")
                    return
                if self.headers.get("X-Shopify-Access-Token") != TOKEN:
                    self._answer(401, b'{"errors":"[API] Invalid API key or access token"}')
                    return
                status, answer = fake.graphql(json.loads(body), self.server.server_address[1])
                self._answer(status, json.dumps(answer).encode())

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def graphql(self, request: dict[str, Any], port: int) -> tuple[int, dict[str, Any]]:
        query, variables = request["query"], request.get("variables") or {}
        cost = 20 if query.lstrip().startswith("mutation") else 2
        with self.lock:
            now = time.monotonic()
            # another app spends from the same bucket: at most 10 points come back
            # between two requests, however slowly they come (a busy machine), so two
            # mutations in a row always meet a throttle
            refill = min((now - self.at) * 200.0, 10.0)
            self.available = min(21.0, self.available + refill)
            self.at = now
            if self.available < cost:
                self.throttled += 1
                return 200, {
                    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                    "extensions": self._cost(cost),
                }
            self.available -= cost
            return self._resolve(query, variables, cost, port)

    def _cost(self, cost: int) -> dict[str, Any]:
        status = {
            "maximumAvailable": 21.0,
            "currentlyAvailable": self.available,
            "restoreRate": 200.0,
        }
        return {"cost": {"requestedQueryCost": cost, "throttleStatus": status}}

    def _resolve(
        self, query: str, variables: dict[str, Any], cost: int, port: int
    ) -> tuple[int, dict[str, Any]]:
        if "productVariants" in query:
            edges = []
            if variables["query"] == "sku:SKU-1":
                edges = [{"node": {"sku": "SKU-1", "product": {"id": "gid://shopify/Product/1"}}}]
            data: dict[str, Any] = {"productVariants": {"edges": edges}}
        elif "ProductMedia" in query:
            edges = [{"node": {"id": m["id"], "alt": m["alt"]}} for m in self.media]
            data = {"product": {"media": {"edges": edges}}}
        elif "stagedUploadsCreate" in query:
            self.staged += 1
            path = f"/staged/{self.staged}"
            target = {
                "url": f"http://127.0.0.1:{port}{path}",
                "resourceUrl": f"http://127.0.0.1:{port}{path}",
                "parameters": [{"name": "key", "value": f"tmp/{self.staged}/file.jpg"}],
            }
            data = {"stagedUploadsCreate": {"stagedTargets": [target], "userErrors": []}}
        else:  # productCreateMedia
            medium = variables["media"][0]
            path = medium["originalSource"].split(str(port), 1)[1]
            if path not in self.uploads:
                errors = [{"field": ["media"], "message": "originalSource was not uploaded"}]
                return 200, {
                    "data": {"productCreateMedia": {"media": [], "mediaUserErrors": errors}}
                }
            created = {
                "id": f"gid://shopify/MediaImage/{len(self.media) + 1}",
                "alt": medium["alt"],
            }
            self.media.append(created)
            if len(self.media) == self.lose_answer_of_media:
                return 502, {"errors": "Bad gateway"}
            data = {"productCreateMedia": {"media": [created], "mediaUserErrors": []}}
        return 200, {"data": data, "extensions": self._cost(cost)}


@pytest.fixture
def shop() -> Iterator[FakeShopify]:
    fake = FakeShopify()
    yield fake
    fake.server.shutdown()


def _catalog(tmp_path: Path, shop: FakeShopify, token: str = TOKEN) -> Catalog:
    settings = FAST.replace(
        data_dir=tmp_path / "data",
        product_publishers="shopify",
        shopify_shop=shop.url,
        shopify_access_token=token,
    )
    return build_services(settings).catalog


def _job(catalog: Catalog, sku: str = "SKU-1") -> dict[str, Any]:
    keys = []
    for name in NAMES:
        key = f"products/{sku}/job1/composite-{name}.jpg"
        catalog.blobs.put_bytes(key, f"jpeg of {name}".encode())
        keys.append(key)
    composites = [{"key": k, "name": n} for k, n in zip(keys, NAMES, strict=True)]
    return {"id": "job1", "sku": sku, "composites": composites, "composite_keys": keys}


def test_composites_become_product_media_once_paced_by_the_cost_bucket(
    tmp_path: Path, shop: FakeShopify
) -> None:
    catalog = _catalog(tmp_path, shop)
    job = _job(catalog)
    published = publish_to_shopify(catalog, job)
    assert published.media_ids == [f"gid://shopify/MediaImage/{n}" for n in range(1, 7)]
    assert sorted(shop.uploads.values()) == sorted(f"jpeg of {n}".encode() for n in NAMES)
    assert all("[enlarger:job1:" in m["alt"] for m in shop.media)
    # 6 x (20 + 20) points from a bucket of 21: the first mutation after the queries
    # (expected to cost what a query did) is throttled and waits; the rest are paced
    assert shop.throttled >= 1 and published.details["throttled"] == shop.throttled

    again = publish_to_shopify(catalog, job)  # a retried stage
    assert again.media_ids == published.media_ids
    assert len(shop.media) == 6 and shop.staged == 6


def test_a_lost_answer_then_a_retry_adds_no_duplicate(tmp_path: Path, shop: FakeShopify) -> None:
    catalog = _catalog(tmp_path, shop)
    job = _job(catalog)
    shop.lose_answer_of_media = 3
    with pytest.raises(StageFailed, match="502") as lost:
        publish_to_shopify(catalog, job)
    assert lost.value.retryable and len(shop.media) == 3
    retried = publish_to_shopify(catalog, job)
    assert len(shop.media) == 6 and len(set(retried.media_ids)) == 6
    assert [m["alt"].split(":")[-1] for m in shop.media] == [f"{n}]" for n in NAMES]


def test_shopify_refusals_fail_with_a_reason(tmp_path: Path, shop: FakeShopify) -> None:
    with pytest.raises(StageFailed, match="shopify_access_token") as denied:
        publish_to_shopify(_catalog(tmp_path, shop, token="wrong"), _job(_catalog(tmp_path, shop)))
    assert denied.value.code is ProductError.PUBLISH_FAILED and not denied.value.retryable
    catalog = _catalog(tmp_path, shop)
    with pytest.raises(StageFailed, match="no Shopify product"):
        publish_to_shopify(catalog, _job(catalog, sku="SKU-404"))
    assert shop.media == []
