"""Blob stores: one contract for the local directory and for S3 (moto's S3 server over
real HTTP), and the photo pipeline running end to end on S3."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import boto3
import httpx
import pytest
import pyvips
import sqlalchemy as sa

from enlarger.bootstrap import build_services
from enlarger.library import image_records, ingest, lookups
from enlarger.library.image_records import ImageStatus
from enlarger.library.library import Library
from enlarger.queue import Worker
from enlarger.storage import (
    BlobStore,
    LocalBlobStore,
    StorageError,
    StorageUnavailable,
    UrlSigner,
    check_key,
    load_or_create_secret,
    open_blob_store,
    safe_name,
)
from enlarger.storage.s3 import S3BlobStore
from tests.conftest import FAST, wait_for
from tests.images import jpeg


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs", UrlSigner(b"k" * 32))
    bucket = request.getfixturevalue("bucket")
    endpoint = request.getfixturevalue("s3_endpoint")
    return open_blob_store(f"s3://{bucket}/library", s3_endpoint_url=endpoint)


def test_blob_store_contract(blobs: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"original bytes")
    blobs.put_file("projects/trip/a.jpg", source)
    blobs.put_bytes("derivatives/ab/x/thumb.jpg", b"thumb")
    assert source.read_bytes() == b"original bytes"  # put_file leaves its source alone
    assert blobs.exists("projects/trip/a.jpg") and not blobs.exists("projects/trip/c.jpg")
    with blobs.local_copy("derivatives/ab/x/thumb.jpg") as path:
        assert path.read_bytes() == b"thumb"

    blobs.move("projects/trip/a.jpg", "projects/trip/.trash/a.jpg")
    assert not blobs.exists("projects/trip/a.jpg")
    with blobs.local_copy("projects/trip/.trash/a.jpg") as path:
        assert path.read_bytes() == b"original bytes"

    upload = tmp_path / "upload.part"
    upload.write_bytes(b"uploaded bytes")
    blobs.take_file("projects/trip/b.jpg", upload)
    assert not upload.exists()  # taken, not copied
    with blobs.local_copy("projects/trip/b.jpg") as path:
        assert path.read_bytes() == b"uploaded bytes"

    blobs.delete("derivatives/ab/x/thumb.jpg")
    blobs.delete("derivatives/ab/x/thumb.jpg")  # deleting what is gone is fine
    assert not blobs.exists("derivatives/ab/x/thumb.jpg")
    with pytest.raises(StorageError), blobs.local_copy("derivatives/ab/x/thumb.jpg"):
        pass
    for bad in ("../escape", "/abs/path", "a/../../b", "a\\b", ""):
        with pytest.raises(StorageError):
            blobs.put_bytes(bad, b"x")


def test_blob_store_lists_a_folder_and_dates_moves(blobs: BlobStore, tmp_path: Path) -> None:
    """What maintenance relies on: a folder's own blobs with sizes and times (never its
    subfolders, listed apart), and a move into the trash that dates the blob to the move."""
    blobs.put_bytes("projects/trip/a.jpg", b"aaaa")
    blobs.put_bytes("projects/trip/b.nef", b"bb")
    blobs.put_bytes("projects/trip/.trash/old.jpg", b"old")
    blobs.put_bytes("projects/trip-2/c.jpg", b"c")
    if isinstance(blobs, S3BlobStore):  # folder markers, as the S3 console makes them
        for marker in ("projects/trip/", "projects/trip/.trash/"):
            key = f"{blobs.prefix}/{marker}" if blobs.prefix else marker
            blobs.client.put_object(Bucket=blobs.bucket, Key=key, Body=b"")
    listed = {info.name: info.size_bytes for info in blobs.list_folder("projects/trip")}
    assert listed == {"a.jpg": 4, "b.nef": 2}
    assert [i.name for i in blobs.list_folder("projects/trip/.trash")] == ["old.jpg"]
    assert list(blobs.list_folder("projects/none")) == []
    assert sorted(blobs.list_subfolders("projects")) == ["trip", "trip-2"]
    assert list(blobs.list_subfolders("projects/trip")) == [".trash"]
    assert list(blobs.list_subfolders("projects/trip-2")) == []
    assert list(blobs.list_subfolders("projects/none")) == []

    if isinstance(blobs, LocalBlobStore):  # an old file, as a camera card's copy would be
        old = blobs.path("projects/trip/a.jpg")
        os.utime(old, (old.stat().st_atime, old.stat().st_mtime - 86400))
        before = blobs.info("projects/trip/a.jpg")
        assert before is not None
        assert datetime.now(UTC) - before.modified_at > timedelta(hours=23)
    blobs.move("projects/trip/a.jpg", "projects/trip/.trash/a.jpg")
    moved = blobs.info("projects/trip/.trash/a.jpg")
    assert moved is not None and moved.size_bytes == 4
    assert abs(datetime.now(UTC) - moved.modified_at) < timedelta(minutes=1)
    assert blobs.info("projects/trip/a.jpg") is None


def test_local_store_takes_a_file_by_renaming_it(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    upload = tmp_path / "upload.part"
    upload.write_bytes(b"uploaded bytes")
    inode = upload.stat().st_ino
    blobs.take_file("projects/trip/a.jpg", upload)
    assert blobs.path("projects/trip/a.jpg").stat().st_ino == inode


@pytest.mark.skipif(
    not Path("/dev/shm").is_dir() or Path("/dev/shm").stat().st_dev == Path("/tmp").stat().st_dev,
    reason="needs a second file system at /dev/shm",
)
def test_local_store_takes_a_file_from_another_file_system(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    upload = Path("/dev/shm") / f"enlarger-test-{uuid.uuid4().hex}.part"
    upload.write_bytes(b"uploaded bytes")
    try:
        blobs.take_file("projects/trip/a.jpg", upload)
    finally:
        upload.unlink(missing_ok=True)
    assert not upload.exists()
    assert blobs.path("projects/trip/a.jpg").read_bytes() == b"uploaded bytes"


def test_presigned_urls_are_served_by_s3(bucket: str, s3_endpoint: str) -> None:
    """(Local URLs are signed by enlarger and served by the app: see tests/test_api.py.)"""
    blobs = open_blob_store(f"s3://{bucket}", s3_endpoint_url=s3_endpoint)
    blobs.put_bytes("derivatives/ab/x/preview.jpg", b"preview bytes")
    url = blobs.url("derivatives/ab/x/preview.jpg", 60)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    assert httpx.get(url).content == b"preview bytes"
    assert httpx.get(url.split("?")[0]).status_code == 403  # not public without a signature
    assert blobs.location("derivatives/ab/x/preview.jpg").startswith("s3://")
    upload = blobs.upload_url("products/S/j/mask.png", 60)
    assert httpx.put(upload, content=b"mask bytes").status_code == 200
    with blobs.local_copy("products/S/j/mask.png") as path:
        assert path.read_bytes() == b"mask bytes"


def test_a_missing_bucket_is_a_clear_error(s3_endpoint: str) -> None:
    blobs = open_blob_store("s3://no-such-bucket-here", s3_endpoint_url=s3_endpoint)
    with pytest.raises(StorageError, match=r"NoSuchBucket|does not exist") as raised:
        blobs.put_bytes("a.jpg", b"x")
    assert not isinstance(raised.value, StorageUnavailable)  # a mistake, not an outage


def test_a_storage_service_that_does_not_answer_is_an_outage() -> None:
    """Jobs wait out StorageUnavailable and requests answer 503; a refused connection
    is one, for every operation (a HEAD included, which boto reports its own way)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    blobs = open_blob_store("s3://photos", s3_endpoint_url=f"http://127.0.0.1:{port}")
    for operation in (lambda: blobs.put_bytes("a.jpg", b"x"), lambda: blobs.exists("a.jpg")):
        with pytest.raises(StorageUnavailable, match=r"a\.jpg"):
            operation()


