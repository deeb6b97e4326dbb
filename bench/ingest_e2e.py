"""Upload to STORED, end to end: 12 MP JPEGs uploaded concurrently over HTTP to a real
`enlarger serve` (its defaults: one worker process) until every image is STORED, against
the image kernel alone on the same files and the same cores.

- e2e: `enlarger serve` in its own process group on a fresh data directory (SQLite, or a
  fresh PostgreSQL database with `--backend pg`); one image is processed first so the
  worker and its CPU children are warm, then the clock runs from the first upload until
  `GET /api/images?status=STORED` counts them all (it notes when it counts the first, too:
  photos should appear while the others still upload). Uploads go through
  `enlarger.client` from `--concurrency` threads.
- kernel: the derivative set exactly as the preview job makes it (bench.derivatives'
  `enlarger_set`: one decode of the original; the preview, measured for culling; the
  thumbnails and thumbhash from it), one process per core, each warmed up on one file,
  the files shared out between them. It runs before the end-to-end run and after it, and
  the mean of the two counts: on a machine whose speed drifts (a virtual machine's
  neighbours), one kernel run measured 8.1 images/s and the next 10.4.

What the end-to-end run pays beyond the kernel is CPU, so it is accounted for too: each
process's CPU time (from /proc) over the timed uploads, per upload: `serve`, its worker
processes, their CPU children (the derivatives), this bench (its upload threads and its
polling, on the same cores) and, on PostgreSQL, the local server's processes.

The photographs are generated (8 distinct ones); each file is made unique by a JPEG
comment segment, so no upload is a duplicate while decoding costs stay those of photos.

    python -m bench.ingest_e2e [--quick] [--images 200] [--concurrency 4] [--backend sqlite|pg]
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import struct
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    SPAWN,
    Fleet,
    drop_pg_database,
    fresh_pg_database,
    postgres_cpu,
    print_table,
    start_serve,
    tree_cpu,
    verdict,
    wait_until,
)
from bench.derivatives import enlarger_set, library_recipes, make_photo
from enlarger.client import EnlargerClient

WIDTH, HEIGHT = 4240, 2832  # 12 MP
DISTINCT_PHOTOS = 8
PG_DATABASE = "enlarger_bench_e2e"
TIMEOUT_S = 1800


def make_files(folder: Path, count: int) -> list[Path]:
    """`count` distinct JPEG files (by bytes) from DISTINCT_PHOTOS generated photographs,
    plus one more for the warm-up, which is the last in the list."""
    bases = []
    for seed in range(DISTINCT_PHOTOS):
        path = folder / f"base-{seed}.jpg"
        make_photo(path, seed, WIDTH, HEIGHT)
        bases.append(path.read_bytes())
        path.unlink()
    files = []
    for n in range(count + 1):
        path = folder / f"photo-{n:04d}.jpg"
        path.write_bytes(_with_comment(bases[n % DISTINCT_PHOTOS], f"enlarger bench {n}"))
        files.append(path)
    return files


def _with_comment(jpeg: bytes, text: str) -> bytes:
    """The same JPEG with a COM segment right after the start-of-image marker."""
    body = text.encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


# The kernel


def _kernel_process(
    files: list[Path], done: Any, cpu: Any, index: int, ready: EventType, go: EventType
) -> None:
    mine = files[index :: os.cpu_count() or 1]
    recipes = library_recipes()
    enlarger_set(mine[0], recipes)  # warm-up: imports, libvips start-up
    ready.set()
    go.wait()
    started = time.process_time()
    for path in mine:
        enlarger_set(path, recipes)
        with done.get_lock():
            done.value += 1
    with cpu.get_lock():
        cpu.value += time.process_time() - started


def run_kernel(files: list[Path]) -> tuple[float, float]:
    """Seconds for one process per core to make every file's derivative set, and the
    CPU seconds they spent on it."""
    done, cpu = SPAWN.Value("i", 0), SPAWN.Value("d", 0.0)
    fleet = Fleet.start(_kernel_process, (files, done, cpu), os.cpu_count() or 1)
    return fleet.time_until(lambda: done.value == len(files), TIMEOUT_S), cpu.value


# End to end


def _count(http: httpx.Client, status: str) -> int:
    response = http.get("/api/images", params={"status": status, "limit": 1})
    response.raise_for_status()
    return response.json()["count"]


def _until_stored(http: httpx.Client, expected: int) -> float:
    """Poll the API's counts until `expected` images are STORED (lightly: the poll itself
    loads the server being measured)."""
    polls = 0

    def all_stored() -> bool:
        nonlocal polls
        polls += 1
        if polls % 10 == 0 and (failed := _count(http, "FAILED")):
            raise SystemExit(f"{failed} image(s) FAILED during the benchmark")
        return _count(http, "STORED") >= expected

    return wait_until(all_stored, TIMEOUT_S, interval=0.1)


# what each process's CPU is reported as: the key in the verdict line, and in the table
CPU_LABELS = {
    "serve": "serve",
    "workers": "its worker processes",
    "cpu_children": "their CPU children (the derivatives)",
    "bench": "this bench (uploads, polling)",
    "postgres": "the PostgreSQL server",
}
TREE_ROLES = ("serve", "workers", "cpu_children")  # by depth under `serve`


def _cpu_now(server: int, database_url: str | None) -> dict[str, float]:
    """CPU seconds so far of each process in the run, by role."""
    by_depth = tree_cpu(server)
    cpu = {role: by_depth.get(depth, 0.0) for depth, role in enumerate(TREE_ROLES)}
    cpu["cpu_children"] += sum(v for depth, v in by_depth.items() if depth >= len(TREE_ROLES))
    own = resource.getrusage(resource.RUSAGE_SELF)
    cpu["bench"] = own.ru_utime + own.ru_stime
    if database_url:
        cpu["postgres"] = postgres_cpu()
    return cpu


def run_e2e(
    files: list[Path], concurrency: int, database_url: str | None
) -> tuple[tuple[float, float, float], dict[str, float]]:
    """Seconds from the first upload until the first is STORED, until the last is
    acknowledged, and until all are STORED, against a fresh `enlarger serve`; and the
    CPU seconds each role spent meanwhile."""
    with tempfile.TemporaryDirectory(prefix="enlarger-bench-serve-") as scratch:
        log = Path(scratch) / "serve.log"
        server, base_url = start_serve(Path(scratch) / "data", database_url, log)
        try:
            with httpx.Client(base_url=base_url, timeout=60) as http:
                with EnlargerClient(base_url) as warm_up:
                    warm_up.poll_image_status(
                        warm_up.upload_image(files[-1])["imageId"], interval=0.1, timeout=120
                    )
                before = _cpu_now(server.pid, database_url)
                timings = _upload_all(base_url, files[:-1], concurrency, http)
                after = _cpu_now(server.pid, database_url)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
        if server.returncode != 0:
            raise SystemExit(f"enlarger serve exited {server.returncode}:\n{log.read_text()}")
    return timings, {role: after[role] - before[role] for role in after}


def _upload_all(
    base_url: str, files: list[Path], concurrency: int, http: httpx.Client
) -> tuple[float, float, float]:
    """Upload from `concurrency` threads while this one watches for the first upload to
    be STORED (a user watching the page sees photos appear while a card still uploads)."""
    local = threading.local()

    def upload(path: Path) -> float:
        if not hasattr(local, "client"):
            local.client = EnlargerClient(base_url, timeout=120)
        answer = local.client.upload_image(path, collection="bench")
        if answer["duplicate"] or answer["status"] == "FAILED":
            raise SystemExit(f"unexpected upload answer for {path.name}: {answer}")
        return time.perf_counter()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        acknowledged = pool.map(upload, files)
        first = _until_stored(http, 2)  # the warm-up image is STORED already
        uploaded = max(acknowledged)
    stored = _until_stored(http, len(files) + 1)
    return first - started, uploaded - started, stored - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 images")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4, help="uploads in flight")
    parser.add_argument("--backend", choices=("sqlite", "pg"), default="sqlite")
    args = parser.parse_args()
    count = 50 if args.quick else args.images
    database_url = fresh_pg_database(PG_DATABASE) if args.backend == "pg" else None
    try:
        with tempfile.TemporaryDirectory(prefix="enlarger-bench-") as scratch:
            files = make_files(Path(scratch), count)
            size_mb = sum(p.stat().st_size for p in files[:-1]) / count / 1e6
            print(
                f"{count} JPEGs of {WIDTH}x{HEIGHT}, {size_mb:.1f} MB each, "
                f"{os.cpu_count()} cores, backend {args.backend}, {args.concurrency} uploads "
                "in flight",
                flush=True,
            )
            before = run_kernel(files[:-1])
            (first_s, upload_s, e2e_s), cpu = run_e2e(files, args.concurrency, database_url)
            after = run_kernel(files[:-1])
            kernel_s, kernel_cpu_s = ((b + a) / 2 for b, a in zip(before, after, strict=True))
            for path in Path(scratch).glob("*.preview.jpg"):
                path.unlink()
    finally:
        if database_url:
            drop_pg_database(PG_DATABASE)
    print_table(
        "upload to STORED against the kernel alone",
        ["run", "seconds", "images per s", "first STORED after s", "uploads acknowledged after s"],
        [
            ("kernel, one process per core (mean of 2)", kernel_s, count / kernel_s, "-", "-"),
            (
                f"enlarger serve ({args.backend})",
                e2e_s,
                count / e2e_s,
                f"{first_s:.1f}",
                f"{upload_s:.1f}",
            ),
        ],
    )
    print_table(
        "CPU per upload during the end-to-end run (process CPU time)",
        ["process", "ms per upload"],
        [
            *((CPU_LABELS[role], seconds * 1000 / count) for role, seconds in cpu.items()),
            ("(the kernel's processes, in its own runs)", kernel_cpu_s * 1000 / count),
        ],
    )
    verdict(
        e2e_images_per_s=count / e2e_s,
        kernel_images_per_s=count / kernel_s,
        efficiency=kernel_s / e2e_s,
        **{f"cpu_ms_{role}": seconds * 1000 / count for role, seconds in cpu.items()},
        cpu_ms_kernel=kernel_cpu_s * 1000 / count,
    )


if __name__ == "__main__":
    main()
