"""What the library needs to work, built once per process from the settings: the
database engine, the job queue, the blob store, limits and derivative recipes."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from enlarger.config import Settings
from enlarger.db import create_db_engine
from enlarger.media import Limits, Recipe, set_threads, whole_decode_pixels
from enlarger.queue import DependencyDown, JobQueue, as_dependency_down, store_for_engine
from enlarger.storage import (
    BlobStore,
    StorageUnavailable,
    UrlSigner,
    load_or_create_secret,
    open_blob_store,
)

PREVIEW = "preview"


def outage_of(error: BaseException) -> DependencyDown | None:
    """The outage `error` is a sign of (the database's, the storage's), if any: what the
    API answers 503 for and `enlarger import` waits out."""
    if isinstance(error, StorageUnavailable):
        return DependencyDown(StorageUnavailable.code, str(error))
    return as_dependency_down(error)


@dataclass(frozen=True)
class Recipes:
    thumbnails: tuple[Recipe, ...]
    preview: Recipe

    @property
    def all(self) -> tuple[Recipe, ...]:
        return (*self.thumbnails, self.preview)


def recipes_from(settings: Settings) -> Recipes:
    thumbnails = tuple(
        Recipe(f"thumb_{size}", size, settings.thumbnail_format, settings.thumbnail_quality)
        for size in settings.thumbnail_size_list
    )
    preview = Recipe(
        PREVIEW, settings.preview_size, settings.preview_format, settings.preview_quality
    )
    return Recipes(thumbnails, preview)


@dataclass
class Library:
    settings: Settings
    engine: sa.Engine
    queue: JobQueue
    blobs: BlobStore
    limits: Limits
    recipes: Recipes

    @property
    def temp_dir(self) -> Path:
        """Uploads wait here until offloaded (same file system as local storage)."""
        path = self.settings.data_dir / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path


def build_library(settings: Settings, engine: sa.Engine | None = None) -> Library:
    from enlarger.handlers import registry  # the handlers' defaults apply to enqueues

    engine = engine or create_db_engine(settings.resolved_database_url)
    set_threads(settings.resolved_image_threads)
    return Library(
        settings=settings,
        engine=engine,
        queue=JobQueue(
            store_for_engine(engine, max_attempts_default=settings.max_attempts_default),
            registry,
        ),
        blobs=open_blob_store(
            settings.resolved_storage_url,
            s3_endpoint_url=settings.s3_endpoint_url,
            signer=url_signer(settings),
            timeout_s=settings.storage_timeout_seconds,
        ),
        limits=Limits(
            settings.max_upload_bytes,
            settings.max_pixels,
            whole_decode_pixels(settings.cpu_kill_rss_mb),
        ),
        recipes=recipes_from(settings),
    )


def url_signer(settings: Settings) -> UrlSigner:
    """Signs local blob URLs with ENLARGER_SECRET_KEY, or a secret kept in the data
    directory (servers on several hosts sharing local storage must set the key). With
    `public_url` the URLs are absolute, for whoever is not talking to this server already
    (webhook receivers, external workers); otherwise they are paths on this server."""
    prefix = f"{settings.public_url.rstrip('/')}/files"
    if settings.secret_key:
        return UrlSigner(settings.secret_key.encode(), prefix)
    return UrlSigner(load_or_create_secret(settings.secret_file), prefix)


@functools.cache
def library_for(settings: Settings) -> Library:
    """The process's Library for these settings (handlers in CPU children call this)."""
    return build_library(settings)
