"""Generated studio product photos with known masks: the benchmark's and the tests' data.

Each photo is a shaded, slightly textured object (an ellipse, a rounded box or a bottle
shape, of one of several colours, dark ones included) on a white or grey backdrop with a
gentle grade and vignette, a soft cast shadow beside and under it (outside the mask),
sensor noise, and JPEG compression. The true mask is drawn at four times the size and
scaled down, so its edge is anti-aliased like the photo's.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SUPERSAMPLE = 4
COLOURS = [
    (200, 30, 40),  # red
    (30, 90, 200),  # blue
    (40, 150, 60),  # green
    (230, 170, 20),  # yellow
    (120, 40, 160),  # purple
    (30, 30, 35),  # near black
    (150, 90, 50),  # brown
    (20, 160, 170),  # teal
]
SHAPES = ("ellipse", "box", "bottle")


@dataclass(frozen=True)
class ProductPhoto:
    jpeg: bytes
    truth: np.ndarray  # uint8 (H, W): 255 product, 0 backdrop
    backdrop: str
    shape: str
    colour: tuple[int, int, int]


def product_photo(
    seed: int,
    width: int = 1200,
    height: int = 1200,
    backdrop: str | None = None,
    shape: str | None = None,
    colour: tuple[int, int, int] | None = None,
    pieces: int = 1,
) -> ProductPhoto:
    """One photo; `pieces` objects side by side make a set (a pair of shoes, say)."""
    rng = np.random.default_rng(seed)
    backdrop = backdrop or ("white", "grey")[seed % 2]
    shape = shape or SHAPES[seed % len(SHAPES)]
    colour = colour or COLOURS[seed % len(COLOURS)]
    truth = _object_mask(rng, width, height, shape, pieces)
    pixels = _backdrop(rng, width, height, backdrop)
    pixels *= _shadow(rng, truth, width, height)[..., None]
    alpha = truth.astype(np.float32)[..., None] / 255.0
    pixels = pixels * (1 - alpha) + _object_pixels(rng, width, height, colour, truth) * alpha
    pixels += rng.normal(0.0, rng.uniform(1.5, 3.5), pixels.shape)
    out = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
    return ProductPhoto(out.getvalue(), truth, backdrop, shape, colour)


def _object_mask(
    rng: np.random.Generator, width: int, height: int, shape: str, pieces: int
) -> np.ndarray:
    big = Image.new("L", (width * SUPERSAMPLE, height * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(big)
    object_w = rng.uniform(0.3, 0.55) * width / pieces
    object_h = rng.uniform(0.35, 0.65) * height
    cx = width / 2 + rng.uniform(-0.08, 0.08) * width / pieces
    cy = height / 2 + rng.uniform(-0.05, 0.08) * height
    gap = object_w * 1.4
    for piece in range(pieces):
        middle = cx + (piece - (pieces - 1) / 2) * gap
        _draw_shape(draw, shape, middle, cy, object_w, object_h)
    small = big.resize((width, height), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.uint8)


def _draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, object_w: float, object_h: float
) -> None:
    s = SUPERSAMPLE
    left, top = (cx - object_w / 2) * s, (cy - object_h / 2) * s
    right, bottom = (cx + object_w / 2) * s, (cy + object_h / 2) * s
    if shape == "ellipse":
        draw.ellipse((left, top, right, bottom), fill=255)
    elif shape == "box":
        draw.rounded_rectangle((left, top, right, bottom), radius=0.12 * object_w * s, fill=255)
    else:  # a bottle: a body, a shoulder and a neck
        neck_w = 0.3 * (right - left)
        body_top = top + 0.35 * (bottom - top)
        draw.rounded_rectangle(
            (left, body_top, right, bottom), radius=0.15 * object_w * s, fill=255
        )
        draw.ellipse(
            (left, body_top - 0.12 * (bottom - top), right, body_top + 0.1 * (bottom - top)),
            fill=255,
        )
        middle = (left + right) / 2
        draw.rectangle((middle - neck_w / 2, top, middle + neck_w / 2, body_top), fill=255)


def _backdrop(rng: np.random.Generator, width: int, height: int, kind: str) -> np.ndarray:
    level = rng.uniform(238, 250) if kind == "white" else rng.uniform(165, 200)
    tint = rng.uniform(-3, 3, size=3)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    grade = 1.0 - rng.uniform(0.0, 0.06) * ys / height
    distance = ((xs / width - 0.5) ** 2 + (ys / height - 0.5) ** 2) / 0.5
    vignette = 1.0 - rng.uniform(0.0, 0.06) * distance
    base = (level * grade * vignette)[..., None] + tint
    return base.astype(np.float32) * np.ones(3, dtype=np.float32)


def _shadow(rng: np.random.Generator, truth: np.ndarray, width: int, height: int) -> np.ndarray:
    """A multiplier (1: no shadow): the object's silhouette squashed onto the floor and
    blurred, plus a contact shadow along its base."""
    rows = np.flatnonzero(truth.max(axis=1) > 0)
    columns = np.flatnonzero(truth.max(axis=0) > 0)
    bottom, left, right = rows[-1], columns[0], columns[-1]
    shade = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(shade)
    offset = rng.uniform(0.02, 0.1) * width
    spread = 0.06 * height
    draw.ellipse((left + offset, bottom - spread, right + offset, bottom + spread * 0.6), fill=255)
    shade = shade.filter(ImageFilter.GaussianBlur(rng.uniform(10, 22)))
    strength = rng.uniform(0.15, 0.35)
    return 1.0 - strength * np.asarray(shade, dtype=np.float32) / 255.0


def _object_pixels(
    rng: np.random.Generator,
    width: int,
    height: int,
    colour: tuple[int, int, int],
    truth: np.ndarray,
) -> np.ndarray:
    """The object's colour, lit from the top left, with a little texture."""
    rows = np.flatnonzero(truth.max(axis=1) > 0)
    columns = np.flatnonzero(truth.max(axis=0) > 0)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    u = (xs - columns[0]) / max(1, columns[-1] - columns[0])
    v = (ys - rows[0]) / max(1, rows[-1] - rows[0])
    light = 1.15 - 0.35 * (0.6 * u + 0.4 * v)
    texture = rng.normal(1.0, 0.03, (height, width)).astype(np.float32)
    lit = np.asarray(colour, dtype=np.float32) * (light * texture)[..., None]
    return lit + 12.0  # even black plastic reflects a little
