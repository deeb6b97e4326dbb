"""Product images end to end, on both backends: a signed webhook announces a photo
served by a real HTTP server on loopback; a real worker fetches it, cuts the product out,
renders backgrounds and composites and publishes them to a folder with a manifest. Also:
idempotency (same image, same delivery id, concurrent duplicates), the per-SKU limit,
401 for bad signatures, safe fetching, failures with their codes, stats and cleanup."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import pyvips
import sqlalchemy as sa

from bench.product_photos import product_photo
from enlarger.bootstrap import build_services
from enlarger.catalog import pipeline, product_jobs
from enlarger.catalog import stage_jobs as catalog_jobs
from enlarger.catalog.catalog import Catalog
from enlarger.catalog.fetch import FetchLimits, fetch
from enlarger.catalog.publish import publish_to_folder
from enlarger.catalog.states import ProductError, StageFailed
from enlarger.catalog.webhooks import secret_key, sign_standard, verify
from enlarger.db.schema import product_jobs as product_jobs_table
from enlarger.library.library import Library
from enlarger.queue import Worker
from enlarger.storage import open_blob_store
from tests.conftest import BOTH_STACKS, FAST, fetch_is_cut_off, wait_for
from tests.test_cli import invoke

SECRET = "whsec_" + base64.b64encode(b"test secret for product webhooks").decode()
FRAMES = ["1x1", "4x5", "3x4", "16x9", "shopify", "amazon-main"]
SIZES = {
    "1x1": (2048, 2048),
    "4x5": (1638, 2048),
    "3x4": (1536, 2048),
    "16x9": (2048, 1152),
    "shopify": (2048, 2048),
    "amazon-main": (2000, 2000),
}


class ImageHost:
    """A loopback HTTP server serving `files` (path → (content type, bytes))."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, bytes]] = {}
        self.requests: list[str] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host.requests.append(self.path)
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/photo.jpg")
                    self.end_headers()
                    return
                if self.path == "/drip":  # one byte every 0.1 s of a declared 1000
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    for _ in range(1000):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.1)
                    return
                if self.path == "/busy":
                    self.send_response(503)
                    self.end_headers()
                    return
                found = host.files.get(self.path)
                if found is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", found[0])
                self.send_header("Content-Length", str(len(found[1])))
                self.end_headers()
                self.wfile.write(found[1])

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, path: str, data: bytes, content_type: str = "image/jpeg") -> str:
        self.files[path] = (content_type, data)
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def image_host() -> Iterator[ImageHost]:
    host = ImageHost()
    yield host
    host.server.shutdown()


@pytest.fixture
def library_changes(image_host: ImageHost, request: pytest.FixtureRequest) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "webhook_secrets": SECRET,
        "fetch_allow_hosts": f"127.0.0.1:{image_host.port}",
        "image_max_per_sku": 3,
        "product_external_themes": "gradient",
    }
    if request.node.get_closest_marker("flow_only"):
        changes["product_review_below"] = 0.0
    return changes


# a test of how jobs flow (names, folders, uploads, retries), not of the cut-out: review
# off, so a small photo (a fraction of the model's and the matting's work) goes to DONE
flow_only = pytest.mark.flow_only
FLOW_PHOTO_SIDE = 600


def _signed(body: bytes, webhook_id: str = "msg_1") -> dict[str, str]:
    stamp = int(time.time())
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign_standard(secret_key(SECRET), webhook_id, stamp, body),
    }


def _announce(
    client: httpx.Client,
    url: str,
    data: bytes,
    sku: str = "SKU-1",
    webhook_id: str = "msg_1",
    **extra: str,
) -> httpx.Response:
    body = json.dumps(
        {"sku": sku, "imageUrl": url, "sha256": hashlib.sha256(data).hexdigest(), **extra}
    ).encode()
    return client.post("/api/webhooks/images", content=body, headers=_signed(body, webhook_id))


def _settled(client: httpx.Client, job_id: str) -> dict[str, Any] | None:
    job = client.get(f"/api/product-jobs/{job_id}").json()
    return job if job["status"] in ("DONE", "FAILED") else None


# a job waited on runs model cut-outs on a core the other test processes share: past
# pytest's default limit on a loaded machine, within `_waiting_for`'s deadline
pytestmark = [pytest.mark.timeout(400), pytest.mark.usefixtures("matting_compiled")]


def _job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    return client.get(f"/api/product-jobs/{job_id}").json()


def _waiting_for(client: httpx.Client, job_id: str, *statuses: str) -> dict[str, Any]:
    """The job once in one of `statuses`; a cut-out by the model takes a few seconds of
    a core, and a busy machine's test processes share two."""
    return wait_for(
        lambda: (job := _job(client, job_id))["status"] in statuses and job, timeout=300
    )


