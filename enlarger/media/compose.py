"""Marketplace composites: a cut-out product placed on a background.

Backgrounds are drawn, not fetched: a solid colour, a vertical gradient, or a studio
(a wall meeting a floor in a soft sweep). The product's bounding box is scaled so that it
fills `fill` of the frame along its limiting side and is centred; on a studio floor it
stands on the floor line and casts a soft contact shadow. Arrays in, JPEG bytes out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyvips

from enlarger.media.segment import bounding_box

ASPECTS: dict[str, tuple[int, int]] = {"1:1": (1, 1), "4:5": (4, 5), "3:4": (3, 4), "16:9": (16, 9)}
BackgroundKind = Literal["solid", "gradient", "studio"]
STUDIO_HORIZON = 0.68  # where the wall meets the floor, as a fraction of the height
STUDIO_FLOOR_LINE = 0.86  # where a product stands on a studio floor


def canvas_size(aspect: str, long_side: int) -> tuple[int, int]:
    """(width, height) of a frame of `aspect` ("4:5") whose long side is `long_side`."""
    across, down = ASPECTS[aspect]
    if across >= down:
        return long_side, round(long_side * down / across)
    return round(long_side * across / down), long_side


@dataclass(frozen=True)
class Background:
    kind: BackgroundKind
    colours: tuple[tuple[int, int, int], ...]  # solid: one; gradient and studio: two

    def __post_init__(self) -> None:
        wanted = 1 if self.kind == "solid" else 2
        if self.kind not in ("solid", "gradient", "studio") or len(self.colours) != wanted:
            raise ValueError(f"a {self.kind} background takes {wanted} colour(s)")


def draw_background(background: Background, width: int, height: int) -> np.ndarray:
    """The background as RGB uint8 (height, width, 3)."""
    if background.kind == "solid":
        return np.broadcast_to(
            np.asarray(background.colours[0], dtype=np.uint8), (height, width, 3)
        ).copy()
    top, bottom = (np.asarray(c, dtype=np.float32) for c in background.colours)
    y = (np.arange(height, dtype=np.float32) / max(1, height - 1))[:, None]
    if background.kind == "gradient":
        column = top + (bottom - top) * y
    else:  # studio: the wall (top colour) sweeps into the floor (bottom colour)
        sweep = 1 / (1 + np.exp(-(y - STUDIO_HORIZON) * 18))
        floor_fade = 1 - 0.08 * np.clip((y - STUDIO_HORIZON) / (1 - STUDIO_HORIZON), 0, 1)
        column = (top + (bottom - top) * sweep) * floor_fade
    rows = np.broadcast_to(column[:, None, :], (height, width, 3))
    return (rows + 0.5).clip(0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Placement:
    fill: float = 0.8  # the product's limiting side over the frame's
    on_floor: bool = False  # stand on the studio floor line instead of centring
    shadow: bool = False  # a soft contact shadow under the product
    shadow_strength: float = 0.35


def compose(
    rgb: np.ndarray, alpha: np.ndarray, background: np.ndarray, placement: Placement
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The product on the background, and where its box landed (left, top, width, height)."""
    height, width = background.shape[:2]
    left, top, box_w, box_h = bounding_box(alpha)
    scale = min(placement.fill * width / box_w, placement.fill * height / box_h)
    product = _rgba(
        rgb[top : top + box_h, left : left + box_w], alpha[top : top + box_h, left : left + box_w]
    )
    product = product.resize(scale, kernel="lanczos3")
    x = (width - product.width) // 2
    if placement.on_floor:
        y = min(height - product.height, round(height * STUDIO_FLOOR_LINE) - product.height)
        y = max(0, y)
    else:
        y = (height - product.height) // 2
    if placement.shadow:
        canvas = background.astype(np.float32)
        _contact_shadow(canvas, x, y, product.width, product.height, placement)
        background = canvas.clip(0, 255).astype(np.uint8)
    base = _vips(background)
    placed = base.composite2(product, "over", x=x, y=y).extract_band(0, n=3)
    pixels = np.ndarray(
        buffer=placed.cast("uchar").write_to_memory(), dtype=np.uint8, shape=(height, width, 3)
    )
    return pixels, (x, y, product.width, product.height)


def _contact_shadow(
    canvas: np.ndarray, x: int, y: int, box_w: int, box_h: int, placement: Placement
) -> None:
    """Darken a soft ellipse under the product's base, in place (only the patch where
    the shadow is not negligible is touched)."""
    height, width = canvas.shape[:2]
    centre_x, centre_y = x + box_w / 2, y + box_h
    radius_x, radius_y = box_w * 0.5, max(4.0, box_h * 0.05)
    top, bottom = (
        max(0, int(centre_y - 2 * radius_y)),
        min(height, int(centre_y + 2 * radius_y) + 1),
    )
    left, right = max(0, int(centre_x - 2 * radius_x)), min(width, int(centre_x + 2 * radius_x) + 1)
    ys, xs = np.ogrid[top:bottom, left:right]
    inside = ((xs - centre_x) / radius_x) ** 2 + ((ys - centre_y) / radius_y) ** 2
    shade = np.exp(-2.5 * inside).astype(np.float32)
    canvas[top:bottom, left:right] *= (1 - placement.shadow_strength * shade)[..., None]


def _vips(pixels: np.ndarray) -> pyvips.Image:
    height, width = pixels.shape[:2]
    bands = 1 if pixels.ndim == 2 else pixels.shape[2]
    return pyvips.Image.new_from_memory(
        np.ascontiguousarray(pixels).tobytes(), width, height, bands, "uchar"
    )


def _rgba(rgb: np.ndarray, alpha: np.ndarray) -> pyvips.Image:
    image = _vips(np.dstack([rgb, alpha]))
    return image.copy(interpretation="srgb")


def cutout_png(rgb: np.ndarray, alpha: np.ndarray) -> bytes:
    """The product with its alpha, as a PNG (what other tools take for a cut-out)."""
    return _rgba(rgb, alpha).pngsave_buffer(compression=6, keep=pyvips.enums.ForeignKeep.NONE)


def mask_png(alpha: np.ndarray) -> bytes:
    return _vips(alpha).copy(interpretation="b-w").pngsave_buffer(compression=6)


def to_jpeg(pixels: np.ndarray, quality: int = 90, long_side: int | None = None) -> bytes:
    """RGB array as JPEG, shrunk to `long_side` first when given."""
    image = _vips(pixels).copy(interpretation="srgb")
    if long_side is not None and max(image.width, image.height) > long_side:
        image = image.thumbnail_image(long_side, height=long_side, size="down")
    return image.jpegsave_buffer(Q=quality, keep=pyvips.enums.ForeignKeep.NONE)


def rgb_array(image: pyvips.Image) -> np.ndarray:
    """A decoded 8-bit sRGB image (as `media.load` gives) as RGB uint8 (H, W, 3), any
    alpha flattened onto white."""
    if image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    if image.bands == 1:
        image = image.bandjoin([image, image])
    image = image.cast("uchar")
    return np.ndarray(
        buffer=image.write_to_memory(), dtype=np.uint8, shape=(image.height, image.width, 3)
    )


def decode_mask(data: bytes) -> np.ndarray:
    """A mask image (PNG, grey or with alpha) as uint8 (H, W): its alpha when it has one."""
    image = pyvips.Image.new_from_buffer(data, "", fail_on="error")
    band = image[image.bands - 1] if image.hasalpha() else image[0]
    band = band.cast("uchar")
    return np.ndarray(
        buffer=band.write_to_memory(), dtype=np.uint8, shape=(band.height, band.width)
    )
