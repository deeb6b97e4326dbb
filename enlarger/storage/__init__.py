"""Where originals and derivatives live: a local directory (default) or S3."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from enlarger.storage.base import (
    BlobInfo,
    BlobStore,
    StorageError,
    StorageUnavailable,
    check_key,
    check_name,
    safe_name,
)
from enlarger.storage.local import LocalBlobStore
from enlarger.storage.signing import UrlSigner, load_or_create_secret

__all__ = [
    "BlobInfo",
    "BlobStore",
    "LocalBlobStore",
    "StorageError",
    "StorageUnavailable",
    "UrlSigner",
    "check_key",
    "check_name",
    "load_or_create_secret",
    "open_blob_store",
    "safe_name",
]


def open_blob_store(
    url: str,
    *,
    s3_endpoint_url: str = "",
    signer: UrlSigner | None = None,
    timeout_s: float = 15.0,
) -> BlobStore:
    """`file:///path` for a local directory (served by the app with `signer`'s URLs),
    `s3://bucket/prefix` for S3 (`s3_endpoint_url` for MinIO, moto and the like; a call
    unanswered for `timeout_s` gives up)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalBlobStore(Path(parsed.path), signer)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StorageError(f"storage URL {url!r} names no bucket (use s3://bucket/prefix)")
        from enlarger.storage.s3 import S3BlobStore  # boto3 loads only when S3 is used

        return S3BlobStore(parsed.netloc, parsed.path, s3_endpoint_url, timeout_s)
    raise StorageError(f"unsupported storage URL {url!r} (use file:///path or s3://bucket)")
