"""The photo library's derivatives stay what they were while the code that makes them is
made faster: the preview (with the culling measurements taken on it) and the thumbnails
(with the thumbhash), made as the two jobs make them, against the ones made before
(`tests/data/derivatives/`).

The sources are generated here, the same on every run: photograph-like shapes and light
noise, one upright and one stored on its side with an EXIF orientation. Each output has
the reference's dimensions and differs from it by no more than re-encoding at the
recipe's quality does; the thumbhash and the perceptual hash are the same strings; the
measurements agree to their last (rounded) digit.

The references are written by `python -m tests.test_derivative_output` (only when the
output is meant to change, and said so in the commit)."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pyvips

from enlarger.config import Settings
from enlarger.library.library import recipes_from
from enlarger.media import Limits, probe, render

REFERENCE = Path(__file__).parent / "data" / "derivatives"
SOURCES = {"upright": (2400, 1600, 1, 3), "on-its-side": (2400, 1600, 6, 4)}
LIMITS = Limits(200 * 1024 * 1024, 200_000_000)
# what re-encoding a JPEG at q80-85 from pixels a rounding apart may change: measured
# 0.2-0.6 mean levels between libvips' own runs with a different resampling order
MEAN_LEVELS = 1.0
MIN_PSNR_DB = 38.0


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
    """The preview as PREVIEW_GENERATION makes it, then the thumbnails from that preview
    as THUMBNAIL_GENERATION does."""
    recipes = recipes_from(Settings())
    preview = render(source, probe(source, LIMITS), (recipes.preview,), with_assessment=True)
    preview_path = source.with_name(source.stem + "-preview.jpg")
    preview_path.write_bytes(preview.renditions[0].data)
    thumbs = render(preview_path, probe(preview_path, LIMITS), recipes.thumbnails, True)
    assert preview.assessment is not None and thumbs.thumbhash is not None
    renditions = {r.recipe.name: r.data for r in preview.renditions + thumbs.renditions}
    return Made(renditions, thumbs.thumbhash, preview.assessment.as_dict())


def _made_from_sources(folder: Path) -> dict[str, Made]:
    return {name: _made(_source(folder / f"{name}.jpg", *shape)) for name, shape in SOURCES.items()}


def _psnr(mean_square: float) -> float:
    return math.inf if mean_square == 0 else 10 * math.log10(255**2 / mean_square)


def _assert_close(measured: Any, expected: Any, where: str) -> None:
    if isinstance(expected, list):
        assert len(measured) == len(expected), where
        for n, (m, e) in enumerate(zip(measured, expected, strict=True)):
            _assert_close(m, e, f"{where}[{n}]")
    elif isinstance(expected, float):
        # the measurements are rounded to two places: a last digit may turn over
        assert measured == pytest.approx(expected, abs=0.0101), where
    else:
        assert measured == expected, where


def test_the_derivatives_are_what_they_were(tmp_path: Path) -> None:
    expected = json.loads((REFERENCE / "reference.json").read_text())
    for name, made in _made_from_sources(tmp_path).items():
        assert made.thumbhash == expected[name]["thumbhash"], name
        _assert_close(made.assessment, expected[name]["assessment"], f"{name} assessment")
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
            assert difference.avg() <= MEAN_LEVELS, (where, difference.avg())
            assert _psnr(mean_square) >= MIN_PSNR_DB, (where, _psnr(mean_square))


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
