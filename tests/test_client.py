"""`enlarger.client` against a real uvicorn server on loopback, on both backends: the
reference's helpers from upload to a downloaded thumbnail, failures and time-outs."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pyvips

from enlarger.bootstrap import Services
from enlarger.client import (
    EnlargerClient,
    EnlargerError,
    ImageFailed,
    image_status_label,
    is_image_ready,
)
from enlarger.queue import Worker
from tests.conftest import loopback_socket, serving, wait_for
from tests.images import jpeg


@pytest.fixture
def enlarger(live_server: str) -> Iterator[EnlargerClient]:
    with EnlargerClient(live_server + "/", timeout=30) as client:
        yield client


def _long_side(content: bytes) -> int:
    decoded = pyvips.Image.new_from_buffer(content, "")
    return max(decoded.width, decoded.height)


def test_upload_poll_and_fetch_assets(
    enlarger: EnlargerClient, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    source = jpeg(tmp_path / "Dunes.jpg", 2400, 1600)
    uploaded = enlarger.upload_image(source, title="Dunes", collection="Trip")
    assert uploaded["status"] == "INGESTED" and uploaded["duplicate"] is False
    assert uploaded["checksum"] == hashlib.sha256(source.read_bytes()).hexdigest()
    again = enlarger.upload_image(source.read_bytes(), filename="copy.jpg", collection="Trip")
    assert again["imageId"] == uploaded["imageId"] and again["duplicate"] is True

    pending = enlarger.get_image(uploaded["imageId"])
    assert not is_image_ready(pending)
    assert image_status_label(pending) == "Waiting to be processed"
    assert enlarger.thumbnail_url(pending) is None and enlarger.preview_url(pending) is None

    run_worker()
    seen: list[str] = []
    image = enlarger.poll_image_status(
        uploaded["imageId"], lambda i: seen.append(i["status"]), interval=0.05, timeout=60
    )
    assert is_image_ready(image) and image_status_label(image) == "Ready"
    order = ["INGESTED", "PROCESSING", "STORED"]  # the worker may be quicker than a poll
    assert seen[-1] == "STORED" and seen == [status for status in order if status in seen]

    assert enlarger.download(enlarger.asset_url(image)) == source.read_bytes()
    assert _long_side(enlarger.download(enlarger.preview_url(image))) == 2000
    assert _long_side(enlarger.download(enlarger.thumbnail_url(image))) == 256
    assert _long_side(enlarger.download(enlarger.thumbnail_url(image, 500))) == 512
    assert _long_side(enlarger.download(enlarger.asset_url(image, "thumb_64"))) == 64
    assert enlarger.asset_url(image, "no_such_recipe") is None
    assert enlarger.thumbnail_url(image).startswith(enlarger.base_url)


def test_listing_jobs_and_errors(enlarger: EnlargerClient, tmp_path: Path) -> None:
    files = [jpeg(tmp_path / f"{n}.jpg", 300 + n, 200) for n in range(3)]
    ids = [enlarger.upload_image(path, collection="Set")["imageId"] for path in files]
    enlarger.upload_image(jpeg(tmp_path / "other.jpg", 320, 200), collection="Other")

    page = enlarger.get_images(collection="Set", limit=2)
    assert page["count"] == 3 and page["pagination"]["hasMore"] is True
    assert page["collections"] == ["Other", "Set"]
    paged = enlarger.iter_images(collection="Set", page_size=1)
    assert sorted(image["id"] for image in paged) == sorted(ids)
    assert len(list(enlarger.iter_images())) == 4

    jobs = enlarger.get_jobs(status="pending", type="OFFLOAD_ORIGINAL")
    assert jobs["pagination"]["total"] == 4
    job = enlarger.get_job(jobs["jobs"][0]["id"])
    assert job["retryInfo"]["remainingAttempts"] == job["maxAttempts"]
    assert enlarger.cancel_job(job["id"])["status"] == "CANCELLED"
    assert enlarger.retry_job(job["id"])["status"] == "PENDING"

    renamed = enlarger.update_image(ids[0], title="First", collection="Other")
    assert (renamed["title"], renamed["collection"]) == ("First", "Other")
    enlarger.delete_image(ids[1])

    with pytest.raises(EnlargerError) as missing:
        enlarger.get_image(ids[1])
    assert missing.value.status_code == 404 and missing.value.detail
    with pytest.raises(EnlargerError) as bad_filter:
        enlarger.get_jobs(type="NO_SUCH_TYPE")
    assert bad_filter.value.status_code == 422 and "NO_SUCH_TYPE" in bad_filter.value.detail
    with pytest.raises(EnlargerError) as refused:
        enlarger.upload_image(b"", filename="empty.jpg")
    assert refused.value.status_code == 422 and refused.value.body["errorCode"] == "EMPTY_FILE"


def test_poll_raises_when_the_image_fails_or_time_runs_out(
    enlarger: EnlargerClient, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    whole = jpeg(tmp_path / "whole.jpg", 1600, 1200).read_bytes()
    cut = enlarger.upload_image(whole[: len(whole) // 3], filename="cut.jpg")
    with pytest.raises(TimeoutError):
        enlarger.poll_image_status(cut["imageId"], interval=0.05, timeout=0.3)

    run_worker()
    with pytest.raises(ImageFailed) as failed:
        enlarger.poll_image_status(cut["imageId"], interval=0.05, timeout=60)
    assert failed.value.error_code == "CORRUPT_IMAGE"
    assert image_status_label(failed.value.image) == "Failed: CORRUPT_IMAGE"


def test_a_server_restarting_is_waited_for_and_the_upload_goes_through(
    services: Services, tmp_path: Path
) -> None:
    """Connections refused (a server between its stop and its start, for an upgrade)
    are tried again within `outage_wait`: nothing was sent, so even an upload is safe to
    send again; with `outage_wait=0` the refusal is the caller's at once."""
    sock = loopback_socket()  # bound, not listening yet: connections to it are refused
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    photo = jpeg(tmp_path / "a.jpg", 600, 400).read_bytes()
    with EnlargerClient(base_url, outage_wait=0) as impatient, pytest.raises(httpx.ConnectError):
        impatient.get_images()

    tries: list[httpx.Request] = []
    answers: list[dict[str, Any]] = []
    http = httpx.Client(base_url=base_url, timeout=30, event_hooks={"request": [tries.append]})
    with EnlargerClient(base_url, http=http, outage_wait=60) as patient:
        uploading = threading.Thread(
            target=lambda: answers.append(patient.upload_image(photo, filename="a.jpg"))
        )
        uploading.start()
        wait_for(lambda: len(tries) >= 2)  # refused once at least, and trying again
        with serving(services, sock):
            uploading.join(60)
            assert answers and answers[0]["status"] == "INGESTED" and not answers[0]["duplicate"]
            listed = patient.get_images()
    assert [image["id"] for image in listed["data"]] == [answers[0]["imageId"]]
