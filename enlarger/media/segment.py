"""Cut a product out of its photo: an alpha mask from the pixels alone.

Two ways, both offline:
- `remove_backdrop`, for studio shots on a plain (white, grey, coloured, gently graded)
  backdrop: the backdrop is modelled from the image border, every pixel is compared with
  it in a way a cast shadow does not fool (a shadow darkens the backdrop without changing
  its hue), then morphology, the largest component and a feathered edge;
- `OnnxSegmenter`, a salient-object model (U²-Net style: RGB in, a foreground probability
  map out) loaded from a local file with onnxruntime. Nothing is ever downloaded.

Both take and return numpy arrays: RGB `uint8` (H, W, 3) in, alpha `uint8` (H, W) out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

WORKING_SIDE = 1600  # masks are estimated at most this large, then scaled to the photo


class SegmentationError(Exception):
    """No product could be told apart from the backdrop (or the model failed)."""


@dataclass(frozen=True)
class BackdropSettings:
    border_fraction: float = 0.02  # width of the border the backdrop is learnt from
    min_colour_distance: float = 14.0  # never separate colours closer than this (0-255)
    noise_factor: float = 4.0  # threshold = noise_factor x the border's own spread
    shadow_floor: float = 0.5  # a pixel darker than this fraction of the backdrop is product
    brighter_by: float = 0.12  # lighter than the backdrop by this fraction is product
    feather_px: float = 1.0  # Gaussian sigma of the alpha edge, in photo pixels
    min_area_fraction: float = 0.002  # a smaller "product" is noise: refuse


def remove_backdrop(rgb: np.ndarray, settings: BackdropSettings | None = None) -> np.ndarray:
    """The alpha mask of the product in a studio shot (255 product, 0 backdrop)."""
    settings = settings or BackdropSettings()
    small, scale = _working_copy(rgb)
    pixels = small.astype(np.float32)
    backdrop = _backdrop_model(pixels, settings.border_fraction)
    colour, ratio = _shadow_invariant_distance(pixels, backdrop)
    border = _border_mask(pixels.shape[:2], settings.border_fraction)
    spread = float(np.percentile(colour[border], 95))
    colour_limit = max(settings.min_colour_distance, settings.noise_factor * spread)
    ratio_spread = float(np.percentile(np.abs(ratio[border] - 1.0), 95))
    brighter = max(settings.brighter_by, settings.noise_factor * ratio_spread)
    product = (colour > colour_limit) | (ratio < settings.shadow_floor) | (ratio > 1 + brighter)
    mask = _clean(product, settings.min_area_fraction)
    return _full_size_alpha(mask, rgb.shape[:2], scale, settings.feather_px)


def _working_copy(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """The photo at most WORKING_SIDE on its long edge (block-averaged), and the factor."""
    height, width = rgb.shape[:2]
    step = max(1, int(np.ceil(max(height, width) / WORKING_SIDE)))
    if step == 1:
        return rgb, 1.0
    h, w = height // step * step, width // step * step
    blocks = rgb[:h, :w].reshape(h // step, step, w // step, step, 3).astype(np.float32)
    return blocks.mean(axis=(1, 3)), float(step)


def _border_mask(shape: tuple[int, ...], fraction: float) -> np.ndarray:
    height, width = shape[:2]
    band = max(2, round(min(height, width) * fraction))
    border = np.zeros((height, width), dtype=bool)
    border[:band], border[-band:], border[:, :band], border[:, -band:] = True, True, True, True
    return border


def _backdrop_model(pixels: np.ndarray, fraction: float) -> np.ndarray:
    """The backdrop's colour at every pixel: a quadratic surface per channel fitted to the
    border, so a graded or vignetted backdrop is followed. Border pixels that fit badly
    (a product touching the edge) are dropped and the surface fitted again."""
    height, width = pixels.shape[:2]
    border = _border_mask(pixels.shape, fraction)
    ys, xs = np.nonzero(border)
    samples = pixels[ys, xs]
    terms = _surface_terms(xs / width, ys / height)
    keep = np.ones(len(samples), dtype=bool)
    for _ in range(2):
        coefficients, *_ = np.linalg.lstsq(terms[keep], samples[keep], rcond=None)
        residual = np.linalg.norm(terms @ coefficients - samples, axis=1)
        keep = residual <= max(6.0, float(np.percentile(residual, 80)) * 2.5)
    return _evaluate_surface(coefficients, width, height).clip(1.0, 255.0)


def _surface_terms(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=1).astype(np.float32)


def _evaluate_surface(coefficients: np.ndarray, width: int, height: int) -> np.ndarray:
    """The fitted surface at every pixel, term by term along rows and columns (no
    per-pixel design matrix)."""
    x = (np.arange(width, dtype=np.float32) / width)[None, :, None]
    y = (np.arange(height, dtype=np.float32) / height)[:, None, None]
    c0, cx, cy, cxx, cyy, cxy = (row.astype(np.float32) for row in coefficients)
    across = c0 + cx * x + cxx * x * x  # (1, W, 3)
    down = cy * y + cyy * y * y  # (H, 1, 3)
    return across + down + cxy * (y * x)


def _shadow_invariant_distance(
    pixels: np.ndarray, backdrop: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: how far its colour is from the backdrop's once brightness is set aside
    (a shadow only scales the backdrop's colour), and its brightness as a fraction of the
    backdrop's."""
    ratio = (pixels * backdrop).sum(axis=2) / (backdrop * backdrop).sum(axis=2)
    colour = np.linalg.norm(pixels - backdrop * ratio[..., None], axis=2)
    return colour, ratio


