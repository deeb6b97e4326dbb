"""The HTTP API on a real uvicorn server over loopback, on both backends: upload to
STORED, the reference's response shapes, signed URLs, admin jobs, and 4xx for bad input."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pyvips
import sqlalchemy as sa

from enlarger.bootstrap import Services, build_services
from enlarger.bootstrap import registry as handlers_registry
from enlarger.db.schema import jobs
from enlarger.library import image_records, ingest, processing
from enlarger.library.image_records import JobType
from enlarger.library.library import Library
from enlarger.queue import Worker
from enlarger.queue.registry import FailedJob
from tests.conftest import FAST, loopback_socket, serving, wait_for
from tests.images import dng, jpeg, jpeg_with_exif, png_declaring
from tests.photos import processed


def _upload(
    client: httpx.Client, path: Path, collection: str | None = "Trip", **fields: str
) -> httpx.Response:
    data = dict(fields, **({"collection": collection} if collection else {}))
    with path.open("rb") as fh:
        return client.post("/api/upload", files={"file": (path.name, fh)}, data=data)


def _settled(client: httpx.Client, image_id: str) -> dict[str, Any] | None:
    image = client.get(f"/api/images/{image_id}").json()
    return image if image["status"] in ("STORED", "FAILED") else None


def test_upload_to_stored_with_reference_shapes(
    client: httpx.Client, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    source = jpeg(tmp_path / "Beach Day.jpg", 2400, 1600)
    response = _upload(client, source, title="Beach")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= {"imageId", "status", "checksum", "sizeBytes", "uploadedAt"}
    assert body["status"] == "INGESTED"
    assert body["checksum"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert body["sizeBytes"] == source.stat().st_size

    pending = client.get(f"/api/images/{body['imageId']}").json()
    assert [job["type"] for job in pending["processingJobs"]] == ["OFFLOAD_ORIGINAL"]
    assert pending["isProcessing"] is False and pending["isStored"] is False

    run_worker()
    image = wait_for(lambda: _settled(client, body["imageId"]), timeout=60)
    assert image["status"] == "STORED" and image["isStored"] is True
    # the last job marks the image STORED just before the worker records the job finished
    wait_for(lambda: client.get(f"/api/images/{body['imageId']}").json()["processingJobs"] == [])
    assert (image["title"], image["collection"], image["width"], image["height"]) == (
        "Beach",
        "Trip",
        2400,
        1600,
    )
    assert set(image["sizes"]) == {"thumb_64", "thumb_128", "thumb_256", "thumb_512", "preview"}
    assert image["thumbhash"] and image["thumbnailUrl"] == image["sizes"]["thumb_256"]["url"]

    preview = client.get(image["previewUrl"])
    assert preview.status_code == 200
    decoded = pyvips.Image.new_from_buffer(preview.content, "")
    assert (decoded.width, decoded.height) == (2000, 1333)
    original = client.get(image["originalUrl"])
    assert original.content == source.read_bytes()

    listing = client.get("/api/images").json()
    assert listing["count"] == 1 and listing["collections"] == ["Trip"]
    assert listing["data"][0]["id"] == body["imageId"]


def test_signed_urls_refuse_tampering_and_expiry(
    client: httpx.Client, library: Library, tmp_path: Path
) -> None:
    library.blobs.put_bytes("derivatives/x/y.jpg", b"bytes")
    url = library.blobs.url("derivatives/x/y.jpg", 60)
    assert client.get(url).content == b"bytes"
    path, _, query = url.partition("?")
    signature = query.split("signature=")[1]
    forged = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert client.get(url.replace(signature, forged)).status_code == 403
    other = path.replace("y.jpg", "z.jpg") + "?" + query
    assert client.get(other).status_code == 403  # a signature is for one key only
    expired = library.blobs.url("derivatives/x/y.jpg", -1)
    assert client.get(expired).status_code == 403
    assert client.get("/files/derivatives/x/y.jpg").status_code == 422  # unsigned


def test_with_a_public_url_blob_urls_are_absolute_and_fetchable(
    db_url: str, tmp_path: Path, engine: sa.Engine
) -> None:
    """For whoever does not talk to this server already (a webhook receiver, an external
    worker), a blob URL must name the server: `public_url` makes it absolute."""
    sock = loopback_socket()
    public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = FAST.replace(data_dir=tmp_path / "data", database_url=db_url)
    services = build_services(settings.replace(public_url=f"{public_url}/"), engine=engine)
    library = services.library
    library.blobs.put_bytes("derivatives/x/y.jpg", b"bytes")
    url = library.blobs.url("derivatives/x/y.jpg", 60)
    assert url.startswith(f"{public_url}/files/derivatives/x/y.jpg?expires=")
    with serving(services, sock):
        assert httpx.get(url).content == b"bytes"
    relative = build_services(settings, engine=engine).library.blobs.url("derivatives/x/y.jpg", 60)
    assert relative.startswith("/files/derivatives/x/y.jpg?expires=")


def test_same_bytes_twice_is_one_image(client: httpx.Client, tmp_path: Path) -> None:
    source = jpeg(tmp_path / "a.jpg", 300, 200)
    first = _upload(client, source).json()
    again = _upload(client, source)
    assert again.status_code == 200
    assert again.json()["imageId"] == first["imageId"] and again.json()["duplicate"] is True
    elsewhere = _upload(client, source, collection="Other").json()
    assert elsewhere["imageId"] != first["imageId"]
    listing = client.get("/api/images", params={"collection": "Trip"}).json()
    assert listing["count"] == 1 and listing["collections"] == ["Other", "Trip"]


def test_bad_files_fail_with_a_code_and_are_listed(
    client: httpx.Client, library: Library, tmp_path: Path
) -> None:
    svg = tmp_path / "x.svg"
    svg.write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'><script>1</script></svg>")
    bomb = png_declaring(tmp_path / "bomb.png", 40_000, 40_000)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    codes = {}
    for path in (svg, bomb, empty):
        response = _upload(client, path)
        assert response.status_code == 422, response.text
        assert response.json()["status"] == "FAILED" and response.json()["detail"]
        codes[path.name] = response.json()["errorCode"]
    assert codes == {
        "x.svg": "UNSUPPORTED_FORMAT",
        "bomb.png": "TOO_MANY_PIXELS",
        "empty.jpg": "EMPTY_FILE",
    }
    failed = client.get("/api/images", params={"status": "FAILED"}).json()
    assert failed["count"] == 3
    assert {i["errorCode"] for i in failed["data"]} == set(codes.values())
    assert not list(library.temp_dir.iterdir())  # nothing of them kept


def test_an_upload_over_the_limit_is_refused_while_streaming(
    live_server: str, library: Library
) -> None:
    limit = library.limits.max_bytes
    big = io.BytesIO(b"\xff\xd8\xff" + b"\0" * (limit + 1))
    with httpx.Client(base_url=live_server, timeout=60) as client:
        response = client.post("/api/upload", files={"file": ("big.jpg", big)})
    assert response.status_code == 413
    assert response.json()["errorCode"] == "TOO_LARGE"
    assert not list(library.temp_dir.iterdir())


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status"),
    [
        ("post", "/api/upload", {"content": b"just bytes"}, 400),
        ("post", "/api/upload", {"data": {"title": "no file"}, "files": {"x": b"1"}}, 400),
        ("get", "/api/images?status=BOGUS", {}, 422),
        ("get", "/api/images?limit=0", {}, 422),
        ("get", "/api/images?offset=-1", {}, 422),
        ("get", "/api/images/nope", {}, 404),
        ("patch", "/api/images/nope", {"json": {"title": "x"}}, 404),
        ("delete", "/api/images/nope", {}, 404),
        ("get", "/api/admin/jobs?status=DONE", {}, 422),
        ("get", "/api/admin/jobs?type=NOT_A_TYPE", {}, 422),
        ("get", "/api/admin/jobs/abc", {}, 422),
        ("get", "/api/admin/jobs/999999", {}, 404),
        ("post", "/api/admin/jobs/999999/retry", {}, 404),
        ("post", "/api/admin/jobs/999999/cancel", {}, 404),
        ("post", "/api/admin/backfill?mode=bogus", {}, 422),
        # numbers past the database's 64-bit integers (found by schemathesis: were 500s)
        ("get", "/api/images?offset=765328634814448140288", {}, 422),
        ("get", "/api/admin/jobs/27307643481348747821056", {}, 422),
        ("post", "/api/admin/jobs/24758326613860294860996608/cancel", {}, 422),
        ("get", "/api/jobs/27307643481348747821056", {}, 422),
        ("get", "/api/jobs/stream?after=9223372036854792192", {}, 422),
        ("get", "/api/jobs/stream", {"headers": {"Last-Event-ID": "9" * 30}}, 400),
        ("get", "/api/product-jobs?offset=9223372036854775808", {}, 422),
        ("post", "/api/product-jobs/cleanup", {"json": {"olderThanDays": "INF"}}, 422),
    ],
)
def test_malformed_requests_get_a_4xx_with_a_reason(
    client: httpx.Client, method: str, url: str, kwargs: dict[str, Any], status: int
) -> None:
    response = client.request(method.upper(), url, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["detail"]


def test_patch_rejects_unknown_fields(client: httpx.Client, tmp_path: Path) -> None:
    image_id = _upload(client, jpeg(tmp_path / "a.jpg", 300, 200)).json()["imageId"]
    response = client.patch(f"/api/images/{image_id}", json={"status": "STORED"})
    assert response.status_code == 422


def test_admin_jobs_list_show_cancel_retry(
    client: httpx.Client, library: Library, tmp_path: Path
) -> None:
    ids = [_upload(client, jpeg(tmp_path / f"{n}.jpg", 200 + n, 200)).json() for n in range(3)]
    listing = client.get("/api/admin/jobs", params={"status": "PENDING", "limit": 2}).json()
    assert listing["pagination"] == {"total": 3, "limit": 2, "offset": 0, "hasMore": True}
    assert all(job["type"] == "OFFLOAD_ORIGINAL" for job in listing["jobs"])
    rest = client.get("/api/admin/jobs", params={"type": "OFFLOAD_ORIGINAL", "offset": 2}).json()
    assert len(rest["jobs"]) == 1 and rest["pagination"]["hasMore"] is False

    job_id = listing["jobs"][0]["id"]
    detail = client.get(f"/api/admin/jobs/{job_id}").json()
    assert detail["attempts"] == 0 and detail["maxAttempts"] == 5
    assert detail["locked"] is False and detail["retryInfo"]["remainingAttempts"] == 5
    assert detail["image"]["id"] in {i["imageId"] for i in ids}
    assert detail["payload"]["imageId"] == detail["image"]["id"]

    cancelled = client.post(f"/api/admin/jobs/{job_id}/cancel").json()
    assert cancelled["status"] == "CANCELLED"
    assert client.post(f"/api/admin/jobs/{job_id}/cancel").status_code == 409
    retried = client.post(f"/api/admin/jobs/{job_id}/retry").json()
    assert retried["status"] == "PENDING"
    assert client.post(f"/api/admin/jobs/{job_id}/retry").status_code == 409


def test_patch_moves_and_delete_trashes(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    image_id = _upload(client, jpeg(tmp_path / "a.jpg", 600, 400)).json()["imageId"]
    run_worker()
    stored = wait_for(lambda: _settled(client, image_id), timeout=60)
    assert stored["originalPath"] == "projects/trip/a.jpg"

    moved = client.patch(
        f"/api/images/{image_id}", json={"title": "Renamed", "collection": "Keepers"}
    ).json()
    assert (moved["title"], moved["collection"]) == ("Renamed", "Keepers")
    assert moved["originalPath"] == "projects/keepers/a.jpg"
    blobs: Any = library.blobs
    assert blobs.path("projects/keepers/a.jpg").is_file()
    assert not blobs.path("projects/trip/a.jpg").exists()
    photos_in = {
        folder: [
            p["basename"] for p in client.get(f"/api/projects/{folder}/photos").json()["photos"]
        ]
        for folder in ("trip", "keepers")
    }
    assert photos_in == {"trip": [], "keepers": ["a"]}  # it took its photo along

    assert client.delete(f"/api/images/{image_id}").status_code == 204
    assert client.get(f"/api/images/{image_id}").status_code == 404
    assert [p.name for p in blobs.path("projects/keepers/.trash").iterdir()] == [
        f"{image_id}-a.jpg"
    ]
    kept = {name for name, d in stored["sizes"].items() if blobs.path(d["path"]).exists()}
    assert kept == {"thumb_64", "thumb_128", "thumb_256", "thumb_512"}  # shown in the trash
    assert client.get("/api/images").json()["count"] == 0


def test_camera_metadata_and_a_raw_file_to_stored(
    client: httpx.Client, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    from_phone = _upload(client, jpeg_with_exif(tmp_path / "phone.jpg")).json()["imageId"]
    raw = _upload(client, dng(tmp_path / "IMG_0001.DNG", 1200, 800)).json()["imageId"]
    run_worker()
    phone_image = wait_for(lambda: _settled(client, from_phone), timeout=60)
    assert phone_image["metadata"] == {
        "takenAt": "2026-07-14T18:30:05+02:00",
        "cameraMake": "Canon",
        "cameraModel": "Canon EOS R5",
        "lens": "RF24-70mm F2.8 L IS USM",
        "exposureTimeSeconds": 0.004,
        "aperture": 2.8,
        "iso": 400,
        "focalLengthMm": 35.0,
        "gps": {
            "latitude": pytest.approx(48.8583, abs=1e-4),
            "longitude": pytest.approx(-2.2945, abs=1e-4),
            "altitudeM": None,
        },
        "colorProfile": None,
    }
    assert (phone_image["cameraMake"], phone_image["cameraModel"]) == ("Canon", "Canon EOS R5")

    raw_image = wait_for(lambda: _settled(client, raw), timeout=60)
    assert raw_image["status"] == "STORED", raw_image["errorMessage"]
    assert (raw_image["format"], raw_image["mimeType"]) == ("dng", "image/x-adobe-dng")
    assert raw_image["metadata"]["lens"] == "EF50mm f/1.8 STM"
    assert (raw_image["sizes"]["preview"]["width"], raw_image["sizes"]["preview"]["height"]) == (
        1200,
        800,
    )
    assert client.get(raw_image["thumbnailUrl"]).status_code == 200


def test_admin_backfill(client: httpx.Client, tmp_path: Path) -> None:
    _upload(client, jpeg(tmp_path / "a.jpg", 300, 200))  # not offloaded yet: nothing to do
    answer = client.post("/api/admin/backfill").json()
    assert answer == {"mode": "missing", "images": 0, "retired": 0}


@pytest.mark.parametrize("storage", ["s3"], indirect=True)
def test_on_remote_storage_a_worker_on_another_host_takes_the_uploads(
    client: httpx.Client, library: Library, make_worker: Callable[..., Worker], tmp_path: Path
) -> None:
    """Uploads wait in the bucket, not on the disk of the host that took them: a worker
    with a data_dir of its own (another host) stores them all."""
    source = jpeg(tmp_path / "far.jpg", 900, 600)
    image_id = _upload(client, source).json()["imageId"]
    assert _upload(client, source).json()["imageId"] == image_id  # same bytes: same image
    client.post("/api/projects", json={"folder": "far"})
    pair = [("files", ("P.jpg", jpeg(tmp_path / "P.jpg", 600, 400).read_bytes()))]
    assert client.post("/api/projects/far/upload", files=pair).status_code == 201
    assert not list(library.temp_dir.iterdir())  # nothing waits on this host's disk

    make_worker(handlers_registry, library.settings.replace(data_dir=tmp_path / "other-host"))
    image = wait_for(lambda: _settled(client, image_id), timeout=60)
    assert image["status"] == "STORED"
    assert client.get(image["originalUrl"]).content == source.read_bytes()
    wait_for(lambda: processed(client, "far", "P"), timeout=60)
    assert not list(library.blobs.list_folder("uploads"))  # every staged upload moved on


@pytest.mark.parametrize("storage", ["s3"], indirect=True)
def test_staged_uploads_no_image_waits_for_are_swept(
    client: httpx.Client, library: Library, tmp_path: Path
) -> None:
    waiting = _upload(client, jpeg(tmp_path / "wait.jpg", 300, 200)).json()["imageId"]
    library.blobs.put_bytes("uploads/0123abcd", b"left by an API process that died")
    left = library.temp_dir / "4567cdef.upload"  # an upload answered 503 (storage out)
    left.write_bytes(b"an upload storage could not take")
    assert ingest.sweep_staged(library) == []  # all are younger than a day
    assert ingest.sweep_staged(library, older_than_s=0) == ["4567cdef.upload", "0123abcd"]
    assert not left.exists()
    assert [blob.name for blob in library.blobs.list_folder("uploads")] == [waiting]
    assert JobType.STAGING_SWEEP in handlers_registry.schedules


def test_on_local_storage_temp_files_no_image_waits_for_are_swept(
    client: httpx.Client, library: Library, tmp_path: Path
) -> None:
    """A server killed while an upload was arriving leaves its temp file behind."""
    waiting = _upload(client, jpeg(tmp_path / "wait.jpg", 300, 200)).json()["imageId"]
    left = library.temp_dir / "0123abcd.upload"
    left.write_bytes(b"half an upload")
    assert ingest.sweep_staged(library) == []  # both are younger than a day
    assert ingest.sweep_staged(library, older_than_s=0) == ["0123abcd.upload"]
    temp_path = image_records.get_image_row(library, waiting).temp_path
    assert [str(p) for p in library.temp_dir.iterdir()] == [temp_path]


def test_a_raw_has_a_full_size_view_for_the_browser(
    client: httpx.Client, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """A browser cannot show a DNG; its 100 % view is the original rendered whole as a
    JPEG, made when first asked for."""
    image_id = _upload(client, dng(tmp_path / "IMG_0001.DNG", 600, 400)).json()["imageId"]
    assert client.get(f"/api/images/{image_id}/full-view").status_code == 409  # not stored
    run_worker()
    wait_for(lambda: _settled(client, image_id), timeout=60)
    asked = client.get(f"/api/images/{image_id}/full-view")  # rendered by the worker
    assert asked.status_code == 202 and asked.json()["status"] == "rendering", asked.text
    assert int(asked.headers["retry-after"]) >= 1
    answer = wait_for(
        lambda: (a := client.get(f"/api/images/{image_id}/full-view")).status_code == 200 and a,
        timeout=60,
    )
    assert answer.json()["status"] == "done", answer.text
    shown = client.get(answer.json()["url"])
    assert shown.headers["content-type"] == "image/jpeg"
    full = pyvips.Image.new_from_buffer(shown.content, "")
    assert (full.width, full.height) == (600, 400)
    again = client.get(f"/api/images/{image_id}/full-view").json()["url"]
    assert again.split("?")[0] == answer.json()["url"].split("?")[0]  # made once, kept
    assert client.get("/api/images/nope/full-view").status_code == 404


def test_a_failed_images_message_never_shows_where_the_storage_service_lives(
    client: httpx.Client, services: Services, library: Library, tmp_path: Path
) -> None:
    """A preview job that ran out of attempts in an S3 outage failed its image with the
    S3 client's words, the installation's internal endpoint among them."""
    image_id = _upload(client, jpeg(tmp_path / "a.jpg", 600, 400)).json()["imageId"]
    processing.offload_original(library, image_id)  # PROCESSING, its preview job queued
    said = 'EndpointConnectionError: Could not connect to the endpoint URL: "http://s3.internal:9000/photos/derivatives/ab/x.jpg"'
    handler = handlers_registry.get(JobType.PREVIEW_GENERATION)
    assert handler is not None and handler.on_failed is not None
    handler.on_failed(
        FailedJob(
            1,
            handler.name,
            {"imageId": image_id},
            "EndpointConnectionError",
            said,
            services,
        )
    )
    failed = client.get(f"/api/images/{image_id}").json()
    assert (failed["status"], failed["errorCode"]) == ("FAILED", "EndpointConnectionError")
    assert "s3.internal" not in failed["errorMessage"] and "http" not in failed["errorMessage"]
    assert "Could not connect to the endpoint URL: the storage service" in failed["errorMessage"]


def test_an_image_whose_derivative_job_fails_for_good_unseen_by_its_handler_is_failed(
    client: httpx.Client, library: Library, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    """Its preview job's last attempt was on a worker that died (a lapsed lease): the
    image is FAILED with LEASE_EXPIRED, not PROCESSING for ever."""
    image_id = _upload(client, jpeg(tmp_path / "a.jpg", 600, 400)).json()["imageId"]
    processing.offload_original(library, image_id)  # PROCESSING, its preview job queued
    with library.engine.begin() as conn:
        abandoned = conn.execute(
            jobs.update()
            .where(jobs.c.type == JobType.PREVIEW_GENERATION.value)
            .values(
                status="running",
                attempts=jobs.c.max_attempts,
                locked_by="a worker that died",
                lease_expires_at=jobs.c.created_at,
            )
        ).rowcount
    assert abandoned == 1
    assert client.get(f"/api/images/{image_id}").json()["status"] == "PROCESSING"
    run_worker()
    failed = wait_for(lambda: _settled(client, image_id))
    assert (failed["status"], failed["errorCode"]) == ("FAILED", "LEASE_EXPIRED")
    assert "stopped renewing its lease" in failed["errorMessage"]
