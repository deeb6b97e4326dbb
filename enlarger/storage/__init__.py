"""Where originals and derivatives live: a local directory (default) or S3."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from enlarger.storage.base import BlobStore, StorageError, check_key, safe_name
from enlarger.storage.local import LocalBlobStore

__all__ = [
    "BlobStore",
    "LocalBlobStore",
    "StorageError",
    "check_key",
    "open_blob_store",
    "safe_name",
]


def open_blob_store(url: str) -> BlobStore:
    """`file:///path` for a local directory."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalBlobStore(Path(parsed.path))
    raise StorageError(f"unsupported storage URL {url!r} (use file:///path)")
