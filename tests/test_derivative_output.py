"""The photo library's derivatives stay what they were while the code that makes them is
made faster: the preview (with the culling measurements taken on it) and the thumbnails
(with the thumbhash), made as PREVIEW_GENERATION makes them, against the ones made
before (`tests/data/derivatives/`, made when the thumbnails came from the preview's
file in a job of their own).

The sources are generated here, the same on every run: 15 MP of photograph-like shapes
and light noise, one upright and one stored on its side with an EXIF orientation. Each
output has the reference's dimensions and differs from it by well under what encoding at
the recipe's quality does to the pixels it encodes (ENCODER_OWN_ERROR); the placeholder
the thumbhash paints moves by less than a level, the perceptual hash by at most two
bits, the sharpness by 2 %, and the other measurements agree to their last (rounded)
digit.

The references are written by `python -m tests.test_derivative_output` (only when the
output is meant to change, and said so in the commit)."""

from __future__ import annotations

import base64
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pyvips
import thumbhash

from enlarger.config import Settings
from enlarger.library.library import recipes_from
from enlarger.media import Limits, probe, render
from enlarger.media.render import thumb_hash

REFERENCE = Path(__file__).parent / "data" / "derivatives"
SOURCES = {"upright": (4800, 3200, 1, 3), "on-its-side": (4800, 3200, 6, 4)}
LIMITS = Limits(200 * 1024 * 1024, 200_000_000)
# What encoding at the recipe's quality does to these renditions (the encoded file against
# the pixels it was made from, measured on these sources). Before and after may differ by
# at most 60 % of that in mean levels, and their PSNR must be 3 dB above it (the RMS
# difference at most 70 %). The preview's shrink-on-load moved the preview by 54 % of it;
# the thumbnails, made from the preview's pixels instead of its file, moved by 15-26 %. A
# preview made at q80 instead of q85 fails; thumbnails at q75 instead of q80 would not
# (small noisy thumbnails lose as much to their own encoding as that).
OWN_ERROR_SHARE = 0.6
OWN_PSNR_MARGIN_DB = 3.0
ENCODER_OWN_ERROR = {  # recipe: (mean levels, PSNR dB)
    "preview": (1.55, 42.0),
    "thumb_512": (6.1, 30.3),
    "thumb_256": (9.6, 26.4),
    "thumb_128": (10.4, 25.7),
    "thumb_64": (7.0, 28.7),
}
# the thumbhash keeps 4 bits of each of a few dozen coefficients: pixels a level apart
# may turn one over, which moves the painted placeholder by a fraction of a level
PLACEHOLDER_LEVELS = 1.0
PHASH_BITS = 2  # of 64: bits of the perceptual hash near their threshold may flip
# sharpness is the variance of the Laplacian, which the resampling moves most of all the
# measurements (by 1 % at most with the preview's shrink-on-load); culling compares it
# between photos made the same way
SHARPNESS_SHARE = 0.02


@dataclass(frozen=True)
class Made:
    renditions: dict[str, bytes]  # recipe name -> the encoded file
    thumbhash: str
    assessment: dict[str, Any]


def _source(path: Path, width: int, height: int, orientation: int, seed: int) -> Path:
    """A JPEG like a photograph; with orientation 6, stored on its side as cameras do."""
    red = pyvips.Image.perlin(width, height, cell_size=96, seed=seed) * 90 + 128
    green = pyvips.Image.perlin(width, height, cell_size=48, seed=seed + 1) * 90 + 128
    blue = pyvips.Image.worley(width, height, cell_size=96, seed=seed + 2)
    noise = pyvips.Image.gaussnoise(width, height, sigma=3, mean=0, seed=seed)
    image = red.cast("uchar").bandjoin([green.cast("uchar"), blue.cast("uchar")]) + noise
    image = image.cast("uchar").copy(interpretation="srgb")
    if orientation != 1:
        image = image.rot90().copy()
        image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    image.jpegsave(str(path), Q=90)
    return path


def _made(source: Path) -> Made:
    """The set as PREVIEW_GENERATION makes it: the preview, measured, and the thumbnails
    and thumbhash from it."""
    recipes = recipes_from(Settings())
    made = render(source, probe(source, LIMITS), recipes.all, True, recipes.preview)
    assert made.assessment is not None and made.thumbhash is not None
    renditions = {r.recipe.name: r.data for r in made.renditions}
    return Made(renditions, made.thumbhash, made.assessment.as_dict())


def _made_from_sources(folder: Path) -> dict[str, Made]:
    return {name: _made(_source(folder / f"{name}.jpg", *shape)) for name, shape in SOURCES.items()}


def _placeholder_difference(made: str, reference: str) -> float:
    """The mean difference, in levels, between the placeholders two thumbhashes paint."""
    painted = []
    for digest in (made, reference):
        width, height, rgba = thumbhash.thumb_hash_to_rgba(list(base64.b64decode(digest)))
        painted.append((width, height, rgba))
    assert painted[0][:2] == painted[1][:2]
    return sum(abs(a - b) for a, b in zip(painted[0][2], painted[1][2], strict=True)) / len(
        painted[0][2]
    )


def _bits_apart(made: str, reference: str) -> int:
    return (int(made, 16) ^ int(reference, 16)).bit_count()


def _psnr(mean_square: float) -> float:
    return math.inf if mean_square == 0 else 10 * math.log10(255**2 / mean_square)