@BOTH_STACKS
def test_a_signed_webhook_runs_to_done_with_composites_published(
    client: httpx.Client,
    run_worker: Callable[[], Worker],
    image_host: ImageHost,
    library: Library,
) -> None:
    photo = product_photo(3, 1600, 1600)  # smaller, it would be held as enlarged
    url = image_host.add("/photo.jpg", photo.jpeg)
    response = _announce(client, url, photo.jpeg)
    assert response.status_code == 201, response.text
    job_id = response.json()["jobId"]
    assert response.json() == {"jobId": job_id, "status": "created"}
    queued = client.get(f"/api/product-jobs/{job_id}").json()
    assert queued["status"] == "QUEUED" and queued["mode"] == "builtin"
    assert queued["statusDescription"] and queued["estimatedSecondsRemaining"] > 0

    run_worker()
    job = _waiting_for(client, job_id, "DONE", "FAILED", "NEEDS_REVIEW")
    assert job["status"] == "DONE", job
    assert job["errorCode"] is None and job["estimatedSecondsRemaining"] == 0
    assert [c["name"] for c in job["composites"]] == FRAMES
    assert len(job["bgKeys"]) == len(job["thumbKeys"]) == len(job["compositeKeys"]) == 6
    assert job["originalKey"].startswith(f"products/SKU-1/{job_id}/original.jpeg")

    original = client.get(job["urls"]["original"])
    assert original.content == photo.jpeg
    mask = pyvips.Image.new_from_buffer(client.get(job["urls"]["mask"]).content, "")
    alpha = np.ndarray(buffer=mask.write_to_memory(), dtype=np.uint8, shape=(1600, 1600))
    truth = photo.truth >= 128
    assert (
        np.logical_and(alpha >= 128, truth).sum() / np.logical_or(alpha >= 128, truth).sum() >= 0.95
    )
    for composite in job["composites"]:
        image = pyvips.Image.new_from_buffer(client.get(composite["url"]).content, "")
        assert (image.width, image.height) == SIZES[composite["name"]]
        thumb = pyvips.Image.new_from_buffer(client.get(composite["thumbUrl"]).content, "")
        assert max(thumb.width, thumb.height) == 400
    amazon = next(c for c in job["composites"] if c["name"] == "amazon-main")
    pixels = pyvips.Image.new_from_buffer(client.get(amazon["url"]).content, "")
    assert pixels.crop(0, 0, 50, 50).min() == 255 and pixels.crop(1950, 1950, 50, 50).min() == 255

    manifest_key = job["published"]["folder"]["manifestKey"]
    with library.blobs.local_copy(manifest_key) as path:
        manifest = json.loads(path.read_bytes())
    assert manifest["jobId"] == job_id and manifest["sku"] == "SKU-1"
    assert [f["key"] for f in manifest["files"]] == job["mediaIds"]
    for entry in manifest["files"]:
        with library.blobs.local_copy(entry["key"]) as path:
            assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert {c["stage"] for c in job["costs"]} == {
        "SEGMENTING",
        "BG_GENERATING",
        "COMPOSITING",
        "PUBLISHING",
    }
    assert job["costUsd"] == 0 and job["durationS"] > 0
    assert job["cutoutMethod"] == "model+backdrop" and job["confidence"] >= 0.8
    assert job["concerns"] == [] and job["reviewDecision"] is None

    stats = client.get("/api/product-jobs/stats").json()
    assert stats["total"] == 1 and stats["byStatus"]["DONE"] == 1
    assert stats["failureRate"] == 0 and stats["avgDurationS"] > 0

    told = [e for e in library.queue.store.read_events(0, 10_000) if e.kind == "product"]
    assert [(e.status, e.data["productJobId"], e.data["sku"]) for e in told] == [
        (status, job_id, "SKU-1")
        for status in [
            "NEW",
            "QUEUED",
            "SEGMENTING",
            "BG_GENERATING",
            "COMPOSITING",
            "PUBLISHING",
            "DONE",
        ]
    ]


def test_duplicates_and_redeliveries_make_one_job(
    client: httpx.Client, image_host: ImageHost
) -> None:
    data = product_photo(1, 400, 400).jpeg
    url = image_host.add("/a.jpg", data)
    first = _announce(client, url, data, webhook_id="msg_a")
    assert first.status_code == 201
    job_id = first.json()["jobId"]
    again = _announce(client, url, data, webhook_id="msg_b")  # same image, new delivery
    assert (again.status_code, again.json()) == (200, {"jobId": job_id, "status": "duplicate"})
    redelivered = _announce(client, url, b"other bytes", webhook_id="msg_a")  # same delivery
    assert (redelivered.status_code, redelivered.json()["jobId"]) == (200, job_id)
    other_theme = _announce(client, url, data, webhook_id="msg_c", theme="white")
    assert other_theme.status_code == 201 and other_theme.json()["jobId"] != job_id

    second = product_photo(2, 400, 400).jpeg
    url2 = image_host.add("/b.jpg", second)
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda n: _announce(client, url2, second, webhook_id=f"msg_r{n}"), range(8))
        )
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201]
    assert len({a.json()["jobId"] for a in answers}) == 1
    assert client.get("/api/product-jobs?sku=SKU-1").json()["pagination"]["total"] == 3


def test_the_per_sku_limit_refuses_a_new_image(client: httpx.Client, image_host: ImageHost) -> None:
    for n in range(3):
        data = f"image {n}".encode()
        assert (
            _announce(client, image_host.add(f"/{n}", data), data, webhook_id=f"m{n}").status_code
            == 201
        )
    refused = _announce(client, image_host.add("/3", b"image 3"), b"image 3", webhook_id="m3")
    assert refused.status_code == 409 and "limit" in refused.json()["detail"]
    assert (
        _announce(
            client, image_host.add("/4", b"x"), b"x", sku="SKU-2", webhook_id="m4"
        ).status_code
        == 201
    )


