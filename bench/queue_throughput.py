"""No-op job throughput: a backlog drained by two worker processes, side by side.

PostgreSQL (one server, durable commits): enlarger vs PgQueuer vs Procrastinate.
Each enlarger run also prints the CPU time per job of its workers and, when PostgreSQL
runs on this machine, of the server's processes (from /proc).
SQLite (synchronous=FULL for both): enlarger vs Huey's SqliteHuey.
Each system is measured from the moment its already-started workers are released until
the last job is recorded as done; the systems take turns, one run each per round, and
the median of `--repeats` runs is reported. PgQueuer runs at several batch sizes and its
best is the comparison. `--history N` also runs enlarger with N finished jobs in
history, to show what a large history costs.

    python -m bench.queue_throughput [--quick] [--jobs N] [--repeats N] [--history 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import (
    WORKERS,
    Fleet,
    drop_pg_database,
    fresh_pg_database,
    migrated_engine,
    postgres_cpu,
    print_table,
    run_enlarger_worker,
    tree_cpu,
    until_nothing_left,
    verdict,
    waited_children_cpu,
)
from bench.peers import huey_jobs_per_s, pgqueuer_jobs_per_s, procrastinate_jobs_per_s
from enlarger.config import Settings
from enlarger.db.engine import is_postgres
from enlarger.queue import JobContext, NewJob, Registry, store_for_engine

PGQUEUER_BATCHES = (10, 50, 200)  # its best of these is the comparison

registry = Registry()


@registry.handler("noop")
def noop(ctx: JobContext, payload: Any) -> None:
    return None


@registry.handler("noop_async")
async def noop_async(ctx: JobContext, payload: Any) -> None:
    return None


# Many slots and big claims: what one configures for cheap I/O-bound jobs.
ENLARGER_SETTINGS = Settings(
    max_parallel_jobs=500, priority_lane_slots=0, claim_batch=500, prune_after_seconds=86400
)


# ---- enlarger ---------------------------------------------------------------------------


def _prefill_history(engine: sa.Engine, count: int) -> None:
    """`count` finished jobs in history (ids 1..count), as years of use would leave."""
    columns = "id, type, status, priority, attempts, max_attempts, created_at, finished_at"
    with engine.begin() as conn:
        if is_postgres(engine):
            conn.exec_driver_sql(
                f"INSERT INTO job_history ({columns}) SELECT g, 'noop', 'completed', 0, 1, 3,"
                f" now(), now() FROM generate_series(1, {count}) AS g"
            )
            conn.exec_driver_sql(f"ALTER SEQUENCE jobs_id_seq RESTART WITH {count + 1}")
        else:
            conn.exec_driver_sql(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g"
                f" WHERE n < {count}) INSERT INTO job_history ({columns})"
                " SELECT n, 'noop', 'completed', 0, 1, 3, 0, 0 FROM g"
            )
            conn.exec_driver_sql(
                f"INSERT OR REPLACE INTO sqlite_sequence (name, seq) VALUES ('jobs', {count})"
            )
        conn.exec_driver_sql(
            "INSERT INTO job_history_counts (type, status, n)"
            f" VALUES ('noop', 'completed', {count})"
        )


def enlarger_jobs_per_s(
    url: str, jobs: int, history: int = 0, job_type: str = "noop_async"
) -> float:
    engine = migrated_engine(url)
    if history:
        _prefill_history(engine, history)
    store = store_for_engine(engine)
    for start in range(0, jobs, 5000):
        store.enqueue_many([NewJob(job_type) for _ in range(min(5000, jobs - start))])
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")

    children_before = waited_children_cpu()
    fleet = Fleet.start(
        run_enlarger_worker, (url, "bench.queue_throughput:registry", ENLARGER_SETTINGS), WORKERS
    )
    set_up = sum(tree_cpu(process.pid)[0] for process in fleet.processes)
    server_before = postgres_cpu()
    seconds = fleet.time_until(
        until_nothing_left(
            engine, "SELECT EXISTS (SELECT 1 FROM jobs WHERE status IN ('pending', 'running'))"
        ),
        timeout=600,
    )
    # the workers' CPU from release to exit, and (when it runs here) the server's
    per_job = {"the workers": waited_children_cpu() - children_before - set_up}
    if is_postgres(url):
        per_job["the PostgreSQL server"] = postgres_cpu() - server_before
    spent = ", ".join(f"{who} {cpu * 1e6 / jobs:.0f}" for who, cpu in per_job.items())
    print(f"  enlarger: {jobs / seconds:,.0f} jobs/s; CPU µs per job: {spent}", flush=True)
    with engine.connect() as conn:
        completed = conn.execute(
            sa.text("SELECT count(*) FROM jobs WHERE status = 'completed'")
        ).scalar_one()
    engine.dispose()
    if completed != jobs:
        raise SystemExit(f"enlarger completed {completed} of {jobs} jobs")
    return jobs / seconds


# ---- main -------------------------------------------------------------------------------


def _median_rates(plan: list[tuple[str, Callable[[], float], int]]) -> dict[str, float]:
    """Run the plan in rounds, each system once per round (a system asked for fewer runs
    sits the later rounds out), so that the machine drifting during the benchmark weighs
    on every system alike; the median of each system's runs."""
    rates: dict[str, list[float]] = {name: [] for name, _, _ in plan}
    for round_number in range(max(n for _, _, n in plan)):
        for name, measure, n in plan:
            if round_number < n:
                rates[name].append(measure())
    medians = {}
    for name, runs in rates.items():
        medians[name] = statistics.median(runs)
        listed = ", ".join(f"{r:,.0f}" for r in runs)
        print(f"{name}: {medians[name]:,.0f} jobs/s (runs: {listed})", flush=True)
    return medians