def test_storage_urls_and_keys_are_checked(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="unsupported storage URL"):
        open_blob_store("ftp://host/x")
    with pytest.raises(StorageError, match="no bucket"):
        open_blob_store("s3:///prefix")
    assert check_key("projects/a/b.jpg") == "projects/a/b.jpg"
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("..") == "file"
    assert safe_name("My Photo (1).JPG") == "My-Photo-1-.JPG"


def test_url_signer_and_secret_file(tmp_path: Path) -> None:
    secret = load_or_create_secret(tmp_path / "secret.key")
    assert len(secret) == 32 and load_or_create_secret(tmp_path / "secret.key") == secret
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    signer = UrlSigner(secret)
    other = UrlSigner(b"another secret of enough length")
    url = signer.url("derivatives/a.jpg", 60)
    expires = int(url.split("expires=")[1].split("&")[0])
    signature = url.split("signature=")[1]
    assert signer.verify("derivatives/a.jpg", expires, signature)
    assert not other.verify("derivatives/a.jpg", expires, signature)
    assert not signer.verify("derivatives/b.jpg", expires, signature)
    assert not signer.verify("derivatives/a.jpg", expires + 1, signature)
    assert not signer.verify("derivatives/a.jpg", expires, signature, method="PUT")
    put = parse_qs(urlparse(signer.url("derivatives/a.jpg", 60, method="PUT")).query)
    assert signer.verify("derivatives/a.jpg", int(put["expires"][0]), put["signature"][0], "PUT")
    assert not signer.verify("derivatives/a.jpg", int(put["expires"][0]), put["signature"][0])
    with pytest.raises(ValueError):
        UrlSigner(b"short")


