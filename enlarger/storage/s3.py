"""Blobs as objects in an S3 bucket (or any S3-compatible server) under a key prefix.

An S3 PUT is atomic by itself: readers see the old object or the whole new one. URLs are
presigned GETs, so clients fetch straight from the bucket.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from enlarger.storage.base import BlobInfo, BlobStore, StorageError, StorageUnavailable, check_key

# what S3 and its look-alikes answer when they are busy or briefly broken
_PASSING_CODES = {
    "InternalError",
    "RequestTimeout",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
}


class S3BlobStore(BlobStore):
    remote = True

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        timeout_s: float = 15.0,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            config=Config(
                signature_version="s3v4",
                # tried twice: a server that takes connections but never answers (hung)
                # is an outage in about 2 * timeout_s, not after minutes
                retries={"mode": "standard", "total_max_attempts": 2},
                connect_timeout=timeout_s,
                read_timeout=timeout_s,
            ),
        )

    def _object(self, key: str) -> str:
        key = check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, source: Path) -> None:
        with _errors(key):
            self.client.upload_file(str(source), self.bucket, self._object(key))

    def put_bytes(self, key: str, data: bytes) -> None:
        with _errors(key):
            self.client.put_object(Bucket=self.bucket, Key=self._object(key), Body=data)

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="enlarger-s3-") as scratch:
            path = Path(scratch) / "blob"
            with _errors(key):
                self.client.download_file(self.bucket, self._object(key), str(path))
            yield path

    def exists(self, key: str) -> bool:
        return self.info(key) is not None

    def info(self, key: str) -> BlobInfo | None:
        try:
            with _errors(key):
                head = self.client.head_object(Bucket=self.bucket, Key=self._object(key))
        except StorageError as exc:
            if _error_code(exc.__cause__) in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        return BlobInfo(key, int(head["ContentLength"]), head["LastModified"])

    def list_folder(self, folder: str) -> Iterator[BlobInfo]:
        """One ListObjectsV2 page after another, with `/` as the delimiter. Folder
        markers (empty objects named `folder/`, as consoles make) are not blobs."""
        folder = check_key(folder)
        prefix = self._object(folder) + "/"
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        )
        with _errors(folder):
            for page in pages:
                for entry in page.get("Contents", []):
                    name = entry["Key"][len(prefix) :]
                    if not name:
                        continue
                    yield BlobInfo(f"{folder}/{name}", int(entry["Size"]), entry["LastModified"])

    def list_subfolders(self, folder: str) -> Iterator[str]:
        """The common prefixes of a delimited listing."""
        prefix = self._object(check_key(folder)) + "/"
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        )
        with _errors(folder):
            for page in pages:
                for entry in page.get("CommonPrefixes", []):
                    name = entry["Prefix"][len(prefix) :].rstrip("/")
                    if name:
                        yield name

    def delete(self, key: str) -> None:
        with _errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=self._object(key))

    def move(self, key: str, new_key: str) -> None:
        with _errors(key):
            self.client.copy(
                {"Bucket": self.bucket, "Key": self._object(key)},
                self.bucket,
                self._object(new_key),
            )
            self.client.delete_object(Bucket=self.bucket, Key=self._object(key))

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._object(key)}"

    def url(self, key: str, ttl_s: int) -> str:
        return self._presigned("get_object", key, ttl_s)

    def upload_url(self, key: str, ttl_s: int) -> str:
        return self._presigned("put_object", key, ttl_s)

    def _presigned(self, operation: str, key: str, ttl_s: int) -> str:
        params = {"Bucket": self.bucket, "Key": self._object(key)}
        return str(self.client.generate_presigned_url(operation, Params=params, ExpiresIn=ttl_s))


@contextmanager
def _errors(key: str) -> Iterator[None]:
    """boto's errors as StorageError naming the key (a missing bucket, a missing object),
    or StorageUnavailable when the service is out or busy (after boto's own retries)."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        kind = StorageUnavailable if _passing(exc) else StorageError
        raise kind(f"S3 operation on {key!r} failed: {exc}") from exc


def _passing(exc: BaseException) -> bool:
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return True  # refused, reset, timed out
    if not isinstance(exc, ClientError):
        return False
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return int(status) >= 500 or _error_code(exc) in _PASSING_CODES


def _error_code(exc: BaseException | None) -> str | None:
    if not isinstance(exc, ClientError):
        return None
    return str(exc.response.get("Error", {}).get("Code"))
