"""The peers' drivers for the queue benchmarks: set up, enqueue, run two workers, time
the drain. Kept in their own module so spawned workers import them under the same name
(Huey and Procrastinate register tasks by module name)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from multiprocessing.synchronize import Event as EventType
from typing import Any

import sqlalchemy as sa

from bench.common import WORKERS, Fleet, pg_engine, until_nothing_left

PROCRASTINATE_CONCURRENCY = 4  # its best setting in shared/notes


# ---- PgQueuer -------------------------------------------------------------------------


def _pgqueuer_worker(dsn: str, batch: int, _index: int, ready: EventType, go: EventType) -> None:
    import asyncpg
    from pgqueuer import QueueManager
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    async def work() -> None:
        connection = await asyncpg.connect(dsn)
        manager = QueueManager(Queries(AsyncpgDriver(connection)))

        @manager.entrypoint("noop")
        async def noop_job(job: Any) -> None:
            return None

        ready.set()
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        await manager.run(
            batch_size=batch,
            mode=QueueExecutionMode.drain,
            dequeue_timeout=timedelta(seconds=1),
        )

    asyncio.run(work())


def pgqueuer_jobs_per_s(url: str, jobs: int, batch: int) -> float:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    async def prepare() -> None:
        connection = await asyncpg.connect(url)
        queries = Queries(AsyncpgDriver(connection))
        await queries.install()
        for start in range(0, jobs, 5000):
            n = min(5000, jobs - start)
            await queries.enqueue(["noop"] * n, [None] * n, [0] * n)
        await connection.close()

    asyncio.run(prepare())
    engine = pg_engine(url)
    fleet = Fleet.start(_pgqueuer_worker, (url, batch), WORKERS)
    # PgQueuer deletes a job from its table once it is done (and logs it).
    seconds = fleet.time_until(
        until_nothing_left(engine, "SELECT EXISTS (SELECT 1 FROM pgqueuer)"), timeout=600
    )
    with engine.connect() as conn:
        done = conn.execute(
            sa.text("SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'")
        ).scalar_one()
    engine.dispose()
    if done < jobs:
        raise SystemExit(f"PgQueuer logged {done} of {jobs} jobs as successful")
    return jobs / seconds


# ---- Procrastinate ----------------------------------------------------------------------


def _procrastinate_app(dsn: str) -> Any:
    from procrastinate import App, PsycopgConnector

    app = App(connector=PsycopgConnector(conninfo=dsn))

    @app.task(name="noop")
    async def noop_task() -> None:
        return None

    return app


def _procrastinate_worker(dsn: str, _index: int, ready: EventType, go: EventType) -> None:
    app = _procrastinate_app(dsn)

    async def work() -> None:
        async with app.open_async():
            ready.set()
            await asyncio.get_running_loop().run_in_executor(None, go.wait)
            await app.run_worker_async(
                concurrency=PROCRASTINATE_CONCURRENCY, wait=False, install_signal_handlers=False
            )

    asyncio.run(work())


def procrastinate_jobs_per_s(url: str, jobs: int) -> float:
    app = _procrastinate_app(url)

    async def prepare() -> None:
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            task = app.tasks["noop"]
            for start in range(0, jobs, 5000):
                await task.batch_defer_async(*[{}] * min(5000, jobs - start))

    asyncio.run(prepare())
    engine = pg_engine(url)
    fleet = Fleet.start(_procrastinate_worker, (url,), WORKERS)
    seconds = fleet.time_until(
        until_nothing_left(
            engine,
            "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE status IN ('todo', 'doing'))",
        ),
        timeout=900,
    )
    engine.dispose()
    return jobs / seconds


# ---- Huey -------------------------------------------------------------------------------


def _huey(path: str) -> tuple[Any, Any]:
    from huey import SqliteHuey

    huey = SqliteHuey(filename=path, fsync=True)

    @huey.task(name="noop")
    def noop_task() -> bool:
        return True  # stored as its result: how we count completions

    return huey, noop_task


def _huey_consumer(path: str, _index: int, ready: EventType, go: EventType) -> None:
    huey, _ = _huey(path)
    consumer = huey.create_consumer(
        workers=WORKERS, worker_type="process", initial_delay=0.01, max_delay=0.1, periodic=False
    )
    ready.set()
    go.wait()
    consumer.run()


def huey_jobs_per_s(path: str, jobs: int) -> float:
    _, noop_task = _huey(path)
    for _ in range(jobs):
        noop_task()
    connection = sqlite3.connect(path)

    def drained() -> bool:
        return connection.execute("SELECT count(*) FROM kv").fetchone()[0] >= jobs

    fleet = Fleet.start(_huey_consumer, (path,), 1)  # one consumer with WORKERS processes
    seconds = fleet.time_until(drained, timeout=600)
    connection.close()
    return jobs / seconds