def _clean(product: np.ndarray, min_area_fraction: float) -> np.ndarray:
    """Noise specks off, small gaps closed, the largest component with its small holes
    filled (a handle's opening, larger, stays open)."""
    structure = np.ones((3, 3), dtype=bool)
    mask = ndimage.binary_opening(product, structure)
    mask = ndimage.binary_closing(mask, structure, iterations=2, border_value=0)
    labels, count = ndimage.label(mask)
    if count == 0:
        raise SegmentationError("no product stands out from the backdrop")
    sizes = np.bincount(labels.ravel())[1:]
    largest = int(np.argmax(sizes)) + 1
    if sizes[largest - 1] < min_area_fraction * mask.size:
        raise SegmentationError("no product stands out from the backdrop")
    mask = labels == largest
    holes, hole_count = ndimage.label(ndimage.binary_fill_holes(mask) & ~mask)
    if hole_count:
        hole_sizes = np.bincount(holes.ravel())
        small = hole_sizes < 0.02 * sizes[largest - 1]
        small[0] = False
        mask |= small[holes]
    return mask


def _full_size_alpha(
    mask: np.ndarray, shape: tuple[int, ...], scale: float, feather_px: float
) -> np.ndarray:
    """The working mask at the photo's size, its edge feathered."""
    alpha = mask.astype(np.float32)
    if scale != 1.0:
        zoom = (shape[0] / mask.shape[0], shape[1] / mask.shape[1])
        alpha = ndimage.zoom(alpha, zoom, order=1)[: shape[0], : shape[1]]
        alpha = np.pad(alpha, ((0, shape[0] - alpha.shape[0]), (0, shape[1] - alpha.shape[1])))
    if feather_px > 0:
        alpha = ndimage.gaussian_filter(alpha, feather_px)
    return (alpha * 255.0 + 0.5).clip(0, 255).astype(np.uint8)


class OnnxSegmenter:
    """A salient-object model from a local `.onnx` file: input (1, 3, H, W) float RGB in
    0..1 (normalised with `mean`/`std`), output (1, 1, H, W) foreground probability.
    A model with a fixed input size gets the photo resized to it; a dynamic one gets the
    working copy as it is."""

    def __init__(
        self,
        model_path: Path,
        mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
        std: tuple[float, float, float] = (1.0, 1.0, 1.0),
        threshold: float = 0.5,
    ) -> None:
        import onnxruntime

        if not model_path.is_file():
            raise SegmentationError(f"no segmentation model at {model_path}")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(
                str(model_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise SegmentationError(f"cannot load the model {model_path}: {exc}") from exc
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        self._fixed_size = _fixed_size(model_input.shape)
        self._mean = np.array(mean, dtype=np.float32).reshape(1, 3, 1, 1)
        self._std = np.array(std, dtype=np.float32).reshape(1, 3, 1, 1)
        self._threshold = threshold

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        small, _ = _working_copy(rgb)
        if self._fixed_size is not None:
            small = _resize(small.astype(np.float32), self._fixed_size)
        batch = small.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        batch = (batch - self._mean) / self._std
        try:
            (probability,) = self._session.run(None, {self._input_name: batch})[:1]
        except Exception as exc:
            raise SegmentationError(f"the segmentation model failed: {exc}") from exc
        probability = np.asarray(probability, dtype=np.float32).reshape(probability.shape[-2:])
        mask = _clean(probability >= self._threshold, BackdropSettings().min_area_fraction)
        scale = rgb.shape[0] / mask.shape[0]
        return _full_size_alpha(mask, rgb.shape[:2], scale, BackdropSettings().feather_px)


def _fixed_size(shape: list[Any]) -> tuple[int, int] | None:
    height, width = shape[-2], shape[-1]
    if isinstance(height, int) and isinstance(width, int):
        return height, width
    return None


def _resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    zoom = (size[0] / pixels.shape[0], size[1] / pixels.shape[1], 1)
    resized = ndimage.zoom(pixels, zoom, order=1)
    return resized[: size[0], : size[1]]


def bounding_box(alpha: np.ndarray, threshold: int = 128) -> tuple[int, int, int, int]:
    """(left, top, width, height) of where `alpha` is at least `threshold`."""
    rows = np.flatnonzero((alpha >= threshold).any(axis=1))
    columns = np.flatnonzero((alpha >= threshold).any(axis=0))
    if not len(rows):
        raise SegmentationError("the mask is empty")
    return (
        int(columns[0]),
        int(rows[0]),
        int(columns[-1] - columns[0] + 1),
        int(rows[-1] - rows[0] + 1),
    )


def iou(mask: np.ndarray, truth: np.ndarray, threshold: int = 128) -> float:
    """Intersection over union of two masks (alpha at least `threshold` counts)."""
    a, b = mask >= threshold, truth >= threshold
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
