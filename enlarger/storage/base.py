"""The blob store interface: keys are relative, slash-separated paths that never leave
the store's root; every write is atomic (readers see the old file or the whole new one)."""

from __future__ import annotations

import posixpath
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class StorageError(Exception):
    """A key or a blob that cannot be used."""


class StorageUnavailable(StorageError):
    """The storage service did not answer, or answered "later" (5xx, throttling): an
    outage that passes, not a fault of the blob. Jobs wait it out; requests answer 503."""

    code = "STORAGE_UNAVAILABLE"


def check_key(key: str) -> str:
    """A normalised key, or StorageError for anything that could escape the root."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise StorageError(f"invalid storage key {key!r}")
    normal = posixpath.normpath(key)
    if normal != key or normal.startswith("..") or "/../" in f"/{normal}/":
        raise StorageError(f"invalid storage key {key!r}")
    return normal


# File systems limit a name to 255 bytes (not characters: an "é" is two in UTF-8, an
# emoji four). The rest is room for what enlarger adds: an image id before a name in the
# trash (33 bytes), a number after it (`-999`).
MAX_NAME_BYTES = 200


def check_name(name: str, what: str = "file name") -> str:
    """A folder or file name to use as it is: one path segment, no control characters,
    not hidden (dot names are enlarger's own, like `.trash`); Unicode is welcome and
    normalised to NFC. StorageError says what is wrong."""
    normal = unicodedata.normalize("NFC", name)
    size = len(normal.encode("utf-8", "surrogatepass"))
    if not normal or size > MAX_NAME_BYTES:
        raise StorageError(
            f"a {what} must be 1 to {MAX_NAME_BYTES} bytes in UTF-8; this one is {size}"
        )
    if "/" in normal or "\\" in normal:
        raise StorageError(f"the {what} {name!r} contains a path separator")
    if any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in normal):
        raise StorageError(f"the {what} {name!r} contains a control character")
    if normal.startswith(".") or normal != normal.strip():
        raise StorageError(f"the {what} {name!r} may not start with a dot or a space")
    return normal


def safe_name(name: str, fallback: str = "file") -> str:
    """A user-given file name as one safe path segment: no directories, no dot-files,
    only portable characters (the extension kept)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_CHARS.sub("-", base).strip(".-")[:150]
    return cleaned or fallback


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size_bytes: int
    modified_at: datetime  # aware; when the blob was written or last moved

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


class BlobStore(ABC):
    # Blobs live on another machine that every host reaches (S3), not on this host's
    # disk: uploads wait there, so a worker on any host can take them on.
    remote: bool = False

    @abstractmethod
    def put_file(self, key: str, source: Path) -> None:
        """Store a local file's bytes under `key`; `source` is left as it was."""

    def take_file(self, key: str, source: Path) -> None:
        """Store a local file the caller gives up (an upload's temp file) under `key`;
        `source` is gone afterwards. Stores that can rename it into place do."""
        self.put_file(key, source)
        source.unlink(missing_ok=True)

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def local_copy(self, key: str) -> AbstractContextManager[Path]:
        """A local path holding the blob for as long as the context lasts."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the blob; a missing one is not an error."""

    @abstractmethod
    def move(self, key: str, new_key: str) -> None:
        """Give a blob a new key (an original into the trash, say) without rewriting it;
        its modified time becomes the time of the move (how long it has been in the trash)."""

    @abstractmethod
    def info(self, key: str) -> BlobInfo | None:
        """The blob's size and modified time; None when there is no such blob."""

    @abstractmethod
    def list_folder(self, folder: str) -> Iterator[BlobInfo]:
        """The blobs directly in `folder` (not in its subfolders), in no set order; writes
        still in progress are not listed."""

    @abstractmethod
    def list_subfolders(self, folder: str) -> Iterator[str]:
        """The names of the folders directly in `folder`, in no set order (for sweeps
        over folders named by ids, such as the derivatives')."""

    @abstractmethod
    def location(self, key: str) -> str:
        """Where the blob is, for people and scripts: a file path, or an s3:// URI."""

    @abstractmethod
    def url(self, key: str, ttl_s: int) -> str:
        """A URL that lets whoever holds it read the blob for the next `ttl_s` seconds."""

    @abstractmethod
    def upload_url(self, key: str, ttl_s: int) -> str:
        """A URL that takes an HTTP PUT of the blob's bytes for the next `ttl_s` seconds
        (for an external worker writing its results)."""
