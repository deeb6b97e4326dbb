"""Product photos through the built-in providers to DONE, with the mask quality measured.

Generated studio photos with known masks (objects of several colours on white and grey
backdrops, with cast shadows, noise and JPEG compression; see bench/product_photos.py)
are served by an HTTP server on loopback and announced to enlarger (SQLite, local disk,
one `enlarger worker` process with the default settings). The clock runs from the first
announcement until every job is DONE or FAILED. Each stored mask is compared with the
photo's true mask (intersection over union). For scale, the same work without enlarger
around it (decode, cut out, six composites and their thumbnails, in one process per
core) is timed as the kernel.

    python -m bench.product_pipeline [--quick] [--photos N] [--size PX]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from bench.common import print_table, verdict, wait_until
from bench.product_photos import product_photo
from enlarger.bootstrap import build_services
from enlarger.catalog import product_jobs
from enlarger.catalog.pipeline import frames
from enlarger.catalog.themes import BUILTIN_THEMES
from enlarger.config import load_settings
from enlarger.db import migrate
from enlarger.db.schema import product_jobs as product_jobs_table
from enlarger.media.compose import (
    compose,
    decode_mask,
    draw_background,
    mask_png,
    rgb_array,
    to_jpeg,
)
from enlarger.media.segment import cut_out, iou


def _serve(photos: dict[str, bytes]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = photos.get(self.path)
            if data is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _kernel(photo_jpeg: bytes) -> None:
    """What the pipeline does to one photo, with no queue, database or storage."""
    import pyvips

    rgb = rgb_array(pyvips.Image.new_from_buffer(photo_jpeg, "", fail_on="error"))
    alpha = cut_out(rgb).alpha
    mask_png(alpha)
    for frame in frames(BUILTIN_THEMES["default"]):
        background = draw_background(frame.background, frame.width, frame.height)
        to_jpeg(background, quality=95)
        pixels, _ = compose(rgb, alpha, background, frame.placement)
        to_jpeg(pixels, 90)
        to_jpeg(pixels, 90, long_side=400)


def kernel_photos_per_min(jpegs: list[bytes]) -> float:
    cores = len(os.sched_getaffinity(0))
    # spawned, not forked: this process already runs libvips and server threads
    with ProcessPoolExecutor(cores, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_kernel, jpegs[:cores]))  # warm-up: imports, first allocations
        started = time.perf_counter()
        list(pool.map(_kernel, jpegs))
        return len(jpegs) / (time.perf_counter() - started) * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="20 photos of 800 x 800, the kernel timed on 8"
    )
    parser.add_argument("--photos", type=int, help="how many photos (default 100)")
    parser.add_argument("--size", type=int, help="photo side in pixels (default 1600)")
    args = parser.parse_args()
    count = args.photos or (20 if args.quick else 100)
    args.size = args.size or (800 if args.quick else 1600)

    photos = [product_photo(seed, args.size, args.size) for seed in range(count)]
    server = _serve({f"/{n}.jpg": p.jpeg for n, p in enumerate(photos)})
    port = server.server_address[1]
    data_dir = Path(tempfile.mkdtemp(prefix="enlarger-bench-products-"))
    env = {
        **os.environ,
        "ENLARGER_DATA_DIR": str(data_dir),
        "ENLARGER_FETCH_ALLOW_HOSTS": f"127.0.0.1:{port}",
        "ENLARGER_WEBHOOKS_INSECURE": "1",
        "ENLARGER_PRODUCT_REVIEW_BELOW": "0",  # throughput to DONE: nobody to review here
    }
    settings = load_settings(environ=env)
    services = build_services(settings)
    migrate.upgrade(services.engine)
    catalog = services.catalog
    worker = subprocess.Popen(
        [sys.executable, "-m", "enlarger", "worker"], env=env, stdout=subprocess.DEVNULL
    )
    try:
        time.sleep(2.0)  # the worker has started its CPU children
        started = time.perf_counter()
        ids = [
            product_jobs.create_job(
                catalog,
                f"SKU-{n:04d}",
                f"http://127.0.0.1:{port}/{n}.jpg",
                hashlib.sha256(p.jpeg).hexdigest(),
                "default",
            ).job_id
            for n, p in enumerate(photos)
        ]
        finished = sa.select(sa.func.count()).where(
            product_jobs_table.c.status.in_(("DONE", "FAILED"))
        )

        def all_finished() -> bool:
            with services.engine.connect() as conn:
                return conn.execute(finished).scalar_one() == count

        ended = wait_until(all_finished, timeout=3600, interval=0.2)
    finally:
        worker.terminate()
        worker.wait(60)
        server.shutdown()
    seconds = ended - started

    ious, durations, failed = [], [], 0
    for job_id, photo in zip(ids, photos, strict=True):
        job = product_jobs.get_job(catalog, job_id)
        if job["status"] != "DONE":
            failed += 1
            ious.append(0.0)
            continue
        durations.append((job["completed_at"] - job["created_at"]).total_seconds())
        with services.blobs.local_copy(job["mask_key"]) as path:
            ious.append(iou(decode_mask(path.read_bytes()), photo.truth))
    services.engine.dispose()
    shutil.rmtree(data_dir, ignore_errors=True)
    jpegs = [p.jpeg for p in photos]
    kernel = kernel_photos_per_min(jpegs[:8] if args.quick else jpegs)
    per_min = count / seconds * 60
    by_backdrop = {
        backdrop: statistics.mean(
            v for v, p in zip(ious, photos, strict=True) if p.backdrop == backdrop
        )
        for backdrop in ("white", "grey")
    }
    print_table(
        f"{count} product photos ({args.size} x {args.size}), built-in providers, SQLite, "
        "one worker with default settings but review off",
        ["measure", "value"],
        [
            ("photos per minute, announced to DONE", per_min),
            ("kernel alone, photos per minute", kernel),
            ("efficiency (pipeline / kernel)", per_min / kernel),
            ("failed", failed),
            ("mean IoU, white backdrops", f"{by_backdrop['white']:.4f}"),
            ("mean IoU, grey backdrops", f"{by_backdrop['grey']:.4f}"),
            ("p95 seconds, announced to DONE", float(np.percentile(durations, 95))),
        ],
    )
    verdict(
        photos_per_min=per_min,
        mean_iou=f"{np.mean(ious):.4f}",
        min_iou=f"{np.min(ious):.4f}",
        p95_job_s=float(np.percentile(durations, 95)),
        kernel_photos_per_min=kernel,
        failed=failed,
    )


if __name__ == "__main__":
    main()