@pytest.fixture
def s3_library(
    db_url: str, tmp_path: Path, engine: sa.Engine, bucket: str, s3_endpoint: str
) -> Library:
    settings = FAST.replace(
        data_dir=tmp_path / "data",
        database_url=db_url,
        storage_url=f"s3://{bucket}/photos",
        s3_endpoint_url=s3_endpoint,
    )
    return build_services(settings, engine=engine).library


def test_pipeline_on_s3(
    s3_library: Library,
    make_worker: Callable[..., Worker],
    bucket: str,
    s3_endpoint: str,
    tmp_path: Path,
) -> None:
    from enlarger.bootstrap import registry

    source = jpeg(tmp_path / "a.jpg", 1600, 1200)
    ingested = ingest.ingest(
        s3_library, ingest.copy_to_temp(s3_library, source), filename="a.jpg", collection="Trip"
    )
    settings = s3_library.settings
    make_worker(
        registry,
        data_dir=settings.data_dir,
        database_url=settings.database_url,
        storage_url=settings.storage_url,
        s3_endpoint_url=settings.s3_endpoint_url,
    )

    def stored() -> bool:
        row = image_records.get_image_row(s3_library, ingested.image_id)
        return row.status in (ImageStatus.STORED, ImageStatus.FAILED)

    wait_for(stored, timeout=60)
    row = image_records.get_image_row(s3_library, ingested.image_id)
    assert row.status == ImageStatus.STORED, row.error_message
    keys = {
        o["Key"]
        for o in boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket=bucket)[
            "Contents"
        ]
    }
    assert "photos/projects/trip/a.jpg" in keys
    made = lookups.derivatives_of(s3_library, [row.id])[row.id]
    assert {f"photos/{d.storage_key}" for d in made.values()} <= keys
    preview = httpx.get(s3_library.blobs.url(made["preview"].storage_key, 60))
    decoded = pyvips.Image.new_from_buffer(preview.content, "")
    assert (decoded.width, decoded.height) == (1600, 1200)  # never enlarged


def test_a_rewritten_file_keeps_the_mode_a_file_gets_or_had(tmp_path: Path) -> None:
    """A sidecar written at commit is readable by a photo editor running as another user,
    as the files that arrived are (not mkstemp's 0600); a mode set by hand is kept."""
    blobs = LocalBlobStore(tmp_path / "store")
    umask = os.umask(0o022)
    os.umask(umask)
    blobs.put_bytes("projects/a/IMG_1.xmp", b"<x/>")
    assert blobs.path("projects/a/IMG_1.xmp").stat().st_mode & 0o777 == 0o666 & ~umask
    blobs.path("projects/a/IMG_1.xmp").chmod(0o640)
    blobs.put_bytes("projects/a/IMG_1.xmp", b"<y/>")
    assert blobs.path("projects/a/IMG_1.xmp").stat().st_mode & 0o777 == 0o640
