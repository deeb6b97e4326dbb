"""What the catalog works with: the process's database, queue and blob store (shared
with the photo library), its themes, fetch limits and webhook keys. `enlarger.bootstrap`
builds it once per process from the parts it shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from enlarger.catalog.fetch import FetchLimits, parse_allow_hosts
from enlarger.catalog.themes import Theme, load_themes
from enlarger.catalog.webhooks import parse_secrets
from enlarger.config import Settings, SettingsError
from enlarger.queue import JobQueue
from enlarger.storage import BlobStore


@dataclass
class Catalog:
    settings: Settings
    engine: sa.Engine
    queue: JobQueue
    blobs: BlobStore
    themes: dict[str, Theme]
    fetch_limits: FetchLimits
    webhook_keys: list[bytes]
    temp_dir: Path  # downloads wait here (the library's temp directory)


def check_catalog_settings(settings: Settings) -> None:
    """What the catalog reads only when it starts (the themes file, webhook secrets, a
    model file), checked when a process starts: a mistake stops it with one line, not a
    traceback later or every product job failing. SettingsError names the setting."""
    _webhook_keys_and_allowed_hosts(settings)
    load_themes(settings)
    model = settings.product_onnx_model
    if model and not Path(model).is_file():
        raise SettingsError(f"product_onnx_model: there is no model file at {model}")


def _webhook_keys_and_allowed_hosts(settings: Settings) -> tuple[list[bytes], frozenset[str]]:
    try:
        return parse_secrets(settings.webhook_secrets), parse_allow_hosts(
            settings.fetch_allow_hosts
        )
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def build_catalog(
    settings: Settings, *, engine: sa.Engine, queue: JobQueue, blobs: BlobStore, temp_dir: Path
) -> Catalog:
    keys, allow_hosts = _webhook_keys_and_allowed_hosts(settings)
    return Catalog(
        settings=settings,
        engine=engine,
        queue=queue,
        blobs=blobs,
        themes=load_themes(settings),
        fetch_limits=FetchLimits(
            settings.fetch_max_bytes, settings.fetch_timeout_seconds, allow_hosts
        ),
        webhook_keys=keys,
        temp_dir=temp_dir,
    )
