"""Crash safety under fire: 5,000 jobs (`--quick`: 2,000) run by three `enlarger worker`
processes with default settings, while a random worker is SIGKILLed every 2 s and
restarted. Each execution is recorded by the handler in `chaos_runs` (its own commit);
each accepted completion is the engine's `completed` event, written in the same
transaction as the fenced finish. Runs on PostgreSQL and on SQLite.

    lost                   jobs that never completed
    duplicate_completions  jobs whose completion was accepted more than once
    reexecuted             jobs that ran more than once (expected: killed mid-run)
    max_rescue_s           longest time from the kill of a job's worker to its next claim

    python -m bench.queue_chaos [--quick] [--jobs N] [--backend pg|sqlite|both]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import drop_pg_database, fresh_pg_database, migrated_engine, print_table, verdict
from enlarger.db.engine import create_db_engine
from enlarger.queue import JobContext, NewJob, Registry, store_for_engine

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKERS = 3
KILL_EVERY_S = 2.0
WORK_S = 0.02
RUNS_DDL = "CREATE TABLE chaos_runs (job_id BIGINT, pid INTEGER, started_at DOUBLE PRECISION)"

registry = Registry()
_engines: dict[str, sa.Engine] = {}


@registry.handler("chaos")
def chaos(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Record this execution (committed at once), then 'work' for a moment."""
    url = payload["db"]
    engine = _engines.get(url) or _engines.setdefault(url, create_db_engine(url, pool_size=2))
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO chaos_runs (job_id, pid, started_at) VALUES (:j, :p, :t)"),
            {"j": ctx.job_id, "p": os.getpid(), "t": time.time()},
        )
    time.sleep(WORK_S)


@dataclass
class Chaos:
    url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: list[tuple[int, float]] = field(default_factory=list)  # (pid, when)

    def spawn(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), ENLARGER_LOG_LEVEL="ERROR")
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "enlarger",
                "worker",
                "--database-url",
                self.url,
                "--handlers",
                "bench.queue_chaos:registry",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )

    def kill_one(self, rng: random.Random) -> None:
        victim = rng.randrange(len(self.processes))
        process = self.processes[victim]
        process.send_signal(signal.SIGKILL)
        self.kills.append((process.pid, time.time()))
        process.wait()
        self.processes[victim] = self.spawn()

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(40)
            except subprocess.TimeoutExpired:
                process.kill()


def run(url: str, jobs: int, seed: int) -> dict[str, Any]:
    engine = migrated_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(RUNS_DDL)
    store = store_for_engine(engine)
    store.enqueue_many([NewJob("chaos", {"db": url}) for _ in range(jobs)])
    chaos_run = Chaos(url)
    chaos_run.processes = [chaos_run.spawn() for _ in range(WORKERS)]
    rng = random.Random(seed)
    live = sa.text("SELECT count(*) FROM jobs WHERE status IN ('pending', 'running')")
    started = time.monotonic()
    next_kill = started + KILL_EVERY_S
    while True:
        with engine.connect() as conn:
            remaining = conn.execute(live).scalar_one()
        if remaining == 0:
            break
        if time.monotonic() - started > 600:
            raise SystemExit(f"{remaining} jobs still live after 600 s")
        if time.monotonic() >= next_kill:
            chaos_run.kill_one(rng)
            next_kill += KILL_EVERY_S
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    chaos_run.stop()
    result = _tally(engine, jobs, chaos_run.kills)
    result["seconds"] = elapsed
    engine.dispose()
    return result


def _tally(engine: sa.Engine, jobs: int, kills: list[tuple[int, float]]) -> dict[str, Any]:
    with engine.connect() as conn:
        completed = conn.execute(
            sa.text("SELECT count(*) FROM jobs WHERE status = 'completed'")
        ).scalar_one()
        accepted = conn.execute(
            sa.text(
                "SELECT job_id, count(*) FROM job_events WHERE kind = 'job'"
                " AND status = 'completed' GROUP BY job_id HAVING count(*) > 1"
            )
        ).all()
        executions = conn.execute(
            sa.text("SELECT job_id, count(*) FROM chaos_runs GROUP BY job_id HAVING count(*) > 1")
        ).all()
        events = conn.execute(
            sa.text(
                "SELECT job_id, kind, status, data, created_at FROM job_events"
                " WHERE (kind = 'job' AND status = 'running') OR kind = 'rescued' ORDER BY id"
            )
        ).all()
    return {
        "jobs": jobs,
        "completed": completed,
        "lost": jobs - completed,
        "duplicate_completions": len(accepted),
        "reexecuted": len(executions),
        "kills": len(kills),
        "max_rescue_s": max(_rescue_times(events, dict(kills)), default=0.0),
    }


def _rescue_times(events: list[Any], killed_at: dict[int, float]) -> list[float]:
    """Per rescue: from the kill of the worker that held the job (named in its claim
    event) to the job's next claim."""
    holder: dict[int, int] = {}  # job -> pid of the worker whose claim is current
    rescued_from: dict[int, int] = {}  # job -> pid it was rescued from, awaiting a claim
    times = []
    for job_id, kind, _status, data, created_at in events:
        when = created_at if isinstance(created_at, float) else created_at.timestamp()
        if kind == "rescued":
            rescued_from[job_id] = holder.pop(job_id)
            continue
        worker = data if isinstance(data, dict) else json.loads(data)
        pid = int(worker["worker"].rsplit(":", 2)[1])
        if job_id in rescued_from:
            dead = rescued_from.pop(job_id)
            if dead in killed_at:
                times.append(when - killed_at[dead])
        holder[job_id] = pid
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2,000 jobs instead of 5,000")
    parser.add_argument("--jobs", type=int)
    parser.add_argument("--backend", choices=["pg", "sqlite", "both"], default="both")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    jobs = args.jobs or (2000 if args.quick else 5000)

    results: dict[str, dict[str, Any]] = {}
    if args.backend in ("pg", "both"):
        try:
            results["pg"] = run(fresh_pg_database("bench_chaos"), jobs, args.seed)
        finally:
            drop_pg_database("bench_chaos")
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="enlarger-bench-") as scratch:
            results["sqlite"] = run(f"sqlite:///{Path(scratch) / 'chaos.db'}", jobs, args.seed)

    columns = [
        "jobs",
        "completed",
        "lost",
        "duplicate_completions",
        "reexecuted",
        "kills",
        "max_rescue_s",
        "seconds",
    ]
    print_table(
        f"{WORKERS} workers, one SIGKILLed every {KILL_EVERY_S:.0f} s and restarted",
        ["backend", *columns],
        [(backend, *(r[c] for c in columns)) for backend, r in results.items()],
    )
    verdict(
        jobs=sum(r["jobs"] for r in results.values()),
        completed=sum(r["completed"] for r in results.values()),
        lost=sum(r["lost"] for r in results.values()),
        duplicate_completions=sum(r["duplicate_completions"] for r in results.values()),
        reexecuted=sum(r["reexecuted"] for r in results.values()),
        max_rescue_s=max(r["max_rescue_s"] for r in results.values()),
    )


if __name__ == "__main__":
    main()