def test_bad_signatures_and_bodies_are_refused(client: httpx.Client) -> None:
    body = json.dumps({"sku": "S", "imageUrl": "https://x.test/a.jpg", "sha256": "a" * 64}).encode()
    headers = _signed(body)
    assert (
        client.post("/api/webhooks/images", content=body + b" ", headers=headers).status_code == 401
    )
    unsigned = client.post(
        "/api/webhooks/images", content=body, headers={"content-type": "application/json"}
    )
    assert unsigned.status_code == 401 and "missing signature" in unsigned.json()["detail"]
    stale = dict(headers, **{"webhook-timestamp": str(int(time.time()) - 600)})
    assert client.post("/api/webhooks/images", content=body, headers=stale).status_code == 401
    legacy = hashlib.sha256(b"wrong").hexdigest()
    assert (
        client.post(
            "/api/webhooks/images", content=body, headers={"x-3jms-signature": legacy}
        ).status_code
        == 401
    )
    for bad in (
        b"not json",
        json.dumps({"sku": "S", "imageUrl": "ftp://x/a", "sha256": "a" * 64}).encode(),
        json.dumps({"sku": "S", "imageUrl": "https://x.test/a", "sha256": "abc123def456"}).encode(),
        json.dumps({"imageUrl": "https://x.test/a", "sha256": "a" * 64}).encode(),
        json.dumps(
            {"sku": "S", "imageUrl": "https://x.test/a", "sha256": "a" * 64, "theme": "nope"}
        ).encode(),
    ):
        answer = client.post("/api/webhooks/images", content=bad, headers=_signed(bad))
        assert answer.status_code == 422, (bad, answer.text)
    huge = b"{" + b" " * 70_000 + b"}"
    assert (
        client.post("/api/webhooks/images", content=huge, headers=_signed(huge)).status_code == 413
    )
    assert client.get("/api/product-jobs").json()["pagination"]["total"] == 0
    assert client.get("/api/product-jobs/nope").status_code == 404
    assert client.get("/api/product-jobs?status=SOMETIMES").status_code == 422


def test_without_a_secret_webhooks_are_refused_unless_insecure(
    db_url: str, tmp_path: Path, engine: sa.Engine
) -> None:
    from fastapi.testclient import TestClient

    from enlarger.api import create_app

    body = json.dumps({"sku": "S", "imageUrl": "https://x.test/a.jpg", "sha256": "b" * 64}).encode()
    for insecure, expected in ((False, 401), (True, 201)):
        settings = FAST.replace(
            data_dir=tmp_path / "data", database_url=db_url, webhooks_insecure=insecure
        )
        with TestClient(create_app(build_services(settings, engine=engine))) as http:
            answer = http.post("/api/webhooks/images", content=body)
            assert answer.status_code == expected, answer.text
            if not insecure:
                assert "ENLARGER_WEBHOOK_SECRETS" in answer.json()["detail"]


def test_failures_carry_their_codes(
    client: httpx.Client, run_worker: Callable[[], Worker], image_host: ImageHost
) -> None:
    corrupt = product_photo(5, 600, 600).jpeg[:3000]
    cases = {
        "DOWNLOAD_FAILED": _announce(
            client, image_host.add("/gone", b"x") + "x", b"x", webhook_id="a"
        ),
        "INVALID_IMAGE": _announce(
            client, image_host.add("/bad.jpg", corrupt), corrupt, webhook_id="b"
        ),
    }
    wrong = product_photo(6, 300, 300).jpeg
    body = json.dumps(
        {"sku": "SKU-9", "imageUrl": image_host.add("/w.jpg", wrong), "sha256": "c" * 64}
    ).encode()
    cases["DOWNLOAD_FAILED/sha"] = client.post(
        "/api/webhooks/images", content=body, headers=_signed(body, "c")
    )
    run_worker()
    for expected, answer in cases.items():
        job = wait_for(lambda a=answer: _settled(client, a.json()["jobId"]), timeout=60)
        assert job["status"] == "FAILED" and job["errorCode"] == expected.split("/")[0], job
        assert job["errorMessage"] and job["completedAt"]
    stats = client.get("/api/product-jobs/stats").json()
    assert stats["byStatus"]["FAILED"] == 3 and stats["failureRate"] == 1.0
    # issue 26, item 6: failing to fetch a photo is no failure to cut one out
    assert stats["failuresByCode"]["DOWNLOAD_FAILED"] == 2
    assert stats["failuresByCode"]["INVALID_IMAGE"] == 1
    assert stats["cutoutFailureRate"] == 0.0


