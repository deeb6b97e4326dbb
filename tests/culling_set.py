"""A labelled culling set the tests make: bursts of a few frames with small camera moves
(one frame crisp, the rest a little soft, none blurry), single shots, blurred copies of some of
them shot later, and two different scenes shot a second apart. Each file is a JPEG with
the capture time in its EXIF, as a camera writes it (to the second)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import combinations
from pathlib import Path

import numpy as np
import pyvips
from PIL import Image as PILImage

from tests.images import photo

WIDTH, HEIGHT, MARGIN = 1200, 800, 16
START = datetime(2026, 7, 14, 14, 0, 0)


@dataclass
class Labels:
    bursts: list[set[str]] = field(default_factory=list)  # base names shot in a row
    best: dict[int, str] = field(default_factory=dict)  # burst index → its focused frame
    blurry: set[str] = field(default_factory=set)


def scene(seed: int) -> pyvips.Image:
    """Edges and texture, like a photo: soft colour fields, shapes, fine grain."""
    rng = np.random.default_rng(seed)
    width, height = WIDTH + 2 * MARGIN, HEIGHT + 2 * MARGIN
    image = photo(width, height).copy_memory()
    for _ in range(40):
        colour = [int(v) for v in rng.integers(0, 256, 3)]
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        if rng.random() < 0.5:
            w, h = int(rng.integers(10, width // 4)), int(rng.integers(10, height // 4))
            image = image.draw_rect(colour, x, y, w, h, fill=True)
        else:
            image = image.draw_circle(colour, x, y, int(rng.integers(5, height // 6)), fill=True)
    grain = pyvips.Image.gaussnoise(width, height, sigma=10, seed=seed)
    return (image + grain).cast("uchar").copy(interpretation="srgb").copy_memory()


def frame(
    source: pyvips.Image, dx: int = 0, dy: int = 0, blur: float = 0.0, soften: float = 0.0
) -> pyvips.Image:
    """What the camera saw, moved by (dx, dy) pixels: out of focus by `blur` (a Gaussian's
    sigma), or a little soft (`soften` of it mixed with a slightly blurred copy)."""
    image = source.crop(MARGIN + dx, MARGIN + dy, WIDTH, HEIGHT)
    if soften:
        image = (image * (1 - soften) + image.gaussblur(1.5) * soften).cast("uchar")
    return image.gaussblur(blur) if blur else image


def save(image: pyvips.Image, path: Path, taken: datetime) -> None:
    picture = PILImage.frombytes("RGB", (image.width, image.height), image.write_to_memory())
    exif = PILImage.Exif()
    exif.get_ifd(0x8769)[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
    picture.save(path, quality=90, exif=exif)


def make(folder: Path) -> Labels:
    """The set in `folder`; returns what is true of it."""
    labels = Labels()
    rng = np.random.default_rng(7)
    clock = START
    for burst in range(5):
        source = scene(100 + burst)
        size = 3 + burst % 3
        focused = int(rng.integers(0, size))
        members = set()
        for n in range(size):
            name = f"B{burst}_{n}"
            dx, dy = (int(v) for v in rng.integers(-MARGIN // 2, MARGIN // 2 + 1, 2))
            soften = 0.0 if n == focused else float(rng.uniform(0.2, 0.35))
            save(frame(source, dx, dy, soften=soften), folder / f"{name}.jpg", clock)
            clock += timedelta(seconds=int(rng.integers(0, 2)))  # 0 or 1 s: 3-10 fps
            members.add(name)
        labels.bursts.append(members)
        labels.best[burst] = f"B{burst}_{focused}"
        clock += timedelta(seconds=30)
    for single in range(8):
        source = scene(200 + single)
        save(frame(source), folder / f"S{single}.jpg", clock)
        if single < 4:  # shot again later, out of focus: alike, but not a burst
            later = clock + timedelta(seconds=20)
            save(frame(source, 3, 2, blur=3.0), folder / f"S{single}_soft.jpg", later)
            labels.blurry.add(f"S{single}_soft")
        clock += timedelta(seconds=45)
    save(frame(scene(300)), folder / "T0.jpg", clock)  # two scenes a second apart
    save(frame(scene(301)), folder / "T1.jpg", clock + timedelta(seconds=1))
    return labels


def pair_f1(truth: list[set[str]], found: list[set[str]]) -> float:
    """F1 over pairs of photos put in the same burst."""
    true_pairs = {frozenset(p) for group in truth for p in combinations(sorted(group), 2)}
    found_pairs = {frozenset(p) for group in found for p in combinations(sorted(group), 2)}
    if not found_pairs:
        return 0.0
    hits = len(true_pairs & found_pairs)
    precision, recall = hits / len(found_pairs), hits / len(true_pairs)
    return 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)


def exposed(source: pyvips.Image, factor: float, seed: int = 1) -> pyvips.Image:
    """`source` (its luminance) as a camera would record an average scene at `factor` times a good
    exposure: in linear light, toned so that a good exposure puts the median at mid-grey
    and the top of the histogram at 0.85, then scaled by `factor`, with the sensor's
    noise added before it is encoded to sRGB (noise that lifts an under-exposed frame's
    shadows off black)."""
    grey = source.colourspace("b-w").colourspace("srgb")  # luminance is what is measured
    linear = grey.colourspace("scrgb")
    luminance = np.maximum(linear.numpy().mean(axis=2), 1e-4)
    median, top = float(np.median(luminance)), float(np.percentile(luminance, 99.5))
    power = np.log(0.18 / 0.85) / np.log(median / top)
    toned = (linear.maxpair(1e-4) / top) ** power * 0.85
    noise = pyvips.Image.gaussnoise(source.width, source.height, sigma=0.004, mean=0, seed=seed)
    return (toned * factor + noise).colourspace("srgb").cast("uchar")
