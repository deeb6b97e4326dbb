"""Blobs as files under one directory; writes go to a temporary name and are renamed.
The app serves them through signed, expiring URLs (see `signing`).

Users may browse and change the tree (it is the library), so a key that passes through a
symbolic link is refused: a link could point anywhere on the host, and following it
would let maintenance delete, or the server serve, files outside the root."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from enlarger.storage.base import BlobInfo, BlobStore, StorageError, check_key
from enlarger.storage.signing import UrlSigner

TEMP_PREFIX = ".tmp-"  # a write in progress: renamed into place when complete


_UMASK = os.umask(0o022)  # read at import, while nothing else runs: os.umask sets it too
os.umask(_UMASK)


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path, signer: UrlSigner | None = None) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.signer = signer

    def path(self, key: str) -> Path:
        """Where `key` lives on disk; StorageError when the way there is a symbolic link."""
        path = self.root / check_key(key)
        if path.resolve() != path:
            raise StorageError(f"{key!r} goes through a symbolic link; links are not followed")
        return path

    def put_file(self, key: str, source: Path) -> None:
        self._atomic(key, lambda tmp: shutil.copyfile(source, tmp))

    def take_file(self, key: str, source: Path) -> None:
        """Renamed into place when on the same file system: no second copy is written."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(source, "rb") as fh:
            os.fsync(fh.fileno())
        try:
            os.replace(source, target)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            super().take_file(key, source)
        os.utime(target)  # dated to its arrival, like every other write

    def put_bytes(self, key: str, data: bytes) -> None:
        self._atomic(key, lambda tmp: Path(tmp).write_bytes(data))

    def _atomic(self, key: str, write: Callable[[str], object]) -> None:
        """Written beside the target and renamed over it. The file gets the mode the one it
        replaces had, else what a new file gets here (mkstemp's own 0600 would lock out a
        photo editor running as another user on a shared folder)."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = target.stat().st_mode & 0o777 if target.is_file() else 0o666 & ~_UMASK
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX, suffix=".part")
        os.fchmod(fd, mode)
        os.close(fd)
        try:
            write(tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        path = self.path(key)
        if not path.is_file():
            raise StorageError(f"no blob at {key!r}")
        yield path

    def exists(self, key: str) -> bool:
        try:
            return self.path(key).is_file()
        except StorageError:
            return False

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def move(self, key: str, new_key: str) -> None:
        target = self.path(new_key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path(key), target)
        os.utime(target)

    def info(self, key: str) -> BlobInfo | None:
        try:
            stat = self.path(key).stat()
        except (FileNotFoundError, StorageError):
            return None
        return _info(key, stat)

    def list_folder(self, folder: str) -> Iterator[BlobInfo]:
        folder = check_key(folder)
        try:
            entries = list(os.scandir(self.path(folder)))
        except (FileNotFoundError, NotADirectoryError, StorageError):
            return
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX) or not entry.is_file(follow_symlinks=False):
                continue
            try:
                yield _info(f"{folder}/{entry.name}", entry.stat(follow_symlinks=False))
            except FileNotFoundError:  # removed since the folder was read
                continue

    def list_subfolders(self, folder: str) -> Iterator[str]:
        try:
            entries = list(os.scandir(self.path(check_key(folder))))
        except (FileNotFoundError, NotADirectoryError, StorageError):
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield entry.name

    def location(self, key: str) -> str:
        return str(self.path(key))

    def url(self, key: str, ttl_s: int) -> str:
        if self.signer is None:
            raise StorageError("this local store has no URL signer")
        return self.signer.url(check_key(key), ttl_s)

    def upload_url(self, key: str, ttl_s: int) -> str:
        if self.signer is None:
            raise StorageError("this local store has no URL signer")
        return self.signer.url(check_key(key), ttl_s, method="PUT")


def _info(key: str, stat: os.stat_result) -> BlobInfo:
    return BlobInfo(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))
