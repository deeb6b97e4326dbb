"""The photo library's full derivative set (thumbnails 64/128/256/512 and the 2000 px
preview) from 24 MP JPEGs, made four ways, each in its own process pinned to one core:

- enlarger: the kernel exactly as PREVIEW_GENERATION calls it (one decode of the
  original; the preview, measured for culling; the four thumbnails and the thumbhash
  from the preview in memory), each file written as the job writes it;
- pillow: a straightforward implementation: decode, resize each size with LANCZOS, save;
- sharp: the Node library most web apps make their images with (Next.js, Strapi,
  Payload), on libvips too: the preview from the original, written to a file, then each
  thumbnail from the preview's bytes (`bench/sharp_set.cjs`); one thread, cache off.
  The bench installs it with npm into `bench/.peers/` the first time, and leaves it out
  with a message when npm is missing;
- floor: libvips decoding the file at the smallest JPEG scale still at least the
  preview's size, resizing it and encoding the preview: the least any implementation
  must do.

Beside them, the culling assessment alone (`media.assess` on the 2000 px preview held in
memory, as the preview job calls it), to give its share of enlarger's time per image,
and each stage of enlarger's set timed on its own (decode and resize, encodes,
assessment, file writes, thumbnails, thumbhash).

The contenders take turns, image by image, one at a time on core 0 (each in its process
of its own, started once), so a machine whose speed drifts meanwhile slows them alike.
The images are generated (photographic noise, EXIF-free, quality 90) once per run. Peak
RSS is each process's high-water mark (VmHWM), imports included: each imports what
its work needs (enlarger's, `enlarger.media`; the recipes are made from the settings in
the parent). Every process caps glibc's malloc arenas as enlarger's CPU children do.

    python -m bench.derivatives [--quick] [--images 6] [--rounds 2]
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from enlarger.media import Recipe

    # the preview's recipe, then the thumbnails'
    Recipes = tuple[Recipe, tuple[Recipe, ...]]


WIDTH, HEIGHT = 6000, 4000
THUMB_SIDES = (64, 128, 256, 512)
PREVIEW_SIDE = 2000


def make_photo(path: Path, seed: int, width: int = WIDTH, height: int = HEIGHT) -> None:
    """A JPEG (24 MP by default) that compresses like a photograph: smooth shapes plus
    sensor noise."""
    import pyvips

    cells = 48 + seed * 8
    red = (pyvips.Image.perlin(width, height, cell_size=cells, seed=seed) * 90 + 128).cast("uchar")
    green = pyvips.Image.perlin(width, height, cell_size=cells // 2, seed=seed + 1) * 90 + 128
    blue = pyvips.Image.worley(width, height, cell_size=cells, seed=seed + 2)
    noise = pyvips.Image.gaussnoise(width, height, sigma=6, mean=0)
    image = red.bandjoin([green.cast("uchar"), blue.cast("uchar")]) + noise
    image.cast("uchar").copy(interpretation="srgb").jpegsave(str(path), Q=90)


def library_recipes() -> Recipes:
    """The photo library's preview recipe and thumbnail recipes, from the default settings
    (media's own objects: a child process unpickling them imports media only)."""
    from enlarger.config import Settings
    from enlarger.library.library import recipes_from

    made = recipes_from(Settings())
    return made.preview, tuple(made.thumbnails)


def enlarger_set(path: Path, recipes: Recipes) -> int:
    from enlarger.media import Limits, probe, render

    found = probe(path, Limits(200 * 1024 * 1024, 200_000_000))
    preview_recipe, thumbnail_recipes = recipes
    made = render(path, found, (preview_recipe, *thumbnail_recipes), True, preview_recipe)
    for rendition in made.renditions:
        path.with_suffix(f".{rendition.recipe.name}.jpg").write_bytes(rendition.data)
    return sum(len(r.data) for r in made.renditions)


def pillow_set(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as opened:
        image = opened.convert("RGB")
    total = 0
    for side, quality in [(s, 80) for s in THUMB_SIDES] + [(PREVIEW_SIDE, 85)]:
        scale = side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        out = io.BytesIO()
        image.resize(size, Image.Resampling.LANCZOS).save(out, "JPEG", quality=quality)
        total += out.tell()
    return total


def assessment_alone(path: Path) -> float:
    """Milliseconds of `assess` on the file's 2000 px preview, decoded beforehand."""
    import pyvips

    from enlarger.media.assess import assess

    image = pyvips.Image.thumbnail(str(path), PREVIEW_SIDE, height=PREVIEW_SIDE).copy_memory()
    start = time.perf_counter()
    assess(image)
    return (time.perf_counter() - start) * 1000


def floor_set(path: Path) -> int:
    """The file decoded at the smallest of its JPEG scales (1/2, 1/4, 1/8) still at least
    the preview's size, resized, encoded. (libvips' own `thumbnail` decodes at a scale
    twice that, whole for a 24 MP photo: 30 % more time.)"""
    import pyvips

    header = pyvips.Image.new_from_file(str(path))
    long_side = max(header.width, header.height)
    shrink = 1
    while shrink < 8 and long_side >= 2 * shrink * PREVIEW_SIDE:
        shrink *= 2
    image = pyvips.Image.new_from_file(str(path), shrink=shrink, access="sequential")
    preview = image.thumbnail_image(PREVIEW_SIDE, height=PREVIEW_SIDE, size="down")
    return len(preview.jpegsave_buffer(Q=85))


CONTENDERS: dict[str, Callable[[Path], int | float]] = {
    "enlarger": enlarger_set,
    "pillow": pillow_set,
    "floor": floor_set,
    "assessment alone": assessment_alone,
}


ORDER = ("enlarger", "sharp", "pillow", "floor", "assessment alone")  # as the table lists
SHARP_VERSION = "0.35"
PEERS = Path(__file__).with_name(".peers")
SHARP_SCRIPT = Path(__file__).with_name("sharp_set.cjs")


def sharp_module() -> Path | None:
    """sharp's folder under bench/.peers, installed with npm the first time; None (and
    why, on stderr) when it cannot be."""
    module = PEERS / "sharp" / "node_modules" / "sharp"
    if module.is_dir():
        return module
    if not shutil.which("npm") or not shutil.which("node"):
        print("sharp left out: Node.js and npm are needed to install it", file=sys.stderr)
        return None
    print(f"installing sharp {SHARP_VERSION} with npm into {module.parent.parent}", file=sys.stderr)
    installed = subprocess.run(
        [
            "npm",
            "install",
            "--prefix",
            str(module.parent.parent),
            "--no-audit",
            "--no-fund",
            f"sharp@~{SHARP_VERSION}",
        ],
        capture_output=True,
        text=True,
    )
    if installed.returncode != 0:
        print(f"sharp left out: npm failed:\n{installed.stderr[-2000:]}", file=sys.stderr)
        return None
    return module


TIMEOUT_S = 1800  # one image's set, at most


class _PythonContender:
    """A Python contender in a process of its own on core 0 (`_serve_contender`), making
    one image's set each time it is told to."""

    def __init__(self, name: str, recipes: Recipes) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, theirs = context.Pipe()
        self._process = context.Process(target=_serve_contender, args=(name, recipes, theirs))
        self._process.start()

    def _answer(self) -> float:
        if not self._conn.poll(TIMEOUT_S):
            raise SystemExit(f"a contender gave no answer in {TIMEOUT_S} s")
        return float(self._conn.recv())

    def time(self, path: Path) -> float:
        self._conn.send(path)
        return self._answer()

    def finish(self) -> float:
        """Its peak RSS (MB); the process ends."""
        self._conn.send(None)
        peak_mb = self._answer()
        self._process.join()
        return peak_mb


def _serve_contender(name: str, recipes: Recipes, conn: Connection) -> None:
    """Make the set of each path sent, answering its milliseconds (a contender that
    returns a float has timed its own part); at None, answer the peak RSS and end."""
    os.sched_setaffinity(0, {0})
    make = CONTENDERS[name]
    if name == "enlarger":
        make = functools.partial(enlarger_set, recipes=recipes)
    while (path := conn.recv()) is not None:
        start = time.perf_counter()
        own = make(path)
        elapsed = (time.perf_counter() - start) * 1000
        conn.send(own if isinstance(own, float) else elapsed)
    conn.send(_peak_rss_mb())


class _SharpContender:
    """sharp in a Node process on core 0 (`sharp_set.cjs`), told each file on a line."""

    def __init__(self, module: Path) -> None:
        self._node = subprocess.Popen(
            ["node", str(SHARP_SCRIPT), str(module)],
            env={**os.environ, "UV_THREADPOOL_SIZE": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {0}),
        )

    def _answer(self) -> dict[str, Any]:
        assert self._node.stdout is not None
        line = self._node.stdout.readline()
        if not line:
            raise SystemExit(f"sharp's process ended (exit code {self._node.wait()})")
        return json.loads(line)

    def time(self, path: Path) -> float:
        assert self._node.stdin is not None
        self._node.stdin.write(f"{path}\n")
        self._node.stdin.flush()
        return float(self._answer()["ms"])

    def finish(self) -> float:
        assert self._node.stdin is not None
        self._node.stdin.close()
        peak_mb = float(self._answer()["peak_mb"])
        self._node.wait(60)
        return peak_mb


def take_turns(
    contenders: dict[str, _PythonContender | _SharpContender], files: list[Path], rounds: int
) -> dict[str, tuple[float, float]]:
    """Each contender's median ms per image and peak RSS (MB). After one warm-up each,
    they take turns image by image, one at a time on the same core: a machine whose speed
    drifts during the run (another process, a virtual machine's neighbours) slows them
    alike, where contenders measured one after another moved their ratios by 15 %."""
    for contender in contenders.values():
        contender.time(files[0])
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for path in files:
            for name, contender in contenders.items():
                times[name].append(contender.time(path))
    return {
        name: (statistics.median(times[name]), contender.finish())
        for name, contender in contenders.items()
    }


def enlarger_stages(path: Path, recipes: Recipes) -> dict[str, float]:
    """Milliseconds of each stage of `enlarger_set`, through media's public functions."""
    from enlarger.media import Limits, encode, load, probe, shrink, thumbhash_of
    from enlarger.media.assess import assess

    preview_recipe, thumbnail_recipes = recipes
    side = preview_recipe.long_side
    limits = Limits(200 * 1024 * 1024, 200_000_000)
    times: dict[str, float] = {}

    def timed(stage: str, work: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        done = work()
        times[stage] = (time.perf_counter() - start) * 1000
        return done

    found = timed("probe the original", lambda: probe(path, limits))
    preview = timed("decode and resize the original", lambda: shrink(load(path, found, side), side))
    files = {
        preview_recipe.name: timed("encode the preview", lambda: encode(preview, preview_recipe))
    }
    timed("assessment", lambda: assess(preview))

    by_size = sorted(thumbnail_recipes, key=lambda r: r.long_side, reverse=True)

    def resizes() -> list[Any]:
        images, image = [], preview
        for recipe in by_size:
            image = shrink(image, recipe.long_side)
            images.append(image)
        return images

    thumbnails = timed("thumbnails: 4 resizes, each from the size above in memory", resizes)

    def encodes() -> None:
        for recipe, image in zip(by_size, thumbnails, strict=True):
            files[recipe.name] = encode(image, recipe)

    timed("thumbnails: 4 encodes", encodes)
    smallest = thumbnails[-1]
    timed("thumbhash", lambda: thumbhash_of(smallest))

    def write() -> None:
        for name, data in files.items():
            path.with_suffix(f".{name}.jpg").write_bytes(data)

    timed("write the 5 files", write)
    return times


def _profile(files: list[Path], rounds: int, recipes: Recipes, out: multiprocessing.Queue) -> None:
    """In a fresh process on core 0: each stage's median over every file and round."""
    os.sched_setaffinity(0, {0})
    enlarger_stages(files[0], recipes)
    runs = [enlarger_stages(path, recipes) for _ in range(rounds) for path in files]
    out.put({stage: statistics.median(r[stage] for r in runs) for stage in runs[0]})


def _peak_rss_mb() -> float:
    """This process's peak RSS since it started (VmHWM begins again at exec; ru_maxrss
    would count the pages of the parent that spawned it, which made the images)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def stages_of(files: list[Path], rounds: int, recipes: Recipes) -> dict[str, float]:
    """Each stage's median milliseconds, measured in a child process on core 0."""
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()
    process = context.Process(target=_profile, args=(files, rounds, recipes, results))
    process.start()
    measured = results.get(timeout=TIMEOUT_S)
    process.join()
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 images, 1 round")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    count, rounds = (2, 1) if args.quick else (args.images, args.rounds)
    from bench.common import print_table, verdict
    from enlarger.queue.cpu import MALLOC_ARENAS

    recipes = library_recipes()  # here: the children import only their own work
    # libvips may use one thread per core; on one pinned core more threads only contend
    os.environ["VIPS_CONCURRENCY"] = "1"
    # every process, sharp's too, caps glibc's malloc arenas as enlarger's CPU children do
    os.environ["MALLOC_ARENA_MAX"] = str(MALLOC_ARENAS)
    with tempfile.TemporaryDirectory(prefix="enlarger-bench-") as scratch:
        files = [Path(scratch) / f"photo-{n}.jpg" for n in range(count)]
        for n, path in enumerate(files):
            make_photo(path, seed=n)
        sizes_mb = statistics.mean(p.stat().st_size for p in files) / 1e6
        print(f"{count} JPEGs of {WIDTH}x{HEIGHT}, {sizes_mb:.1f} MB each, {rounds} round(s)")
        sharp = sharp_module()
        contenders: dict[str, _PythonContender | _SharpContender] = {
            name: _PythonContender(name, recipes) for name in CONTENDERS
        }
        if sharp is not None:
            contenders["sharp"] = _SharpContender(sharp)
        measured = take_turns(contenders, files, rounds)
        stages = stages_of(files, rounds, recipes)
    # the assessment's process decodes the preview it measures: that RSS is not its own
    rss_shown = {name: rss for name, (_, rss) in measured.items() if name != "assessment alone"}
    print_table(
        "derivative set per image (median), one core each",
        ["implementation", "ms per image", "peak RSS MB"],
        [(name, measured[name][0], rss_shown.get(name, "-")) for name in ORDER if name in measured],
    )
    print_table(
        "where enlarger's time goes (median ms per image, one core; each stage timed on its"
        " own, in a pass of its own, so together they come to more than the set's time)",
        ["stage", "ms", "share"],
        [(stage, ms, f"{ms / sum(stages.values()):.0%}") for stage, ms in stages.items()],
    )
    enlarger_ms, enlarger_rss = measured["enlarger"]
    against_sharp = {}
    if "sharp" in measured:
        sharp_ms, sharp_rss = measured["sharp"]
        against_sharp = {
            "sharp_ms_per_image": sharp_ms,
            "sharp_peak_rss_mb": sharp_rss,
            "sharp_ratio": enlarger_ms / sharp_ms,
            "rss_ratio_vs_sharp": enlarger_rss / sharp_rss,
        }
    verdict(
        **against_sharp,
        enlarger_ms_per_image=enlarger_ms,
        pillow_ms_per_image=measured["pillow"][0],
        floor_ms_per_image=measured["floor"][0],
        speedup_vs_pillow=measured["pillow"][0] / enlarger_ms,
        floor_ratio=enlarger_ms / measured["floor"][0],
        peak_rss_mb=enlarger_rss,
        assessment_ms_per_image=measured["assessment alone"][0],
        assessment_share=measured["assessment alone"][0] / enlarger_ms,
    )


if __name__ == "__main__":
    main()