def _assert_close(measured: Any, expected: Any, where: str, relative: float = 0.0) -> None:
    if isinstance(expected, dict):
        assert sorted(measured) == sorted(expected), where
        for key, value in expected.items():
            share = SHARPNESS_SHARE if key in ("sharpness", "regions") else 0.0
            _assert_close(measured[key], value, f"{where}.{key}", share)
    elif isinstance(expected, list):
        assert len(measured) == len(expected), where
        for n, (m, e) in enumerate(zip(measured, expected, strict=True)):
            _assert_close(m, e, f"{where}[{n}]", relative)
    elif isinstance(expected, float):
        # the measurements are rounded to two places: a last digit may turn over
        assert measured == pytest.approx(expected, rel=relative, abs=0.0101), where
    else:
        assert measured == expected, where


def test_the_derivatives_are_what_they_were(tmp_path: Path) -> None:
    expected = json.loads((REFERENCE / "reference.json").read_text())
    for name, made in _made_from_sources(tmp_path).items():
        placeholder_levels = _placeholder_difference(made.thumbhash, expected[name]["thumbhash"])
        assert placeholder_levels <= PLACEHOLDER_LEVELS, (name, made.thumbhash, placeholder_levels)
        measured, reference = dict(made.assessment), dict(expected[name]["assessment"])
        flipped = _bits_apart(measured.pop("phash"), reference.pop("phash"))
        assert flipped <= PHASH_BITS, (name, flipped)
        _assert_close(measured, reference, f"{name} assessment")
        assert sorted(made.renditions) == sorted(expected[name]["renditions"]), name
        for recipe, data in made.renditions.items():
            reference = pyvips.Image.new_from_file(str(REFERENCE / f"{name}-{recipe}.jpg"))
            now = pyvips.Image.new_from_buffer(data, "")
            where = f"{name} {recipe}"
            assert (now.width, now.height, now.bands) == (
                reference.width,
                reference.height,
                reference.bands,
            ), where
            difference = (now.cast("float") - reference.cast("float")).abs()
            mean_square = (difference * difference).avg()
            own_levels, own_psnr = ENCODER_OWN_ERROR[recipe]
            assert difference.avg() <= OWN_ERROR_SHARE * own_levels, (where, difference.avg())
            assert _psnr(mean_square) >= own_psnr + OWN_PSNR_MARGIN_DB, (where, _psnr(mean_square))


def test_the_thumbhash_is_the_reference_algorithms() -> None:
    """`thumb_hash` (numpy) against the thumbhash package, a port of the reference: the
    same bytes for photograph-like images. Synthetic ones with exact symmetries put
    coefficients exactly on a rounding tie or at zero, where the two round their own
    float noise: a linear ramp gets the same header and each coefficient within one step
    of the reference's; a flat colour (every coefficient zero, so none is painted) the
    same placeholder."""
    rng = np.random.default_rng(7)
    for seed in range(40):
        width, height = (int(n) for n in rng.integers(8, 101, size=2))
        shapes = pyvips.Image.perlin(width * 8, height * 8, cell_size=32, seed=seed) * 100 + 128
        cells = pyvips.Image.worley(width * 8, height * 8, cell_size=40, seed=seed)
        photo = shapes.cast("uchar").bandjoin([cells.cast("uchar"), shapes.cast("uchar")])
        pixels = photo.thumbnail_image(100, height=100).numpy()
        assert thumb_hash(pixels) == _reference_thumb_hash(pixels), seed

        ys, xs = np.mgrid[0:height, 0:width]
        ramp = np.stack([xs * 255 // (width - 1), ys * 255 // (height - 1), xs * 0 + 90], -1)
        mine, reference = thumb_hash(ramp.astype(np.uint8)), _reference_thumb_hash(ramp)
        assert mine[:5] == reference[:5], seed
        steps = [abs(a - b) for a, b in zip(_nibbles(mine), _nibbles(reference), strict=True)]
        assert max(steps) <= 1, (seed, mine.hex(), reference.hex())

        flat = np.full((height, width, 3), rng.integers(0, 256, size=3), dtype=np.uint8)
        painted = thumbhash.thumb_hash_to_rgba(list(thumb_hash(flat)))[2]
        assert painted == thumbhash.thumb_hash_to_rgba(list(_reference_thumb_hash(flat)))[2]


def _nibbles(digest: bytes) -> list[int]:
    return [n for byte in digest[5:] for n in (byte & 15, byte >> 4)]


def _reference_thumb_hash(rgb: np.ndarray) -> bytes:
    height, width = rgb.shape[:2]
    rgba = np.concatenate([rgb, np.full((height, width, 1), 255, np.uint8)], axis=2)
    return bytes(thumbhash.rgba_to_thumb_hash(width, height, rgba.reshape(-1).tolist()))


def write_reference(folder: Path) -> None:
    """Make the sources and write what the code makes of them now as the reference."""
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / "sources"
    scratch.mkdir(exist_ok=True)
    summary: dict[str, Any] = {}
    for name, made in _made_from_sources(scratch).items():
        for recipe, data in made.renditions.items():
            (folder / f"{name}-{recipe}.jpg").write_bytes(data)
        summary[name] = {
            "thumbhash": made.thumbhash,
            "assessment": made.assessment,
            "renditions": sorted(made.renditions),
        }
    for leftover in scratch.iterdir():
        leftover.unlink()
    scratch.rmdir()
    (folder / "reference.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    write_reference(Path(sys.argv[1]) if len(sys.argv) > 1 else REFERENCE)
