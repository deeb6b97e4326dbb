"""Helpers shared by the benchmarks: scratch databases, worker processes that start on one
signal, process CPU time read from /proc, and the output format (a table, then a last
line of key=value pairs)."""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from enlarger.config import Settings
from enlarger.db import migrate
from enlarger.db.engine import create_db_engine
from enlarger.queue import Registry, Worker, settle_heap, store_for_engine

WORKERS = 2  # worker processes per system in the throughput benchmark
PG_ADMIN_DSN = os.environ.get("ENLARGER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SPAWN = multiprocessing.get_context("spawn")
console = Console(stderr=True)


def pg_url(database: str) -> str:
    return f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{database}"


def fresh_pg_database(name: str) -> str:
    """Drop and create `name`; return its URL."""
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
        durable = conn.execute("SHOW synchronous_commit").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
    if durable != ("on",) or fsync != ("on",):
        raise SystemExit(f"PostgreSQL is not durable (synchronous_commit={durable}, fsync={fsync})")
    return pg_url(name)


def pg_engine(url: str) -> sa.Engine:
    """A plain psycopg engine for peers' databases (no enlarger settings applied)."""
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))


def until_nothing_left(engine: sa.Engine, exists_query: str) -> Callable[[], bool]:
    """A check that turns true once `exists_query` (a SELECT EXISTS) finds nothing."""

    def drained() -> bool:
        with engine.connect() as conn:
            return not conn.execute(sa.text(exists_query)).scalar()

    return drained


def drop_pg_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def migrated_engine(url: str) -> sa.Engine:
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    return engine


@dataclass
class Fleet:
    """Processes that set themselves up, say ready, and start work on one `go` signal."""

    processes: list[Any]
    go: EventType

    @classmethod
    def start(cls, target: Callable[..., None], args: Sequence[Any], count: int) -> Fleet:
        go = SPAWN.Event()
        readies = [SPAWN.Event() for _ in range(count)]
        processes = [
            SPAWN.Process(target=target, args=(*args, n, ready, go))
            for n, ready in enumerate(readies)
        ]
        for process in processes:
            process.start()
        fleet = cls(processes, go)
        for ready, process in zip(readies, processes, strict=True):
            while not ready.wait(0.5):
                if not process.is_alive():
                    fleet.stop()
                    raise SystemExit(f"{process.name} died while starting")
        return fleet

    def release(self) -> float:
        self.go.set()
        return time.perf_counter()

    def time_until(self, done: Callable[[], bool], timeout: float) -> float:
        """Release the fleet, wait until `done()`, stop it; the seconds in between."""
        started = self.release()
        finished = wait_until(done, timeout, interval=0.02)
        self.stop()
        return finished - started

    def stop(self, timeout: float = 30.0) -> None:
        for process in self.processes:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


def wait_until(done: Callable[[], bool], timeout: float, interval: float = 0.01) -> float:
    """Poll `done` until true; return the perf_counter time it became true."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"benchmark did not finish within {timeout:.0f} s")
        time.sleep(interval)
    return time.perf_counter()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, str, float]]:
    """Every process's parent, command name and CPU seconds: its own and those of the
    children it has waited for (so a CPU child that ended is still counted, in its
    parent)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        name = stat[stat.find("(") + 1 : stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2 :].split()
        ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        found[int(entry.name)] = (int(fields[1]), name, ticks / CLOCK_TICKS)
    return found


def tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds of `root` (depth 0) and its descendants, summed by depth."""
    processes = _processes()
    by_depth: dict[int, float] = {}
    level, depth = {root}, 0
    while level:
        by_depth[depth] = sum(processes[pid][2] for pid in level if pid in processes)
        level = {pid for pid, (parent, _, _) in processes.items() if parent in level}
        depth += 1
    return by_depth


def waited_children_cpu() -> float:
    """CPU seconds of this process's children that ended and were waited for."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def postgres_cpu() -> float:
    """CPU seconds of this machine's PostgreSQL server, all its processes (0 when it runs
    elsewhere)."""
    return sum(cpu for _, name, cpu in _processes().values() if name.startswith("postgres"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_serve(
    data_dir: Path, database_url: str | None, log: Path, log_level: str | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """`enlarger serve` in a process of its own, its output in `log`; returns it and its
    base URL once it answers."""
    port = free_port()
    command = [sys.executable, "-m", "enlarger", "serve", "--port", str(port)]
    command += ["--data-dir", str(data_dir)]
    if database_url:
        command += ["--database-url", database_url]
    env = dict(os.environ, ENLARGER_LOG_LEVEL=log_level) if log_level else None
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    base_url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if server.poll() is not None:
            raise SystemExit(f"enlarger serve exited:\n{log.read_text()}")
        try:
            return httpx.get(f"{base_url}/healthz", timeout=1).is_success
        except httpx.TransportError:
            return False

    wait_until(healthy, 60, interval=0.1)
    return server, base_url


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(p * 10) - 1]


def run_enlarger_worker(
    url: str,
    registry_spec: str,
    settings: Settings,
    _index: int,
    ready: EventType,
    go: EventType,
) -> None:
    """A worker process for benchmarks: sets up, waits for `go`, runs until SIGTERM."""
    from enlarger.queue import load_registry

    registry: Registry = load_registry(registry_spec)
    worker = Worker(store_for_engine(create_db_engine(url)), registry, settings)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop(wait=False))
    settle_heap()  # as `enlarger worker` does
    ready.set()
    go.wait()
    worker.run()


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """The title on its own line, then the table, wide enough for every column name."""
    out = Console(width=200)
    out.print(title, style="bold")
    table = Table()
    for column in columns:
        table.add_column(column, justify="right" if column != columns[0] else "left")
    for row in rows:
        table.add_row(*(f"{v:,.1f}" if isinstance(v, float) else str(v) for v in row))
    out.print(table)


def verdict(**values: Any) -> None:
    """The last line of every benchmark: key=value pairs."""
    parts = [f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()]
    print(" ".join(parts), flush=True)
