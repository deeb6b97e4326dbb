"""A project of thousands of photos, written straight into the database and the store (an
import of 5,000 photos would take minutes; this takes seconds), for the culling bench and
the browser tests that need a wedding's worth of photos.

Every photo is a stored JPEG with its preview and thumbnails. Their bytes are a few small
JPEGs made once, hard-linked under each photo's own keys, so every photo has its own URLs
(a browser caches nothing across photos) at little cost on disk. Capture times run a
second or three apart, in bursts of 3-5 frames that look alike (close perceptual
hashes), with one frame of each burst sharper than the rest. Local storage only.
"""

from __future__ import annotations

import hashlib
import os
import random
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyvips
import sqlalchemy as sa

from enlarger.db.schema import derivatives, images, photo_files, photos
from enlarger.library import image_records, projects
from enlarger.library.library import Library

SCENES = 24  # distinct pictures the photos cycle through
PREVIEW_SIDE = 1024
START = datetime(2026, 7, 14, 14, 0, 0)


def _scene(n: int, side: int) -> bytes:
    """A small photographic-looking JPEG (seeded noise and colour fields)."""
    width, height = side, side * 2 // 3
    red = (pyvips.Image.perlin(width, height, cell_size=48, seed=n) * 90 + 120).cast("uchar")
    green = (pyvips.Image.perlin(width, height, cell_size=24, seed=n + 99) * 90 + 110).cast("uchar")
    blue = pyvips.Image.worley(width, height, cell_size=40, seed=n + 7).cast("uchar")
    image = red.bandjoin([green, blue]).copy(interpretation="srgb")
    return bytes(image.jpegsave_buffer(Q=82, keep="none"))


def _files(folder: Path, library: Library) -> dict[str, list[Path]]:
    """The shared bytes: for each recipe name and "original", one file per scene."""
    folder.mkdir(parents=True, exist_ok=True)
    sides = {r.name: r.long_side for r in library.recipes.thumbnails}
    sides |= {library.recipes.preview.name: PREVIEW_SIDE, "original": 1600}
    made: dict[str, list[Path]] = {}
    for name, side in sides.items():
        made[name] = []
        for n in range(SCENES):
            path = folder / f"{name}-{n}.jpg"
            if not path.exists():
                path.write_bytes(_scene(n, side))
            made[name].append(path)
    return made


def _link(source: Path, target: Path) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.link(source, target)
    return source.stat().st_size


def seed(library: Library, folder: str, count: int, seed_value: int = 1) -> list[str]:
    """Create project `folder` with `count` stored photos IMG_00001…; returns their base
    names in capture order."""
    rng = random.Random(seed_value)
    project = projects.create_project(library, folder)
    files = _files(library.settings.data_dir / "big-project-scenes", library)
    blobs_root = library.blobs.root  # type: ignore[attr-defined]  # local storage: hard links
    clock, burst_left, burst_hash, sharp_frame = START, 0, 0, 0
    rows: list[dict[str, Any]] = []
    made: list[dict[str, Any]] = []
    names: list[str] = []
    now = datetime.now().astimezone()
    for n in range(1, count + 1):
        if burst_left == 0:
            burst_left = rng.choice((1, 1, 3, 4, 5))
            burst_hash = rng.getrandbits(64)
            sharp_frame = rng.randrange(burst_left)
            clock += timedelta(seconds=rng.randint(20, 90))
        else:
            clock += timedelta(seconds=1)
        frame = burst_left - 1
        burst_left -= 1
        scene = n % SCENES
        image_id = uuid.uuid4().hex
        basename = f"IMG_{n:05d}"
        names.append(basename)
        original_key = f"projects/{folder}/{basename}.JPG"
        size = _link(files["original"][scene], blobs_root / original_key)
        phash = burst_hash ^ (1 << rng.randrange(64)) if frame else burst_hash
        sharpness = 240.0 if frame == sharp_frame else rng.uniform(60, 150)
        rows.append(
            {
                "id": image_id,
                "project_id": project.id,
                "title": basename,
                "original_filename": f"{basename}.JPG",
                "status": image_records.ImageStatus.STORED.value,
                "checksum": hashlib.sha256(image_id.encode()).hexdigest(),
                "size_bytes": size,
                "format": "jpeg",
                "mime_type": "image/jpeg",
                "width": 1600,
                "height": 1066,
                "orientation": 1,
                "taken_at": clock.isoformat(),
                "camera_make": "Canon",
                "camera_model": "Canon EOS R5",
                "exif": {
                    "taken_at": clock.isoformat(),
                    "camera_make": "Canon",
                    "camera_model": "Canon EOS R5",
                    "lens": "RF24-70mm F2.8 L IS USM",
                    "exposure_time_s": 1 / 250,
                    "f_number": 2.8,
                    "iso": 400,
                    "focal_length_mm": 50.0,
                },
                "assessment": {
                    "sharpness": round(sharpness, 2),
                    "regions": [round(sharpness, 2)] * 16,
                    "highlights": 0.01,
                    "shadows": 0.0,
                    "phash": f"{phash:016x}",
                    "exposure": -1.5 if n % 97 == 0 else 0.0,  # every 97th is dark
                    "headroom": -1.3 if n % 97 == 0 else 0.0,
                },
                "original_key": original_key,
                "uploaded_at": now,
                "updated_at": now,
                "stored_at": now,
            }
        )
        for recipe in library.recipes.all:
            key = image_records.derivative_key(image_id, recipe)
            size = _link(files[recipe.name][scene], blobs_root / key)
            side = PREVIEW_SIDE if recipe is library.recipes.preview else recipe.long_side
            made.append(
                {
                    "image_id": image_id,
                    "name": recipe.name,
                    "storage_key": key,
                    "format": "jpeg",
                    "width": side,
                    "height": side * 2 // 3,
                    "size_bytes": size,
                    "recipe_hash": recipe.hash,
                    "created_at": now,
                }
            )
    with library.engine.begin() as conn:
        for start in range(0, len(rows), 500):
            conn.execute(images.insert(), rows[start : start + 500])
        conn.execute(
            photos.insert(),
            [
                {
                    "project_id": project.id,
                    "basename": name,
                    "keep_jpg": True,
                    "keep_raw": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for name in names
            ],
        )
        ids = dict(
            conn.execute(
                sa.select(photos.c.basename, photos.c.id).where(photos.c.project_id == project.id)
            ).all()
        )
        conn.execute(
            photo_files.insert(),
            [{"image_id": row["id"], "photo_id": ids[row["title"]], "role": "jpg"} for row in rows],
        )
        for start in range(0, len(made), 1000):
            conn.execute(derivatives.insert(), made[start : start + 1000])
    return names
