"""The built-in providers, one function per stage: each reads what the job has so far,
does its work, writes its artifacts (deterministic keys, atomic writes: a stage run twice
after a crash writes the same files) and returns the job's new fields and its costs.

QUEUED: fetch the original · SEGMENTING: mask, cut-out and how sure it is ·
BG_GENERATING: the theme's backgrounds · COMPOSITING: composites and 400 px thumbnails,
then NEEDS_REVIEW instead of PUBLISHING when the cut-out is doubtful · PUBLISHING: hand
them over (see `enlarger.catalog.publish`).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from enlarger.catalog import publish
from enlarger.catalog.catalog import Catalog
from enlarger.catalog.fetch import fetch
from enlarger.catalog.product_jobs import Cost, artifact_prefix
from enlarger.catalog.states import ProductError, ProductStatus, StageFailed
from enlarger.catalog.themes import PRESETS, Theme
from enlarger.config import Settings
from enlarger.media import Limits, MediaError, load, probe
from enlarger.media.compose import (
    Background,
    Placement,
    canvas_size,
    compose,
    cutout_png,
    decode_mask,
    draw_background,
    mask_png,
    rgb_array,
    to_jpeg,
)
from enlarger.media.segment import (
    Concern,
    SaliencyModel,
    SegmentationError,
    bounding_box,
    cut_out,
)

WORK_SIDE = 3000  # originals are decoded at most this large: masks and composites agree
THUMB_SIDE = 400
ENLARGED_ABOVE = 4.0  # a product scaled up more than this in a composite is a concern
# Concerns that hold a job for review whatever its confidence: the product is cut off by
# the photo's frame, or blown up from a photo too small for the composite.
ALWAYS_REVIEWED = frozenset({"CROPPED", "ENLARGED"})
COMPOSITE_QUALITY = 90
FREE = Decimal(0)


@dataclass(frozen=True)
class StageResult:
    updates: dict[str, Any]
    costs: list[Cost]
    following: ProductStatus | None = None  # None: the stage's usual next status


@dataclass(frozen=True)
class Frame:
    """One output of a theme: an aspect ratio or a preset, with its size and look."""

    name: str  # "1x1", "16x9", "shopify"…
    width: int
    height: int
    background: Background
    placement: Placement


def frames(theme: Theme) -> list[Frame]:
    made = []
    for aspect in theme.aspects:
        width, height = canvas_size(aspect, theme.long_side)
        made.append(
            Frame(aspect.replace(":", "x"), width, height, theme.background, theme.placement())
        )
    for name in theme.presets:
        preset = PRESETS[name]
        background = preset.background or theme.background
        made.append(Frame(name, preset.width, preset.height, background, theme.placement(name)))
    return made


# ---- QUEUED: fetch ---------------------------------------------------------------------------


def fetch_original(catalog: Catalog, job: dict[str, Any]) -> StageResult:
    if job["original_key"]:  # sent with the request: stored already
        return StageResult({}, [])
    download = catalog.temp_dir / f"{uuid.uuid4().hex}.download"
    try:
        fetch(job["image_url"], download, job["sha256"], catalog.fetch_limits)
        try:
            found = probe(download, Limits(catalog.fetch_limits.max_bytes))
        except MediaError as error:
            raise StageFailed(ProductError.INVALID_IMAGE, error.message) from None
        key = f"{artifact_prefix(job)}original.{found.format}"
        catalog.blobs.take_file(key, download)
    finally:
        download.unlink(missing_ok=True)
    return StageResult({"original_key": key}, [])


# ---- SEGMENTING ------------------------------------------------------------------------------


def _read_image(catalog: Catalog, key: str) -> np.ndarray:
    """A stored image as RGB, at most WORK_SIDE on its long edge (MediaError if broken)."""
    with catalog.blobs.local_copy(key) as path:
        found = probe(path, Limits(catalog.fetch_limits.max_bytes))
        return rgb_array(load(path, found, WORK_SIDE))


def _decoded_original(catalog: Catalog, key: str) -> np.ndarray:
    try:
        return _read_image(catalog, key)
    except MediaError as error:
        raise StageFailed(ProductError.INVALID_IMAGE, error.message) from None


@functools.cache
def _model(settings: Settings) -> SaliencyModel | None:
    """The configured model file, loaded once per process (None: the built-in one)."""
    if not settings.product_onnx_model:
        return None
    try:
        return SaliencyModel(Path(settings.product_onnx_model), settings.product_onnx_preprocessing)
    except SegmentationError as error:
        raise StageFailed(ProductError.SEGMENT_FAILED, str(error)) from None


def segment(catalog: Catalog, job: dict[str, Any]) -> StageResult:
    rgb = _decoded_original(catalog, job["original_key"])
    model = _model(catalog.settings)
    method = job.get("requested_method") or catalog.settings.product_cut_method
    try:
        cut = cut_out(rgb, model, method)
        left, top, width, height = bounding_box(cut.alpha)
    except SegmentationError as error:
        raise StageFailed(ProductError.SEGMENT_FAILED, str(error)) from None
    prefix = artifact_prefix(job)
    catalog.blobs.put_bytes(f"{prefix}mask.png", mask_png(cut.alpha))
    box = np.s_[top : top + height, left : left + width]
    catalog.blobs.put_bytes(f"{prefix}cutout.png", cutout_png(rgb[box], cut.alpha[box]))
    made_by = cut.method if model is None or cut.method == "backdrop" else f"onnx:{model.name}"
    updates = {
        "mask_key": f"{prefix}mask.png",
        "cutout_key": f"{prefix}cutout.png",
        "cutout_method": made_by,
        "confidence": cut.confidence,
        "concerns": [_concern_json(concern) for concern in cut.concerns],
    }
    return StageResult(updates, [Cost(ProductStatus.SEGMENTING, f"builtin-{made_by}", FREE)])


def _concern_json(concern: Concern) -> dict[str, str]:
    return {"code": concern.code, "message": concern.message}


# ---- BG_GENERATING ---------------------------------------------------------------------------


def backgrounds(catalog: Catalog, job: dict[str, Any]) -> StageResult:
    prefix = artifact_prefix(job)
    keys = []
    for frame in frames(catalog.themes[job["theme"]]):
        pixels = draw_background(frame.background, frame.width, frame.height)
        key = f"{prefix}bg-{frame.name}.jpg"
        catalog.blobs.put_bytes(key, to_jpeg(pixels, quality=95))
        keys.append(key)
    return StageResult(
        {"bg_keys": keys}, [Cost(ProductStatus.BG_GENERATING, "builtin-background", FREE)]
    )


# ---- COMPOSITING -----------------------------------------------------------------------------


def composite(catalog: Catalog, job: dict[str, Any]) -> StageResult:
    rgb = _decoded_original(catalog, job["original_key"])
    with catalog.blobs.local_copy(job["mask_key"]) as path:
        alpha = decode_mask(path.read_bytes())
    if alpha.shape != rgb.shape[:2]:
        mask_size, photo_size = alpha.shape[::-1], rgb.shape[1::-1]
        message = f"the mask is {mask_size}, the photo {photo_size} (width, height)"
        raise StageFailed(ProductError.COMPOSITE_FAILED, message)
    prefix = artifact_prefix(job)
    theme_frames = frames(catalog.themes[job["theme"]])
    if len(theme_frames) != len(job["bg_keys"]):
        raise StageFailed(ProductError.COMPOSITE_FAILED, "the backgrounds do not match the theme")
    made = []
    enlarged = 0.0
    product_width = bounding_box(alpha)[2]
    for frame, bg_key in zip(theme_frames, job["bg_keys"], strict=True):
        try:
            background = _read_image(catalog, bg_key)
            pixels, box = compose(rgb, alpha, background, frame.placement)
        except (MediaError, SegmentationError) as error:
            raise StageFailed(ProductError.COMPOSITE_FAILED, str(error)) from None
        key, thumb = f"{prefix}composite-{frame.name}.jpg", f"{prefix}thumb-{frame.name}.jpg"
        catalog.blobs.put_bytes(key, to_jpeg(pixels, COMPOSITE_QUALITY))
        catalog.blobs.put_bytes(thumb, to_jpeg(pixels, COMPOSITE_QUALITY, long_side=THUMB_SIDE))
        made.append(
            {
                "key": key,
                "name": frame.name,
                "width": frame.width,
                "height": frame.height,
                "thumbKey": thumb,
            }
        )
        enlarged = max(enlarged, box[2] / product_width)
    concerns = [c for c in job.get("concerns") or [] if c["code"] != "ENLARGED"]
    if enlarged > ENLARGED_ABOVE:
        message = f"the product, {product_width} px wide in its photo, is enlarged {enlarged:.1f}x"
        concerns.append({"code": "ENLARGED", "message": message})
    updates = {
        "composite_keys": [m["key"] for m in made],
        "thumb_keys": [m["thumbKey"] for m in made],
        "composites": made,
        "concerns": concerns,
    }
    following = ProductStatus.NEEDS_REVIEW if _doubtful(catalog, job, concerns) else None
    costs = [Cost(ProductStatus.COMPOSITING, "builtin-composite", FREE)]
    return StageResult(updates, costs, following)


def _doubtful(catalog: Catalog, job: dict[str, Any], concerns: list[dict[str, str]]) -> bool:
    """Whether a person should see the cut-out before it is published."""
    threshold = catalog.settings.product_review_below
    if threshold <= 0 or job.get("confidence") is None:
        return False  # review is off, or the mask came from an external worker
    warned = any(concern["code"] in ALWAYS_REVIEWED for concern in concerns)
    return warned or job["confidence"] < threshold


# ---- PUBLISHING ------------------------------------------------------------------------------


def publish_composites(catalog: Catalog, job: dict[str, Any]) -> StageResult:
    media_ids: list[str] = []
    published: dict[str, Any] = dict(job.get("published") or {})
    costs = []
    for name in catalog.settings.product_publisher_list:
        result = publish.PUBLISHERS[name](catalog, job)
        published[name] = result.details
        media_ids.extend(result.media_ids)
        costs.append(Cost(ProductStatus.PUBLISHING, name, result.cost_usd))
    return StageResult({"media_ids": media_ids, "published": published}, costs)


STAGES: dict[
    ProductStatus, tuple[Callable[[Catalog, dict[str, Any]], StageResult], ProductStatus]
] = {
    ProductStatus.QUEUED: (fetch_original, ProductStatus.SEGMENTING),
    ProductStatus.SEGMENTING: (segment, ProductStatus.BG_GENERATING),
    ProductStatus.BG_GENERATING: (backgrounds, ProductStatus.COMPOSITING),
    ProductStatus.COMPOSITING: (composite, ProductStatus.PUBLISHING),
    ProductStatus.PUBLISHING: (publish_composites, ProductStatus.DONE),
}
