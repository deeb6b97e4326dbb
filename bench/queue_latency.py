"""Enqueue→start latency with idle workers: a steady 200 jobs/s, one transaction each, for
10 s (`--quick`: 5 s), against two idle `enlarger worker` processes; on PostgreSQL
(woken by LISTEN/NOTIFY) and on SQLite (woken by watching `PRAGMA data_version`).

Latency is measured from just before the enqueue call to the first line of the handler,
on one clock (the same machine).

    python -m bench.queue_latency [--quick] [--rate 200] [--seconds 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import (
    Fleet,
    drop_pg_database,
    fresh_pg_database,
    migrated_engine,
    percentile,
    print_table,
    run_enlarger_worker,
    verdict,
    wait_until,
)
from enlarger.config import Settings
from enlarger.queue import JobContext, NewJob, Registry, store_for_engine

WORKERS = 2
registry = Registry()


@registry.handler("stamp")
def stamp(ctx: JobContext, payload: dict[str, float]) -> float:
    """The job's latency in ms: now minus the moment the client started enqueueing it."""
    return (time.time() - payload["t0"]) * 1000


def latencies_ms(url: str, rate: float, seconds: float) -> list[float]:
    engine = migrated_engine(url)
    store = store_for_engine(engine)
    fleet = Fleet.start(
        run_enlarger_worker, (url, "bench.queue_latency:registry", Settings()), WORKERS
    )
    fleet.release()
    time.sleep(1.0)  # workers idle and listening
    count = int(rate * seconds)
    begin = time.perf_counter()
    for n in range(count):
        time.sleep(max(0.0, begin + n / rate - time.perf_counter()))
        store.enqueue(NewJob("stamp", {"t0": time.time()}))
    done = sa.text("SELECT count(*) FROM jobs WHERE status = 'completed'")

    def all_done() -> bool:
        with engine.connect() as conn:
            return conn.execute(done).scalar_one() >= count

    wait_until(all_done, timeout=60, interval=0.05)
    fleet.stop()
    with engine.connect() as conn:
        results = list(conn.execute(sa.text("SELECT result FROM jobs")).scalars())
    engine.dispose()
    return [float(r) for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 s instead of 10 s")
    parser.add_argument("--rate", type=float, default=200.0, help="jobs per second")
    parser.add_argument("--seconds", type=float, help="how long to enqueue")
    args = parser.parse_args()
    seconds = args.seconds or (5.0 if args.quick else 10.0)

    results: dict[str, list[float]] = {}
    try:
        results["pg"] = latencies_ms(fresh_pg_database("bench_latency"), args.rate, seconds)
    finally:
        drop_pg_database("bench_latency")
    with tempfile.TemporaryDirectory(prefix="enlarger-bench-") as scratch:
        database = f"sqlite:///{Path(scratch) / 'latency.db'}"
        results["sqlite"] = latencies_ms(database, args.rate, seconds)

    summary: dict[str, Any] = {}
    rows = []
    for backend, values in results.items():
        p50, p99 = percentile(values, 50), percentile(values, 99)
        summary[f"{backend}_p50_ms"], summary[f"{backend}_p99_ms"] = p50, p99
        rows.append((backend, len(values), p50, percentile(values, 90), p99, max(values)))
    print_table(
        f"enqueue→start latency, {args.rate:.0f} jobs/s for {seconds:.0f} s, "
        f"{WORKERS} idle workers",
        ["backend", "jobs", "p50 ms", "p90 ms", "p99 ms", "max ms"],
        rows,
    )
    verdict(**summary)


if __name__ == "__main__":
    main()
