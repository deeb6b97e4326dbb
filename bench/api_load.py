"""Load on the HTTP API: concurrent clients uploading and listing against `enlarger serve`
on PostgreSQL, then a check that every accepted upload was stored.

`enlarger serve` runs as users run it (one process, its embedded worker process, local
disk, a fresh PostgreSQL database with durable commits). Each client loops: upload a
distinct JPEG, list the newest images, look at the one it uploaded. After the load
every accepted upload must reach STORED: `lost` counts those that did not (or vanished);
`http_5xx` counts server errors and broken connections.

    python -m bench.api_load [--quick] [--clients N] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyvips

from bench.common import (
    drop_pg_database,
    fresh_pg_database,
    percentile,
    print_table,
    start_serve,
    verdict,
)

DATABASE = "enlarger_bench_api"
DRAIN_TIMEOUT_S = 600


@dataclass
class Tally:
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, dict[int, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    broken: int = 0  # connections that failed without an answer
    accepted: list[str] = field(default_factory=list)  # image ids of 201 uploads

    def record(self, kind: str, started: float, status: int) -> None:
        self.latencies_ms[kind].append((time.perf_counter() - started) * 1000)
        self.statuses[kind][status] += 1

    @property
    def server_errors(self) -> int:
        return self.broken + sum(
            n for counts in self.statuses.values() for code, n in counts.items() if code >= 500
        )


def _photo_pool(count: int, side: int) -> list[bytes]:
    """Small photographic-looking JPEGs (noise over a gradient), each different."""
    pool = []
    for n in range(count):
        noise = pyvips.Image.gaussnoise(side, side * 3 // 4, sigma=40, mean=100 + n % 50)
        tint = pyvips.Image.black(side, side * 3 // 4).linear([1, 1, 1], [n % 255, 90, 200])
        image = (noise.bandjoin([noise, noise]) + tint) / 2
        pool.append(image.cast("uchar").jpegsave_buffer(Q=85))
    return pool


def _unique(jpeg: bytes, tag: str) -> bytes:
    """The same picture with a JPEG comment (COM) making its bytes, and checksum, unique."""
    comment = tag.encode()
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


async def _client(
    index: int, base: str, pool: list[bytes], until: float, tally: Tally, seq: list[int]
) -> None:
    rng = random.Random(index)
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        while time.monotonic() < until:
            seq[0] += 1
            body = _unique(rng.choice(pool), f"client {index} upload {seq[0]}")
            started = time.perf_counter()
            try:
                response = await http.post(
                    "/api/upload",
                    files={"file": (f"c{index}-{seq[0]}.jpg", body, "image/jpeg")},
                    data={"collection": f"load-{index % 5}"},
                )
                tally.record("upload", started, response.status_code)
                if response.status_code == 201:
                    image_id = response.json()["imageId"]
                    tally.accepted.append(image_id)
                    started = time.perf_counter()
                    one = await http.get(f"/api/images/{image_id}")
                    tally.record("get", started, one.status_code)
                for _ in range(2):
                    started = time.perf_counter()
                    listed = await http.get("/api/images", params={"limit": 20})
                    tally.record("list", started, listed.status_code)
            except httpx.TransportError:
                tally.broken += 1


async def _load(base: str, clients: int, seconds: float, pool: list[bytes]) -> Tally:
    tally = Tally()
    until = time.monotonic() + seconds
    seq = [0]
    await asyncio.gather(*(_client(i, base, pool, until, tally, seq) for i in range(clients)))
    return tally


def _statuses(base: str) -> dict[str, str]:
    """Every image's status, read through the API page by page."""
    found: dict[str, str] = {}
    with httpx.Client(base_url=base, timeout=60) as http:
        offset = 0
        while True:
            page = http.get("/api/images", params={"limit": 500, "offset": offset}).json()
            found.update({image["id"]: image["status"] for image in page["data"]})
            offset += len(page["data"])
            if not page["pagination"]["hasMore"]:
                return found


def _settled(base: str, accepted: list[str]) -> tuple[dict[str, str], float]:
    """Wait until no accepted image is still on its way; return statuses and the wait."""
    started = time.monotonic()
    while True:
        statuses = _statuses(base)
        waiting = [i for i in accepted if statuses.get(i) in ("INGESTED", "PROCESSING")]
        if not waiting or time.monotonic() - started > DRAIN_TIMEOUT_S:
            return statuses, time.monotonic() - started
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="15 s of load instead of 60 s")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (50)")
    parser.add_argument("--seconds", type=float, help="seconds of load (60; --quick: 15)")
    args = parser.parse_args()
    seconds = args.seconds or (15.0 if args.quick else 60.0)

    pool = _photo_pool(40, 640)
    url = fresh_pg_database(DATABASE)
    with tempfile.TemporaryDirectory(prefix="enlarger-api-load-") as scratch:
        log = Path(scratch) / "serve.log"
        serve, base = start_serve(Path(scratch) / "data", url, log, log_level="WARNING")
        try:
            print(f"{args.clients} clients for {seconds:.0f} s against {base} (PostgreSQL)")
            started = time.monotonic()
            tally = asyncio.run(_load(base, args.clients, seconds, pool))
            elapsed = time.monotonic() - started
            statuses, drained_s = _settled(base, tally.accepted)
        finally:
            serve.terminate()
            try:
                serve.wait(60)
            except subprocess.TimeoutExpired:
                serve.kill()
            errors = log.read_text()
        drop_pg_database(DATABASE)

    stored = sum(1 for i in tally.accepted if statuses.get(i) == "STORED")
    lost = len(tally.accepted) - stored
    everything = [ms for values in tally.latencies_ms.values() for ms in values]
    rows = [
        (
            kind,
            len(values),
            f"{len(values) / elapsed:.1f}",
            statistics.median(values),
            percentile(values, 99),
            ", ".join(f"{code}: {n}" for code, n in sorted(tally.statuses[kind].items())),
        )
        for kind, values in sorted(tally.latencies_ms.items())
    ]
    print_table(
        f"API load: {args.clients} clients, {elapsed:.0f} s; every upload stored "
        f"{drained_s:.0f} s after the load ended",
        ["request", "count", "per s", "p50 ms", "p99 ms", "statuses"],
        rows,
    )
    if "Traceback" in errors:
        print(errors, file=sys.stderr)
    verdict(
        uploads=len(tally.accepted),
        stored=stored,
        lost=lost,
        http_5xx=tally.server_errors,
        p99_ms=percentile(everything, 99),
    )


if __name__ == "__main__":
    main()
