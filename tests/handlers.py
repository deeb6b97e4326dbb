"""Handlers used by the test suite, importable by subprocess workers and CPU children
(`enlarger worker --handlers tests.handlers:registry`).

Each handler records what it did in the `test_runs` table of the database named in its
payload, so a test can see every execution, including ones in killed processes."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from enlarger.db.engine import create_db_engine
from enlarger.queue import (
    DependencyDown,
    FailedJob,
    ItemStatus,
    JobContext,
    PermanentError,
    Registry,
)

registry = Registry()
IMPORTED_BY_PID = os.getpid()  # the process that imported this module

_engines: dict[str, sa.Engine] = {}


def record(url: str, job_id: int, what: str) -> None:
    """Append (job_id, what, pid) to `test_runs`, committed at once."""
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = create_db_engine(url, pool_size=1)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO test_runs (job_id, what, pid) VALUES (:j, :w, :p)"),
            {"j": job_id, "w": what, "p": os.getpid()},
        )


@registry.handler("noop")
def noop(ctx: JobContext, payload: Any) -> None:
    return None


@registry.handler("echo")
def echo(ctx: JobContext, payload: Any) -> Any:
    return payload


@registry.handler("record")
def record_run(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Records each execution; sleeps `sleep_first` seconds on the first attempt only;
    with `until_pids`, returns once that many processes have recorded a run (240 s at
    most, for a loaded machine): how a test knows every worker process took jobs,
    whichever started first."""
    record(payload["db"], ctx.job_id, f"run:{ctx.attempt}")
    if ctx.attempt == 1:
        time.sleep(payload.get("sleep_first", 0))
    deadline = time.monotonic() + 240
    while len(_pids(payload["db"])) < payload.get("until_pids", 0):
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)


def _pids(url: str) -> set[int]:
    with _engines[url].connect() as conn:
        return set(conn.execute(sa.text("SELECT DISTINCT pid FROM test_runs")).scalars())


@registry.handler("flaky", max_attempts=4)
def flaky(ctx: JobContext, payload: dict[str, Any]) -> str:
    """Fails until its attempt number reaches `succeed_on`."""
    if ctx.attempt < payload["succeed_on"]:
        raise RuntimeError(f"attempt {ctx.attempt} fails on purpose")
    return f"ok on attempt {ctx.attempt}"


@registry.handler("outage", max_attempts=1)
def outage(ctx: JobContext, payload: dict[str, Any]) -> int:
    """Its storage is out while the file `outage_flag` exists: fails with DependencyDown."""
    if Path(payload["outage_flag"]).exists():
        raise DependencyDown("STORAGE_UNAVAILABLE", "the storage service did not answer")
    return ctx.attempt


@registry.handler("cpu_outage", kind="cpu", max_attempts=1)
def cpu_outage(ctx: JobContext, payload: dict[str, Any]) -> int:
    """In a CPU child, its database is out while the file `outage_flag` exists: the
    driver's error, which the child names before it crosses the pipe."""
    if Path(payload["outage_flag"]).exists():
        refused = ConnectionRefusedError("connection refused")
        raise sa.exc.OperationalError("SELECT 1", {}, refused)
    return ctx.attempt


@registry.handler("broken_input")
def broken_input(ctx: JobContext, payload: Any) -> None:
    raise PermanentError("CORRUPT_IMAGE", "the bytes are not an image")


@registry.handler("value_error", permanent_errors=(ValueError,))
def value_error(ctx: JobContext, payload: Any) -> None:
    raise ValueError("bad input, declared permanent")


@registry.handler("sleep")
def sleep(ctx: JobContext, payload: dict[str, Any]) -> None:
    deadline = time.monotonic() + payload["seconds"]
    while time.monotonic() < deadline:
        ctx.check_cancelled()
        time.sleep(0.02)


@registry.handler("async_sleep")
async def async_sleep(ctx: JobContext, payload: dict[str, Any]) -> str:
    await asyncio.sleep(payload["seconds"])
    return "slept"


@registry.handler("cpu_spin", kind="cpu")
def cpu_spin(ctx: JobContext, payload: dict[str, Any]) -> int:
    """Busy loop in a child process; records its pid so the test can check it was killed."""
    if "db" in payload:
        record(payload["db"], ctx.job_id, f"cpu_pid:{os.getpid()}")
    deadline = time.monotonic() + payload["seconds"]
    n = 0
    while time.monotonic() < deadline:
        n += 1
    return n


@registry.handler("cpu_items", kind="cpu")
def cpu_items(ctx: JobContext, payload: dict[str, Any]) -> int:
    for i, key in enumerate(payload["keys"]):
        ctx.item(key, ItemStatus.RUNNING)
        ctx.item(
            key,
            ItemStatus.FAILED if key.startswith("bad") else ItemStatus.DONE,
            error="bad file" if key.startswith("bad") else None,
        )
        ctx.progress((i + 1) / len(payload["keys"]))
    return len(payload["keys"])


@registry.handler("cpu_pid", kind="cpu")
def cpu_pid(ctx: JobContext, payload: Any) -> int:
    return os.getpid()


@registry.handler("cpu_where_imported", kind="cpu")
def cpu_where_imported(ctx: JobContext, payload: Any) -> dict[str, int]:
    return {"importedBy": IMPORTED_BY_PID, "runsIn": os.getpid()}


@registry.handler("cpu_crash", kind="cpu", max_attempts=1)
def cpu_crash(ctx: JobContext, payload: Any) -> None:
    os._exit(3)


@registry.handler("cpu_hog", kind="cpu")
def cpu_hog(ctx: JobContext, payload: dict[str, Any]) -> int:
    """Take `mb` megabytes (touched, so resident) and hold them for `seconds`."""
    hoard = bytearray(payload["mb"] * 1024 * 1024)
    for offset in range(0, len(hoard), 4096):
        hoard[offset] = 1
    time.sleep(payload["seconds"])
    return len(hoard)


@registry.handler("open_missing", max_attempts=1)
def open_missing(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Fails as code that opens a file often does: with the file's path in the error."""
    with open(payload["path"], "rb"):
        pass


TOLD: list[FailedJob] = []  # what on_failed hooks heard, in the worker's (this) process


def _told(failed: FailedJob) -> None:
    TOLD.append(failed)


@registry.handler("doomed", max_attempts=2, on_failed=_told)
def doomed(ctx: JobContext, payload: Any) -> None:
    raise RuntimeError("this job never works")


@registry.handler("cpu_hog_told", kind="cpu", on_failed=_told)
def cpu_hog_told(ctx: JobContext, payload: dict[str, Any]) -> int:
    return cpu_hog(ctx, payload)