def test_fetch_is_refused_from_private_addresses_unless_allowed(
    image_host: ImageHost, tmp_path: Path
) -> None:
    data = b"\xff\xd8\xff" + b"x" * 100
    url = image_host.add("/p.jpg", data)
    digest = hashlib.sha256(data).hexdigest()
    with pytest.raises(StageFailed, match="loopback") as refused:
        fetch(url, tmp_path / "a", digest, FetchLimits())
    assert refused.value.code is ProductError.DOWNLOAD_FAILED and not refused.value.retryable
    allowed = FetchLimits(allow_hosts=frozenset({f"127.0.0.1:{image_host.port}"}))
    assert fetch(url, tmp_path / "b", digest, allowed).size_bytes == len(data)
    assert (tmp_path / "b").read_bytes() == data
    redirected = f"http://127.0.0.1:{image_host.port}/redirect"
    image_host.add("/photo.jpg", data)
    assert fetch(redirected, tmp_path / "c", digest, allowed).sha256 == digest
    with pytest.raises(StageFailed, match="limit"):
        fetch(
            url, tmp_path / "d", digest, FetchLimits(max_bytes=50, allow_hosts=allowed.allow_hosts)
        )
    page = image_host.add("/page", b"<html>", "text/html")
    with pytest.raises(StageFailed, match="text/html") as not_image:
        fetch(page, tmp_path / "e", digest, allowed)
    assert not_image.value.code is ProductError.INVALID_IMAGE
    with pytest.raises(StageFailed, match="503") as busy:
        fetch(f"http://127.0.0.1:{image_host.port}/busy", tmp_path / "f", digest, allowed)
    assert busy.value.retryable
    with pytest.raises(StageFailed, match="sha256"):
        fetch(url, tmp_path / "g", "0" * 64, allowed)
    assert not (tmp_path / "g").exists() and not list(tmp_path.glob("*.part"))
    with pytest.raises(StageFailed, match="only http"):
        fetch("file:///etc/passwd", tmp_path / "h", digest, allowed)


def test_fetch_keeps_its_time_limit_against_a_drip(image_host: ImageHost, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{image_host.port}/drip"
    fetch_is_cut_off(url, image_host.port, tmp_path, "too long")


def test_list_filters_pagination_and_cleanup(
    client: httpx.Client, catalog: Catalog, image_host: ImageHost
) -> None:
    ids = []
    for n, theme in enumerate(["default", "white", "default"]):
        data = f"bytes {n}".encode()
        answer = _announce(
            client,
            image_host.add(f"/{n}", data),
            data,
            sku=f"S{n}",
            webhook_id=f"w{n}",
            theme=theme,
        )
        ids.append(answer.json()["jobId"])
    page = client.get("/api/product-jobs?theme=default&limit=1").json()
    assert page["pagination"] == {"total": 2, "limit": 1, "offset": 0, "hasMore": True}
    assert page["jobs"][0]["id"] == ids[2]
    assert client.get("/api/product-jobs?status=queued").json()["pagination"]["total"] == 3

    product_jobs.fail(catalog, ids[0], ProductError.INTERNAL_ERROR, "test")
    assert client.post("/api/product-jobs/cleanup", json={"olderThanDays": 1}).json() == {
        "deleted": 0
    }
    with catalog.engine.begin() as conn:  # finished two days ago
        conn.execute(
            product_jobs_table.update()
            .where(product_jobs_table.c.id == ids[0])
            .values(completed_at=datetime.now(UTC) - timedelta(days=2))
        )
    assert client.post("/api/product-jobs/cleanup", json={"olderThanDays": 1}).json() == {
        "deleted": 1
    }
    assert client.get(f"/api/product-jobs/{ids[0]}").status_code == 404
    assert client.post("/api/product-jobs/cleanup", json={"olderThanDays": -1}).status_code == 422


def test_reconcile_fails_a_job_whose_stage_job_died(
    catalog: Catalog, image_host: ImageHost
) -> None:
    data = b"some bytes"
    created = product_jobs.create_job(
        catalog, "SKU-R", image_host.add("/r", data), hashlib.sha256(data).hexdigest(), "default"
    )
    job = product_jobs.get_job(catalog, created.job_id)
    store = catalog.queue.store
    stage_job = store.get_job(job["stage_job_id"])
    assert stage_job is not None and stage_job.type == "product_fetch"
    assert catalog_jobs.reconcile(catalog) == []  # still pending: nothing to do
    with catalog.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE jobs SET status = 'failed', error_code = 'TIMEOUT' WHERE id = :id"),
            {"id": stage_job.id},
        )
    assert catalog_jobs.reconcile(catalog) == [created.job_id]
    failed = product_jobs.get_job(catalog, created.job_id)
    assert (failed["status"], failed["error_code"]) == ("FAILED", "PROVIDER_TIMEOUT")

    # a stage job already pruned into history is found there
    other = b"other bytes"
    second = product_jobs.create_job(
        catalog, "SKU-R", image_host.add("/r2", other), hashlib.sha256(other).hexdigest(), "white"
    )
    second_stage = product_jobs.get_job(catalog, second.job_id)["stage_job_id"]
    with catalog.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE jobs SET status = 'cancelled', finished_at = updated_at WHERE id = :id"
            ),
            {"id": second_stage},
        )
    assert store.prune(0) >= 1 and store.get_job(second_stage).archived
    assert catalog_jobs.reconcile(catalog) == [second.job_id]
    assert product_jobs.get_job(catalog, second.job_id)["error_code"] == "INTERNAL_ERROR"


def _upload(client: httpx.Client, url: str, data: bytes) -> httpx.Response:
    return client.put(url, content=data)


