"""The composition root: what a process builds once from its settings and hands down.

`build_services(settings)` makes the database engine, the job queue with every domain's
handlers, the blob store, and the photo library's and the catalog's views of them. The
HTTP app receives the result (`create_app(services)`), and so do job handlers, through
`ctx.services` (the worker's; each CPU child builds its own with `build_services`). Nothing
below this module builds services or keeps them in a module-level cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from enlarger.catalog.catalog import Catalog, build_catalog
from enlarger.catalog.stage_jobs import registry as catalog_registry
from enlarger.config import Settings
from enlarger.db.engine import create_db_engine
from enlarger.library.image_records import JobType
from enlarger.library.job_handlers import registry as library_registry
from enlarger.library.library import Library, recipes_from
from enlarger.media import Limits, set_threads, whole_decode_pixels
from enlarger.queue import (
    DependencyDown,
    JobQueue,
    Registry,
    Worker,
    as_dependency_down,
    load_registry,
    store_for_engine,
)
from enlarger.storage import (
    BlobStore,
    StorageUnavailable,
    UrlSigner,
    load_or_create_secret,
    open_blob_store,
)


def _every_domains_handlers() -> Registry:
    """The registry workers load by default (setting `handlers`): each domain's, merged.
    A job type of the library's with no handler stops the import, not a job later."""
    merged = Registry()
    merged.include(library_registry)
    merged.include(catalog_registry)
    missing = sorted(set(JobType) - set(merged.handlers))
    if missing:
        raise RuntimeError(f"job types with no handler: {', '.join(missing)}")
    return merged


registry = _every_domains_handlers()


@dataclass(frozen=True)
class Services:
    """One process's services. Each domain reads its own view: `library`, `catalog`."""

    settings: Settings
    library: Library
    catalog: Catalog

    @property
    def engine(self) -> sa.Engine:
        return self.library.engine

    @property
    def queue(self) -> JobQueue:
        return self.library.queue

    @property
    def blobs(self) -> BlobStore:
        return self.library.blobs


def build_services(
    settings: Settings, *, engine: sa.Engine | None = None, pre_ping: bool = False
) -> Services:
    """Everything a process of enlarger's works with; `engine` for one built already.
    `pre_ping` checks a pooled connection before each use: the server's, so the first
    request after a database restart is answered, not failed."""
    engine = engine or create_db_engine(settings.resolved_database_url, pre_ping=pre_ping)
    set_threads(settings.resolved_image_threads)
    queue = JobQueue(
        store_for_engine(engine, max_attempts_default=settings.max_attempts_default),
        load_registry(settings.handlers),  # the handlers' defaults apply to enqueues
    )
    blobs = open_blob_store(
        settings.resolved_storage_url,
        s3_endpoint_url=settings.s3_endpoint_url,
        signer=url_signer(settings),
        timeout_s=settings.storage_timeout_seconds,
    )
    library = Library(
        settings=settings,
        engine=engine,
        queue=queue,
        blobs=blobs,
        limits=Limits(
            settings.max_upload_bytes,
            settings.max_pixels,
            whole_decode_pixels(settings.cpu_kill_rss_mb),
        ),
        recipes=recipes_from(settings),
    )
    catalog = build_catalog(
        settings, engine=engine, queue=queue, blobs=blobs, temp_dir=library.temp_dir
    )
    return Services(settings, library, catalog)


def build_worker(services: Services, *, worker_id: str | None = None) -> Worker:
    """A worker over these services: its handlers get them as `ctx.services`."""
    return Worker(
        services.queue.store,
        services.queue.registry,
        services.settings,
        services=services,
        build_services=build_services,
        worker_id=worker_id,
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


def outage_of(error: BaseException) -> DependencyDown | None:
    """The outage `error` is a sign of (the database's, the storage's), if any: what the
    API answers 503 for and `enlarger import` waits out."""
    if isinstance(error, StorageUnavailable):
        return DependencyDown(StorageUnavailable.code, str(error))
    return as_dependency_down(error)
