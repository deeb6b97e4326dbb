"""Derivatives: one decode at the largest size asked for, then each smaller size made
from the one before it, each encoded without metadata."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyvips

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
    assessment: Assessment | None = None  # measured on `assess_on`'s rendition


def render(
    path: str | Path,
    found: Probe,
    recipes: Sequence[Recipe],
    with_thumbhash: bool = False,
    assess_on: Recipe | None = None,
) -> Rendered:
    """Every recipe's output from one decode: each size is made from the one above it,
    held in memory (a preview's thumbnails cost their resizes and encodes, no decode).
    The culling assessment measures `assess_on`'s rendition (one of `recipes`: the
    preview, whose pixels culling judges), the thumbhash the smallest. A single output
    with nothing else asked of it streams from decoder to encoder, never held whole."""
    if assess_on is not None and assess_on not in recipes:
        raise ValueError(f"the assessed recipe {assess_on.name} is not among those rendered")
    by_size = sorted(recipes, key=lambda r: r.long_side, reverse=True)
    reused = len(by_size) > 1 or with_thumbhash or assess_on is not None
    image = load(path, found, by_size[0].long_side, in_memory=reused)
    made: dict[str, Rendition] = {}
    assessment = None
    try:
        for recipe in by_size:
            image = shrink(image, recipe.long_side)
            made[recipe.name] = Rendition(recipe, encode(image, recipe), image.width, image.height)
            if recipe == assess_on:
                assessment = assess(image)
    except pyvips.Error as exc:
        if reused:  # decoded already: the encoder itself failed
            raise
        raise corrupt_error(found.format, exc, path) from exc
    digest = thumbhash_of(image) if with_thumbhash else None
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
    image = shrink(image, THUMBHASH_SIDE)
    if image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    pixels = np.atleast_3d(image.numpy())
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return base64.b64encode(thumb_hash(pixels[:, :, :3])).decode()


def thumb_hash(rgb: np.ndarray) -> bytes:
    """ThumbHash (evanw/thumbhash) of an opaque 8-bit RGB image of at most 100 x 100: the
    reference algorithm with its sums as matrix products (the pure-Python package took
    9 ms of a 2000 px preview's thumbnails, this takes well under one)."""
    height, width = rgb.shape[:2]
    if width > THUMBHASH_SIDE or height > THUMBHASH_SIDE:
        raise ValueError(f"{width}x{height} does not fit in 100x100")
    r, g, b = (rgb[:, :, band] * (1 / 255) for band in range(3))
    longest = max(width, height)
    lx = max(1, round(7 * width / longest))
    ly = max(1, round(7 * height / longest))

    def coefficients(channel: np.ndarray, nx: int, ny: int) -> tuple[float, list[float], float]:
        xs, ys = np.arange(width) + 0.5, np.arange(height) + 0.5
        along_x = np.cos(np.pi / width * np.outer(np.arange(nx), xs))
        along_y = np.cos(np.pi / height * np.outer(np.arange(ny), ys))
        every = along_y @ channel @ along_x.T / (width * height)
        # the reference's order: row by row, each row's first nx * (ny - cy) / ny terms
        kept = [every[cy, cx] for cy in range(ny) for cx in range(nx) if cx * ny < nx * (ny - cy)]
        dc, ac = float(kept[0]), [float(f) for f in kept[1:]]
        scale = max((abs(f) for f in ac), default=0.0)
        if scale:
            ac = [0.5 + 0.5 / scale * f for f in ac]
        return dc, ac, scale

    l_dc, l_ac, l_scale = coefficients((r + g + b) / 3, max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = coefficients((r + g) / 2 - b, 3, 3)
    q_dc, q_ac, q_scale = coefficients(r - g, 3, 3)
    landscape = width > height
    header24 = (
        round(63 * l_dc)
        | (round(31.5 + 31.5 * p_dc) << 6)
        | (round(31.5 + 31.5 * q_dc) << 12)
        | (round(31 * l_scale) << 18)
    )
    header16 = (
        (ly if landscape else lx)
        | (round(63 * p_scale) << 3)
        | (round(63 * q_scale) << 9)
        | (landscape << 15)
    )
    packed = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255, header16 >> 8]
    nibbles = [round(15.0 * f) for f in l_ac + p_ac + q_ac]
    for n in range(0, len(nibbles), 2):
        packed.append(nibbles[n] | (nibbles[n + 1] << 4 if n + 1 < len(nibbles) else 0))
    return bytes(packed)


def shrink(image: pyvips.Image, long_side: int) -> pyvips.Image:
    """At most `long_side` on the long edge, in memory (a source for the next size)."""
    if max(image.width, image.height) <= long_side:
        return image
    return image.thumbnail_image(long_side, height=long_side, size="down").copy_memory()