def test_an_external_worker_runs_the_stages_through_the_api(
    client: httpx.Client, catalog: Catalog, image_host: ImageHost
) -> None:
    photo = product_photo(7, 500, 500)
    url = image_host.add("/ext.jpg", photo.jpeg)
    created = _announce(client, url, photo.jpeg, theme="gradient", webhook_id="ext")
    job_id = created.json()["jobId"]
    job = client.get(f"/api/product-jobs/{job_id}").json()
    assert (job["status"], job["mode"]) == ("NEW", "external")
    assert catalog.queue.store.list_jobs(job_type="product_fetch")[1] == 0

    started = client.post(f"/api/product-jobs/{job_id}/start").json()
    assert started["status"] == "QUEUED"
    assert client.post(f"/api/product-jobs/{job_id}/start").json()["status"] == "QUEUED"
    original, mask = started["uploads"]["original"], started["uploads"]["mask"]
    assert _upload(client, original["getUrl"], photo.jpeg).status_code == 403  # a GET URL
    assert _upload(client, original["putUrl"], photo.jpeg).status_code == 200
    assert client.get(original["getUrl"]).content == photo.jpeg

    segmentation = f"/api/product-jobs/{job_id}/segmentation"
    missing = client.post(segmentation, json={"maskKey": mask["key"]})
    assert missing.status_code == 422 and "nothing was uploaded" in missing.json()["detail"]
    foreign = client.post(segmentation, json={"maskKey": "products/other/x/mask.png"})
    assert foreign.status_code == 422
    _upload(client, mask["putUrl"], b"\x89PNG mask bytes")
    assert (
        client.post(segmentation, json={"maskKey": mask["key"]}).json()["status"] == "BG_GENERATING"
    )
    again = client.post(segmentation, json={"maskKey": mask["key"]})
    assert (again.status_code, again.json()["status"]) == (200, "BG_GENERATING")
    other = client.post(segmentation, json={"maskKey": mask["key"] + "x"})
    assert other.status_code == 409

    def presigned(**request: Any) -> dict[str, Any]:
        answer = client.post(f"/api/product-jobs/{job_id}/presign", json=request)
        assert answer.status_code == 200, answer.text
        _upload(client, answer.json()["putUrl"], b"artifact " + answer.json()["key"].encode())
        return answer.json()

    background = presigned(kind="bg", variant=1)
    assert background["key"].endswith(f"{job_id}/bg-1.jpg")
    moved = client.post(
        f"/api/product-jobs/{job_id}/backgrounds", json={"bgKeys": [background["key"]]}
    )
    assert moved.json()["status"] == "COMPOSITING"
    composite = presigned(kind="composite", aspect="4:5", variant=2, type="master")
    thumb = presigned(kind="thumb", aspect="4:5", variant=2)
    assert composite["key"].endswith("composite-4x5-2-master.jpg")
    body = {
        "composites": [composite["key"]],
        "thumbs": [thumb["key"]],
        "costUsd": "0.0123",
        "provider": "replicate",
    }
    assert (
        client.post(f"/api/product-jobs/{job_id}/composite", json=body).json()["status"]
        == "PUBLISHING"
    )
    media = {"mediaIds": ["gid://shopify/MediaImage/1"], "costUsd": 0.0027}
    done = client.post(f"/api/product-jobs/{job_id}/shopify", json=media).json()
    assert done["status"] == "DONE" and done["mediaIds"] == ["gid://shopify/MediaImage/1"]
    assert done["costUsd"] == 0.015 and [c["amountUsd"] for c in done["costs"]] == [0.0123, 0.0027]
    assert done["composites"][0]["thumbUrl"] and done["urls"]["mask"]
    assert client.post(f"/api/product-jobs/{job_id}/publish", json=media).status_code == 200

    assert (
        client.post(
            f"/api/product-jobs/{job_id}/fail", json={"code": "INTERNAL_ERROR", "message": "x"}
        ).status_code
        == 409
    )
    assert (
        client.post(f"/api/product-jobs/{job_id}/presign", json={"kind": "mask"}).status_code == 409
    )
    assert client.get("/api/product-jobs/stats").json()["totalCostUsd"] == 0.015


def test_external_callbacks_are_validated(client: httpx.Client, image_host: ImageHost) -> None:
    data = b"external bytes"
    job_id = _announce(
        client, image_host.add("/e2", data), data, theme="gradient", webhook_id="e2"
    ).json()["jobId"]
    builtin = _announce(client, image_host.add("/b2", data), data, webhook_id="b2").json()["jobId"]
    presign = f"/api/product-jobs/{job_id}/presign"
    for bad in (
        {"kind": "video"},
        {"kind": "bg", "variant": 0},
        {"kind": "composite", "aspect": "2:1"},
        {"kind": "composite", "type": "../x"},
        {"kind": "mask", "expiresIn": 8 * 86400},
    ):
        assert client.post(presign, json=bad).status_code == 422, bad
    week = client.post(presign, json={"kind": "mask", "expiresIn": 7 * 86400})
    assert week.status_code == 200 and week.json()["expiresIn"] == 7 * 86400
    assert (
        client.post(f"/api/product-jobs/{job_id}/backgrounds", json={"bgKeys": ["k"]}).status_code
        == 409
    )
    composite = f"/api/product-jobs/{job_id}/composite"
    assert client.post(composite, json={"composites": ["a"]}).status_code == 422
    assert (
        client.post(composite, json={"composites": ["a", "b"], "thumbs": ["t"]}).status_code == 422
    )
    assert (
        client.post(f"/api/product-jobs/{builtin}/segmentation", json={"maskKey": "k"}).status_code
        == 409
    )
    assert client.post(f"/api/product-jobs/{builtin}/start").json()["status"] == "QUEUED"
    fail = f"/api/product-jobs/{job_id}/fail"
    assert client.post(fail, json={"code": "NOPE", "message": "x"}).status_code == 422
    failed = client.post(fail, json={"code": "SEGMENT_FAILED", "message": "model timed out"})
    assert (failed.json()["status"], failed.json()["errorCode"]) == ("FAILED", "SEGMENT_FAILED")
    assert (
        client.post(fail, json={"code": "SEGMENT_FAILED", "message": "model timed out"}).status_code
        == 200
    )
    assert client.post("/api/product-jobs/nope/start").status_code == 404