def on_pg(database: str, measure: Callable[[str], float]) -> Callable[[], float]:
    """Measure on a freshly created PostgreSQL database, dropped afterwards."""

    def run() -> float:
        try:
            return measure(fresh_pg_database(database))
        finally:
            drop_pg_database(database)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5,000 jobs, one run per system")
    parser.add_argument("--jobs", type=int, help="backlog size")
    parser.add_argument("--repeats", type=int, help="runs per system (the median is reported)")
    parser.add_argument("--history", type=int, default=0, help="finished jobs in history")
    args = parser.parse_args()
    jobs = args.jobs or (5000 if args.quick else 20000)
    repeats = args.repeats or (1 if args.quick else 3)
    scratch = Path(tempfile.mkdtemp(prefix="enlarger-bench-"))

    def on_sqlite(measure: Callable[[str], float]) -> Callable[[], float]:
        """Measure on a new database file, removed afterwards (with a million jobs of
        history, one is 200 MB)."""

        def run() -> float:
            try:
                return measure(str(scratch / "run.db"))
            finally:
                for path in scratch.iterdir():
                    path.unlink()

        return run

    def enlarger_pg(history: int) -> Callable[[], float]:
        return on_pg("bench_enlarger", lambda url: enlarger_jobs_per_s(url, jobs, history))

    def enlarger_sqlite(history: int) -> Callable[[], float]:
        return on_sqlite(lambda path: enlarger_jobs_per_s(f"sqlite:///{path}", jobs, history))

    # with --history, each history run goes right after its plain twin
    plan: list[tuple[str, Callable[[], float], int]] = [("enlarger_pg", enlarger_pg(0), repeats)]
    if args.history:
        plan.append(("enlarger_pg_history", enlarger_pg(args.history), repeats))
    for batch in PGQUEUER_BATCHES:
        plan.append(
            (
                f"pgqueuer_batch{batch}",
                on_pg("bench_pgqueuer", lambda url, b=batch: pgqueuer_jobs_per_s(url, jobs, b)),
                repeats,
            )
        )
    plan.append(
        (
            "procrastinate",
            on_pg("bench_procrastinate", lambda url: procrastinate_jobs_per_s(url, jobs)),
            1,
        )
    )
    plan.append(("enlarger_sqlite", enlarger_sqlite(0), repeats))
    if args.history:
        plan.append(("enlarger_sqlite_history", enlarger_sqlite(args.history), repeats))
    plan.append(("huey_sqlite", on_sqlite(lambda path: huey_jobs_per_s(path, jobs)), repeats))
    results = _median_rates(plan)
    scratch.rmdir()

    pgqueuer_best = max(results[f"pgqueuer_batch{b}"] for b in PGQUEUER_BATCHES)
    print_table(
        f"no-op jobs, backlog {jobs:,}, {WORKERS} worker processes, durable commits, "
        f"median of {repeats}",
        ["system", "jobs/s"],
        list(results.items()),
    )
    line: dict[str, Any] = {
        "enlarger_pg_jobs_per_s": results["enlarger_pg"],
        "pgqueuer_jobs_per_s": pgqueuer_best,
        "procrastinate_jobs_per_s": results["procrastinate"],
        "ratio_vs_pgqueuer": results["enlarger_pg"] / pgqueuer_best,
        "enlarger_sqlite_jobs_per_s": results["enlarger_sqlite"],
        "huey_sqlite_jobs_per_s": results["huey_sqlite"],
        "ratio_sqlite_vs_huey": results["enlarger_sqlite"] / results["huey_sqlite"],
    }
    if args.history:
        line["history_jobs"] = args.history
        line["enlarger_pg_history_jobs_per_s"] = results["enlarger_pg_history"]
        line["history_cost_pg"] = 1 - results["enlarger_pg_history"] / results["enlarger_pg"]
        line["enlarger_sqlite_history_jobs_per_s"] = results["enlarger_sqlite_history"]
        line["history_cost_sqlite"] = (
            1 - results["enlarger_sqlite_history"] / results["enlarger_sqlite"]
        )
    verdict(**line)


if __name__ == "__main__":
    main()
