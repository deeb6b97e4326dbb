"""Helpers for the project tests: upload through the API, read a photo's state, and look
at the store the same way on local disk and on S3."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pyvips

from enlarger.library.library import Library
from enlarger.storage import LocalBlobStore


def listing(library: Library, folder: str) -> list[str]:
    """The names of the blobs directly in a folder of the store, sorted."""
    return sorted(blob.name for blob in library.blobs.list_folder(folder))


def content(library: Library, key: str) -> bytes:
    with library.blobs.local_copy(key) as path:
        return path.read_bytes()


def upload(
    client: httpx.Client, folder: str, *paths: Path, names: list[str] | None = None
) -> httpx.Response:
    names = names or [p.name for p in paths]
    files = [("files", (name, p.read_bytes())) for name, p in zip(names, paths, strict=True)]
    return client.post(f"/api/projects/{folder}/upload", files=files)


def photo_of(client: httpx.Client, folder: str, basename: str) -> dict[str, Any]:
    photo = _photo_or_none(client, folder, basename)
    assert photo is not None, f"no photo {basename!r} in {folder!r}"
    return photo


def _photo_or_none(client: httpx.Client, folder: str, basename: str) -> dict[str, Any] | None:
    photos = client.get(f"/api/projects/{folder}/photos").json()["photos"]
    return next((p for p in photos if p["basename"] == basename), None)


def processed(client: httpx.Client, folder: str, basename: str) -> dict[str, Any] | None:
    """The photo once it and all its files are done; None before (or while it is not a
    photo of the project yet)."""
    photo = _photo_or_none(client, folder, basename)
    if photo is None:
        return None
    done = photo["thumbnail_status"] == photo["preview_status"] == "done"
    return photo if done and all(f["status"] == "STORED" for f in photo["files"]) else None


def size_of(client: httpx.Client, url: str) -> tuple[int, int]:
    image = pyvips.Image.new_from_buffer(client.get(url).content, "")
    return image.width, image.height


def by_hand(library: Library, key: str, data: bytes | None) -> None:
    """What a user does outside enlarger: write (or, with None, delete) a file straight on
    the disk, or PUT (DELETE) the object in the bucket."""
    if isinstance(library.blobs, LocalBlobStore):
        path = library.blobs.path(key)
        if data is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    elif data is None:
        library.blobs.delete(key)
    else:
        library.blobs.put_bytes(key, data)


@contextmanager
def arriving(library: Library, key: str, whole: bytes) -> Iterator[None]:
    """A file being copied in by another program: it grows 256 bytes every 50 ms while
    the block runs (wait for it to exist first), and is whole once the block ends."""
    done = threading.Event()

    def copying() -> None:
        for end in range(256, len(whole), 256):
            if done.wait(0.05):
                break
            by_hand(library, key, whole[:end])
        by_hand(library, key, whole)

    copier = threading.Thread(target=copying)
    copier.start()
    try:
        yield
    finally:
        done.set()
        copier.join()