def test_the_webhook_publisher_signs_what_it_sends(
    db_url: str, tmp_path: Path, engine: sa.Engine
) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(503 if len(received) == 1 else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = FAST.replace(
        data_dir=tmp_path / "data",
        database_url=db_url,
        product_publishers="folder,webhook",
        product_webhook_url=f"http://127.0.0.1:{server.server_address[1]}/hook",
        product_webhook_secret=SECRET,
        public_url="https://photos.example.com",
    )
    catalog = build_services(settings, engine=engine).catalog
    catalog.blobs.put_bytes("products/S/j1/composite-1x1.jpg", b"jpeg bytes")
    job = {
        "id": "j1",
        "sku": "S",
        "theme": "default",
        "sha256": "d" * 64,
        "composite_keys": ["products/S/j1/composite-1x1.jpg"],
        "thumb_keys": None,
        "composites": None,
        "published": None,
    }
    try:
        with pytest.raises(StageFailed, match="503") as busy:
            pipeline.publish_composites(catalog, job)
        assert busy.value.retryable and busy.value.code is ProductError.PUBLISH_FAILED
        result = pipeline.publish_composites(catalog, job)
    finally:
        server.shutdown()
    headers, body = received[-1]
    assert verify(headers, body, [secret_key(SECRET)]).webhook_id == "msg_j1_published"
    assert headers["webhook-id"] == received[0][0]["webhook-id"]  # a retry keeps its id
    sent = json.loads(body)["data"]
    assert sent["composites"][0]["name"] == "composite-1x1"
    assert sent["composites"][0]["url"].startswith(  # absolute: the receiver can fetch it
        "https://photos.example.com/files/products/S/j1/composite-1x1.jpg?expires="
    )
    assert result.updates["media_ids"] == [
        "products/published/S/j1/composite-1x1.jpg",
        "msg_j1_published",
    ]
    assert set(result.updates["published"]) == {"folder", "webhook"}


def test_cli_stats_and_cleanup(catalog: Catalog, library: Library, image_host: ImageHost) -> None:
    data = b"cli bytes"
    created = product_jobs.create_job(
        catalog, "SKU-C", image_host.add("/c", data), hashlib.sha256(data).hexdigest(), "default"
    )
    product_jobs.fail(catalog, created.job_id, ProductError.DOWNLOAD_FAILED, "gone")
    with catalog.engine.begin() as conn:
        conn.execute(
            product_jobs_table.update().values(completed_at=datetime.now(UTC) - timedelta(days=3))
        )
    where = [
        "--data-dir",
        str(library.settings.data_dir),
        "--database-url",
        library.settings.database_url,
    ]
    code, output = invoke("products", "stats", *where)
    assert code == 0 and "FAILED" in output and "failure rate 100.0%" in output
    code, output = invoke("products", "cleanup", "--older-than-days", "2", *where)
    assert code == 0 and "deleted 1 finished product job(s)" in output
    assert product_jobs.list_jobs(catalog)[1] == 0


def test_the_folder_publisher_writes_to_an_s3_prefix(
    tmp_path: Path, bucket: str, s3_endpoint: str
) -> None:
    settings = FAST.replace(
        data_dir=tmp_path / "data",
        product_publish_url=f"s3://{bucket}/catalogue",
        s3_endpoint_url=s3_endpoint,
    )
    catalog = build_services(settings).catalog
    catalog.blobs.put_bytes("products/S/j2/composite-shopify.jpg", b"composite bytes")
    job = {
        "id": "j2",
        "sku": "S",
        "theme": "white",
        "sha256": "e" * 64,
        "composite_keys": ["products/S/j2/composite-shopify.jpg"],
        "composites": [{"key": "products/S/j2/composite-shopify.jpg", "name": "shopify"}],
    }
    published = publish_to_folder(catalog, job)
    assert published.media_ids == ["S/j2/shopify.jpg"]
    assert published.details["location"] == f"s3://{bucket}/catalogue/S/j2/manifest.json"
    target = open_blob_store(f"s3://{bucket}/catalogue", s3_endpoint_url=s3_endpoint)
    with target.local_copy("S/j2/manifest.json") as path:
        manifest = json.loads(path.read_bytes())
    assert manifest["files"][0]["sha256"] == hashlib.sha256(b"composite bytes").hexdigest()
    with target.local_copy("S/j2/shopify.jpg") as path:
        assert path.read_bytes() == b"composite bytes"


# ---- doubtful cut-outs, SKUs with slashes, uploads (issue 26) -------------------------------


def _jpeg(pixels: np.ndarray) -> bytes:
    return pyvips.Image.new_from_array(pixels).jpegsave_buffer(Q=92)


def _cropped_photo() -> bytes:
    """A studio shot whose product the frame cuts off at the left."""
    photo = product_photo(4, 1800, 1800)
    columns = np.flatnonzero(photo.truth.max(axis=0) >= 128)
    pixels = np.asarray(pyvips.Image.new_from_buffer(photo.jpeg, "").numpy())
    return _jpeg(np.ascontiguousarray(pixels[:, columns[0] + 120 :]))


def _published(library: Library, job_id: str) -> list[str]:
    return [
        info.key
        for sku in library.blobs.list_subfolders("products/published")
        for info in library.blobs.list_folder(f"products/published/{sku}/{job_id}")
    ]


def test_a_doubtful_cut_out_waits_for_a_person_who_accepts_rejects_or_reruns_it(
    client: httpx.Client,
    run_worker: Callable[[], Worker],
    image_host: ImageHost,
    library: Library,
) -> None:
    """Issue 26, item 4: nothing doubtful is published before a person has seen it."""
    cropped = _cropped_photo()
    jobs = {
        name: _announce(
            client, image_host.add(f"/{name}.jpg", cropped), cropped, f"SKU-{name}", f"msg_{name}"
        ).json()["jobId"]
        for name in ("accept", "reject", "rerun")
    }
    run_worker()
    for job_id in jobs.values():
        held = _waiting_for(client, job_id, "NEEDS_REVIEW", "DONE", "FAILED")
        assert held["status"] == "NEEDS_REVIEW", held
        assert "CROPPED" in {c["code"] for c in held["concerns"]}
        assert "left" in next(c["message"] for c in held["concerns"] if c["code"] == "CROPPED")
        assert held["composites"] and held["mediaIds"] == []
        assert _published(library, job_id) == []

    accepted = client.post(f"/api/product-jobs/{jobs['accept']}/review", json={"action": "accept"})
    assert accepted.status_code == 200 and accepted.json()["status"] == "PUBLISHING"
    done = _waiting_for(client, jobs["accept"], "DONE", "FAILED")
    assert done["status"] == "DONE" and done["reviewDecision"] == "accepted"
    assert len(_published(library, jobs["accept"])) == 7  # six composites and the manifest

    rejected = client.post(
        f"/api/product-jobs/{jobs['reject']}/review",
        json={"action": "reject", "note": "the heel is cut off"},
    ).json()
    assert (rejected["status"], rejected["errorCode"]) == ("FAILED", "REJECTED")
    assert "the heel is cut off" in rejected["errorMessage"]
    assert _published(library, jobs["reject"]) == []

    refused = client.post(f"/api/product-jobs/{jobs['rerun']}/review", json={"action": "rerun"})
    assert refused.status_code == 422 and "method" in refused.json()["detail"]
    rerun = client.post(
        f"/api/product-jobs/{jobs['rerun']}/review", json={"action": "rerun", "method": "backdrop"}
    )
    assert rerun.json()["status"] == "SEGMENTING" and rerun.json()["requestedMethod"] == "backdrop"
    again = _waiting_for(client, jobs["rerun"], "NEEDS_REVIEW", "DONE", "FAILED")
    assert again["status"] == "NEEDS_REVIEW" and again["cutoutMethod"] == "backdrop", again[
        "errorMessage"
    ]

    decided = client.post(f"/api/product-jobs/{jobs['accept']}/review", json={"action": "reject"})
    assert decided.status_code == 409 and "NEEDS_REVIEW" in decided.json()["detail"]
    stats = client.get("/api/product-jobs/stats").json()
    assert stats["byStatus"]["NEEDS_REVIEW"] == 1 and stats["failuresByCode"]["REJECTED"] == 1
    assert stats["cutoutFailureRate"] == 0.5  # one rejected of the two decided


def test_a_product_blown_up_from_a_small_photo_is_held(
    client: httpx.Client, run_worker: Callable[[], Worker], image_host: ImageHost
) -> None:
    small = product_photo(6, 300, 300).jpeg
    job_id = _announce(client, image_host.add("/small.jpg", small), small).json()["jobId"]
    run_worker()
    held = _waiting_for(client, job_id, "NEEDS_REVIEW", "DONE", "FAILED")
    assert held["status"] == "NEEDS_REVIEW", held
    enlarged = next(c for c in held["concerns"] if c["code"] == "ENLARGED")
    assert "enlarged" in enlarged["message"] and "px wide" in enlarged["message"]


def test_review_holds_low_confidence_and_warnings_unless_turned_off(catalog: Catalog) -> None:
    cropped = [{"code": "CROPPED", "message": "the frame cuts the product at left"}]
    assert pipeline._doubtful(catalog, {"confidence": 0.95}, cropped)
    assert pipeline._doubtful(catalog, {"confidence": 0.5}, [])
    assert not pipeline._doubtful(catalog, {"confidence": 0.95}, [])
    assert not pipeline._doubtful(catalog, {"confidence": None}, [])  # an external worker's
    off = replace(catalog, settings=catalog.settings.replace(product_review_below=0.0))
    assert not pipeline._doubtful(off, {"confidence": 0.1}, cropped)


@flow_only
def test_skus_with_slashes_get_folders_of_their_own(
    client: httpx.Client, run_worker: Callable[[], Worker], image_host: ImageHost, library: Library
) -> None:
    """Issue 26, item 5: TEE/RED/M and TEE/RED/S no longer share `products/M/`."""
    photo = product_photo(3, FLOW_PHOTO_SIDE, FLOW_PHOTO_SIDE).jpeg
    url = image_host.add("/tee.jpg", photo)
    ids = [
        _announce(client, url, photo, sku=sku, webhook_id=f"msg_{n}").json()["jobId"]
        for n, sku in enumerate(["TEE/RED/M", "TEE/RED/S", "M"])
    ]
    run_worker()
    folders = set()
    for job_id, sku in zip(ids, ["TEE/RED/M", "TEE/RED/S", "M"], strict=True):
        job = _waiting_for(client, job_id, "DONE", "FAILED", "NEEDS_REVIEW")
        assert job["status"] == "DONE" and job["sku"] == sku
        folder = job["originalKey"].split("/")[1]
        published = {key.split("/")[2] for key in _published(library, job_id)}
        assert published == {folder}
        folders.add(folder)
    assert len(folders) == 3 and "M" in folders and len(set(ids)) == 3
    assert all(folder.startswith("TEE-RED-") for folder in folders - {"M"})


@flow_only
@BOTH_STACKS
def test_a_product_photo_can_be_uploaded_instead_of_announced(
    client: httpx.Client, run_worker: Callable[[], Worker], library: Library
) -> None:
    """Issue 26, item 6: a photo that is not hosted anywhere goes in by upload."""
    photo = product_photo(3, FLOW_PHOTO_SIDE, FLOW_PHOTO_SIDE)
    form = {"sku": "CAP/BLUE", "theme": "white"}
    sent = client.post(
        "/api/product-jobs/upload", data=form, files={"file": ("cap.jpg", photo.jpeg)}
    )
    assert sent.status_code == 201, sent.text
    job_id = sent.json()["jobId"]
    again = client.post(
        "/api/product-jobs/upload", data=form, files={"file": ("cap copy.jpg", photo.jpeg)}
    )
    assert (again.status_code, again.json()) == (200, {"jobId": job_id, "status": "duplicate"})
    not_image = client.post(
        "/api/product-jobs/upload", data=form, files={"file": ("cap.jpg", b"not a photo")}
    )
    assert not_image.status_code == 422 and not_image.json()["errorCode"]
    no_sku = client.post(
        "/api/product-jobs/upload", data={"theme": "white"}, files={"file": ("c.jpg", photo.jpeg)}
    )
    assert no_sku.status_code == 422 and "sku" in no_sku.json()["detail"]
    wrong_theme = client.post(
        "/api/product-jobs/upload",
        data={"sku": "CAP", "theme": "winter"},
        files={"file": ("c.jpg", photo.jpeg)},
    )
    assert wrong_theme.status_code == 422 and "winter" in wrong_theme.json()["detail"]

    run_worker()
    job = _waiting_for(client, job_id, "DONE", "FAILED", "NEEDS_REVIEW")
    assert job["status"] == "DONE", job
    assert (
        job["imageUrl"] == "upload:cap.jpg"
        and job["sha256"] == hashlib.sha256(photo.jpeg).hexdigest()
    )
    assert client.get(job["urls"]["original"]).content == photo.jpeg
    assert client.get("/api/product-jobs").json()["pagination"]["total"] == 1
    kept = {
        info.key.rsplit("/", 1)[0]
        for sku in library.blobs.list_subfolders("products")
        if sku != "published"
        for folder in library.blobs.list_subfolders(f"products/{sku}")
        for info in library.blobs.list_folder(f"products/{sku}/{folder}")
    }
    assert kept == {job["originalKey"].rsplit("/", 1)[0]}  # the duplicate's copy is gone


@flow_only
def test_a_photo_whose_job_failed_can_be_announced_again(
    client: httpx.Client, run_worker: Callable[[], Worker], image_host: ImageHost
) -> None:
    """A CDN that was not ready yet does not lose the photo for good."""
    photo = product_photo(3, FLOW_PHOTO_SIDE, FLOW_PHOTO_SIDE).jpeg
    url = f"http://127.0.0.1:{image_host.port}/late.jpg"  # not served yet: 404
    first = _announce(client, url, photo, webhook_id="msg_early").json()["jobId"]
    run_worker()
    failed = _waiting_for(client, first, "FAILED", "DONE")
    assert failed["errorCode"] == "DOWNLOAD_FAILED"
    image_host.add("/late.jpg", photo)
    redelivered = _announce(client, url, photo, webhook_id="msg_early")  # the same delivery
    assert (redelivered.status_code, redelivered.json()["jobId"]) == (200, first)
    again = _announce(client, url, photo, webhook_id="msg_later")
    assert again.status_code == 201 and again.json()["jobId"] != first
    done = _waiting_for(client, again.json()["jobId"], "DONE", "FAILED", "NEEDS_REVIEW")
    assert done["status"] == "DONE"
    assert _announce(client, url, photo, webhook_id="msg_last").json() == {
        "jobId": done["id"],
        "status": "duplicate",
    }
    review = client.post(
        f"/api/product-jobs/{done['id']}/review", json={"action": "accept", "method": "model"}
    )
    assert review.status_code == 422 and "rerun only" in review.json()["detail"]
