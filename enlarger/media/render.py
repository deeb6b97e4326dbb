"""Derivatives: one decode at the largest size asked for, then each smaller size made
from the one before it, each encoded without metadata."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pyvips
import thumbhash

from enlarger.media.assess import Assessment, assess
from enlarger.media.decode import Probe, corrupt_error, load

FORMATS = ("jpeg", "webp", "avif")
OPTIMIZE_CODING_MAX_SIDE = 1024
THUMBHASH_SIDE = 100  # ThumbHash works on images of at most 100 x 100


@dataclass(frozen=True)
class Recipe:
    """How one derivative is made; configuration, not code."""

    name: str
    long_side: int
    format: str = "jpeg"
    quality: int = 85

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"recipe {self.name}: format must be one of {', '.join(FORMATS)}")
        if not 1 <= self.quality <= 100 or self.long_side < 1:
            raise ValueError(f"recipe {self.name}: quality 1-100 and a positive size, please")

    @property
    def hash(self) -> str:
        """Changes whenever the output would: recorded with every derivative so stale ones
        can be found and remade."""
        canonical = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()[:16]

    @property
    def extension(self) -> str:
        return "jpg" if self.format == "jpeg" else self.format


@dataclass(frozen=True)
class Rendition:
    recipe: Recipe
    data: bytes
    width: int
    height: int


@dataclass(frozen=True)
class Rendered:
    renditions: list[Rendition]  # in the order the recipes were given
    thumbhash: str | None  # a ~25-byte placeholder browsers paint while loading (base64)
    assessment: Assessment | None = None  # measured on the smallest rendition


def render(
    path: str | Path,
    found: Probe,
    recipes: Sequence[Recipe],
    with_thumbhash: bool = False,
    with_assessment: bool = False,
) -> Rendered:
    """Every recipe's output from one decode: each size is made from the one above it.
    A single output with nothing else asked of it streams from decoder to encoder, never
    held whole."""
    by_size = sorted(recipes, key=lambda r: r.long_side, reverse=True)
    reused = len(by_size) > 1 or with_thumbhash or with_assessment
    image = load(path, found, by_size[0].long_side, in_memory=reused)
    made: dict[str, Rendition] = {}
    try:
        for recipe in by_size:
            image = _shrink(image, recipe.long_side)
            made[recipe.name] = Rendition(recipe, encode(image, recipe), image.width, image.height)
    except pyvips.Error as exc:
        if reused:  # decoded already: the encoder itself failed
            raise
        raise corrupt_error(found.format, exc, path) from exc
    digest = thumbhash_of(image) if with_thumbhash else None
    assessment = assess(image) if with_assessment else None
    return Rendered([made[r.name] for r in recipes], digest, assessment)


def encode(image: pyvips.Image, recipe: Recipe) -> bytes:
    keep = pyvips.enums.ForeignKeep.NONE
    if recipe.format == "jpeg":
        if image.hasalpha():
            image = image.flatten(background=[255, 255, 255])
        # Huffman optimisation is a second pass (+7% time on a preview for 3% fewer
        # bytes); worth it on thumbnails, which pages show by the hundred
        optimize = max(image.width, image.height) <= OPTIMIZE_CODING_MAX_SIDE
        return image.jpegsave_buffer(Q=recipe.quality, keep=keep, optimize_coding=optimize)
    if recipe.format == "webp":
        return image.webpsave_buffer(Q=recipe.quality, keep=keep)
    return image.heifsave_buffer(Q=recipe.quality, keep=keep, compression="av1")


def thumbhash_of(image: pyvips.Image) -> str:
    image = _shrink(image, THUMBHASH_SIDE)
    if image.hasalpha():  # the thumbhash package fails on translucent input (0.1.2)
        image = image.flatten(background=[255, 255, 255])
    image = image.bandjoin(255)
    pixels = list(bytes(image.write_to_memory()))
    digest = thumbhash.rgba_to_thumb_hash(image.width, image.height, pixels)
    return base64.b64encode(bytes(digest)).decode()


def _shrink(image: pyvips.Image, long_side: int) -> pyvips.Image:
    """At most `long_side` on the long edge, in memory (a source for the next size)."""
    if max(image.width, image.height) <= long_side:
        return image
    return image.thumbnail_image(long_side, height=long_side, size="down").copy_memory()
