"""Culling assistance from a photo's pixels, with no model to download: how sharp it is
(variance of the Laplacian, per region, so a sharp subject before a soft background
counts as sharp), how much of it is clipped to white or black, how far its exposure is
from a good one (read off the histogram, not only clipped pixels: sensor noise lifts an
under-exposed frame's shadows off black), and a perceptual hash that stays close when the
camera moves a little between frames of a burst.

Everything is measured on the image shrunk to `ASSESS_SIDE` on its long edge, so numbers
from a 12 MP phone and a 45 MP camera mean the same. In an image with transparency (a
cut-out, a logo) only its opaque pixels are measured: what shows through is nobody's
exposure, and flattened onto white it read as clipped highlights. Grouping photos into bursts and
picking a burst's best frame are functions over these numbers (`bursts`, `best_frame`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyvips

ASSESS_SIDE = 1024
GRID = 4  # sharpness is measured in GRID x GRID regions; the sharpest one counts
HASH_SIDE, HASH_BITS_SIDE = 32, 8  # a 64-bit DCT hash of a 32 x 32 grey copy
BURST_DISTANCE = 12  # frames of a burst have hashes differing in at most this many bits
MID_GREY = 0.18  # a meter's idea of an average scene, in linear light
BRIGHT_END = 0.995  # the histogram's top: the level this share of pixels stays below
WELL_EXPOSED_TOP = 0.8  # linear light (about 231 in sRGB) the top of a good frame reaches
DARK_EV, BRIGHT_EV = -1.0, 0.8  # past these (stops), a frame is called dark or bright
DARK_MEDIAN_EV = -0.5  # and a dark one's median is below mid-grey (a foggy scene's is not)
BRIGHT_CLIPPED = 0.03  # and a bright one clips at least this share of its pixels
OPAQUE_ALPHA = 128  # a pixel at least this opaque is measured; what shows through is not
MIN_OPAQUE_SHARE = 0.05  # a region with fewer opaque pixels than this has no sharpness


@dataclass(frozen=True)
class Assessment:
    sharpness: float  # the sharpest region's variance of the Laplacian
    regions: list[float]  # every region's, row by row (GRID x GRID)
    highlights: float  # share of pixels with a channel at white
    shadows: float  # share of pixels black in every channel
    phash: str  # 16 hex digits
    exposure: float  # stops from an average scene's exposure (the median against mid-grey)
    headroom: float  # stops the histogram's top stays below a good frame's (0 or less)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def assess(image: pyvips.Image) -> Assessment:
    """Measure an 8-bit sRGB or grey image (a preview as rendered)."""
    long_side = max(image.width, image.height)
    if long_side > ASSESS_SIDE:
        scale = ASSESS_SIDE / long_side
        if image.hasalpha():  # premultiplied: what shows through bleeds into no edge
            image = image.premultiply().resize(scale, kernel="linear").unpremultiply()
        else:
            image = image.resize(scale, kernel="linear")
    opaque = None
    if image.hasalpha():
        opaque = image[image.bands - 1].numpy() >= OPAQUE_ALPHA
        image = image.flatten(background=[255, 255, 255])
        if not opaque.any():
            opaque = None  # nothing opaque: the whole image, as it shows on white
    colour = np.atleast_3d(image.cast("uchar").numpy())
    brightest = colour[:, :, 0]
    for band in range(1, min(colour.shape[2], 3)):  # faster than max(axis=2) on pixel-major
        brightest = np.maximum(brightest, colour[:, :, band])
    grey = (
        colour[:, :, :3] @ np.array([0.299, 0.587, 0.114], np.float32)
        if colour.shape[2] >= 3
        else colour[:, :, 0].astype(np.float32)
    )
    regions = _region_sharpness(grey, opaque)
    if opaque is not None:
        brightest, measured = brightest[opaque], grey[opaque]
    else:
        measured = grey
    exposure, headroom = _exposure(measured)
    return Assessment(
        sharpness=max(regions),
        regions=regions,
        highlights=round(float(np.count_nonzero(brightest >= 254)) / brightest.size, 4),
        shadows=round(float(np.count_nonzero(brightest <= 1)) / brightest.size, 4),
        phash=perceptual_hash(grey),
        exposure=exposure,
        headroom=headroom,
    )


def _linear(level: float) -> float:
    """An sRGB level (0-255) in linear light (0-1)."""
    v = min(max(level, 0.0), 255.0) / 255
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def _exposure(grey: np.ndarray) -> tuple[float, float]:
    """From the luminance histogram: the median's distance from mid-grey in stops, and
    how many stops the top of the histogram stays below where a good frame's reaches. A
    frame shot at a third of its exposure keeps its median and its top ~1.6 stops down,
    whatever its noise does to the shadows; a night scene with lights in it keeps its top."""
    counts = np.bincount(np.clip(grey, 0, 255).astype(np.uint8).ravel(), minlength=256)
    cumulative = np.cumsum(counts) / max(int(counts.sum()), 1)
    median = float(np.searchsorted(cumulative, 0.5))
    top = float(np.searchsorted(cumulative, BRIGHT_END))
    exposure = np.log2(max(_linear(median), 1e-4) / MID_GREY)
    headroom = min(0.0, np.log2(max(_linear(top), 1e-4) / WELL_EXPOSED_TOP))
    return round(float(exposure), 2), round(float(headroom), 2)


def is_dark(assessment: dict[str, Any]) -> bool:
    """Under-exposed: even its brightest parts stay a stop or more below a good frame's,
    and so does most of it (a flat, foggy scene has no highlights either, but its median
    sits at mid-grey)."""
    return (
        float(assessment.get("headroom", 0.0)) <= DARK_EV
        and float(assessment.get("exposure", 0.0)) <= DARK_MEDIAN_EV
    )


def is_bright(assessment: dict[str, Any]) -> bool:
    """Over-exposed: its median a stop or more above mid-grey, with highlights clipped."""
    return (
        float(assessment.get("exposure", 0.0)) >= BRIGHT_EV
        and float(assessment["highlights"]) >= BRIGHT_CLIPPED
    )


def _region_sharpness(grey: np.ndarray, opaque: np.ndarray | None = None) -> list[float]:
    """The variance of the Laplacian in each of GRID x GRID regions (all 0 for an image
    too small to have them). With `opaque`, only at opaque pixels whose four neighbours
    are opaque too (the edge of a cut-out against white is not its sharpness); a region
    with too few of them counts 0."""
    if min(grey.shape) < 2 + 2 * GRID:
        return [0.0] * (GRID * GRID)
    lap = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
    rows = np.array_split(np.arange(lap.shape[0]), GRID)
    cols = np.array_split(np.arange(lap.shape[1]), GRID)
    if opaque is None:
        return [
            round(float(lap[r[0] : r[-1] + 1, c[0] : c[-1] + 1].var()), 2)
            for r in rows
            for c in cols
        ]
    inside = opaque[1:-1, 1:-1] & opaque[:-2, 1:-1] & opaque[2:, 1:-1]
    inside &= opaque[1:-1, :-2] & opaque[1:-1, 2:]
    variances = []
    for r in rows:
        for c in cols:
            region = (slice(r[0], r[-1] + 1), slice(c[0], c[-1] + 1))
            values = lap[region][inside[region]]
            enough = values.size >= MIN_OPAQUE_SHARE * inside[region].size
            variances.append(round(float(values.var()), 2) if enough else 0.0)
    return variances


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II as a matrix: D @ x transforms the columns of x."""
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    matrix = np.sqrt(2 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    matrix[0] /= np.sqrt(2)
    return matrix


_DCT = _dct_matrix(HASH_SIDE)


def perceptual_hash(grey: np.ndarray) -> str:
    """The DCT hash: which of the 64 lowest frequencies of a 32 x 32 copy are above their
    median. Small shifts and exposure changes move few bits; another scene moves ~half."""
    small = pyvips.Image.new_from_array(grey).resize(
        HASH_SIDE / grey.shape[1], vscale=HASH_SIDE / grey.shape[0], kernel="linear"
    )
    pixels = np.asarray(small.numpy(), np.float64)[:HASH_SIDE, :HASH_SIDE]
    low = (_DCT @ pixels @ _DCT.T)[:HASH_BITS_SIDE, :HASH_BITS_SIDE].flatten()
    bits = low > np.median(low[1:])
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def hash_distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def is_blurry(assessment: dict[str, Any], threshold: float) -> bool:
    """Below `threshold` (the setting `blur_threshold`) in its sharpest region."""
    return float(assessment["sharpness"]) < threshold


@dataclass(frozen=True)
class Frame:
    key: str
    taken_at: datetime | None
    phash: str
    camera: str = ""  # its camera (serial, else make and model): a burst is one camera's


def bursts(
    frames: Sequence[Frame], max_gap_s: float, max_distance: int = BURST_DISTANCE
) -> list[list[str]]:
    """Groups of two or more frames one camera shot in a row: in time order, each within
    `max_gap_s` of the one before and looking like it (hashes within `max_distance`
    bits); a second camera shooting at the same time splits nothing. Frames with no
    capture time are in no burst."""
    timed = sorted(
        (f for f in frames if f.taken_at is not None), key=lambda f: (f.camera, f.taken_at)
    )
    groups: list[list[Frame]] = []
    for frame in timed:
        last = groups[-1][-1] if groups and groups[-1][-1].camera == frame.camera else None
        if (
            last is not None
            and (frame.taken_at - last.taken_at).total_seconds() <= max_gap_s  # type: ignore[operator]
            and hash_distance(frame.phash, last.phash) <= max_distance
        ):
            groups[-1].append(frame)
        else:
            groups.append([frame])
    return [[f.key for f in group] for group in groups if len(group) > 1]


def best_frame(assessed: dict[str, dict[str, Any]]) -> tuple[str, list[str]]:
    """The burst frame to keep and why: the sharpest, unless it clips clearly more than
    another nearly as sharp (within 10 %)."""
    by_sharpness = sorted(assessed, key=lambda k: assessed[k]["sharpness"], reverse=True)
    sharpest = by_sharpness[0]
    best = sharpest
    for key in by_sharpness[1:]:
        near = assessed[key]["sharpness"] >= 0.9 * assessed[sharpest]["sharpness"]
        if near and _clipped(assessed[key]) + 0.02 < _clipped(assessed[best]):
            best = key
    reasons = []
    others = [assessed[k]["sharpness"] for k in assessed if k != best]
    if best == sharpest:
        ratio = assessed[best]["sharpness"] / max(max(others), 1e-6)
        reasons.append(f"sharpest of {len(assessed)} ({ratio:.1f}x the next)")
    else:
        reasons.append(f"nearly as sharp as {sharpest}, with less clipped")
    if _clipped(assessed[best]) < 0.01:
        reasons.append("no clipped highlights or shadows")
    return best, reasons


def _clipped(assessment: dict[str, Any]) -> float:
    return float(assessment["highlights"]) + float(assessment["shadows"])
