"""What the photo library works with: the database engine, the job queue, the blob
store, limits and derivative recipes. `enlarger.bootstrap` builds it once per process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from enlarger.config import Settings
from enlarger.media import Limits, Recipe
from enlarger.queue import JobQueue
from enlarger.storage import BlobStore

PREVIEW = "preview"


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
