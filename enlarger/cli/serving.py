"""`enlarger serve` and `enlarger worker`: the long-running processes."""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import logging
import multiprocessing
import os
import signal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from enlarger import logs
from enlarger.cli.shared import (
    ConfigFile,
    DatabaseUrl,
    DataDir,
    Handlers,
    LogFormat,
    LogLevel,
    MaxParallel,
    PrioritySlots,
    engine_for,
    err_console,
    services_for,
    working_settings,
)

if TYPE_CHECKING:
    from enlarger.config import Settings
    from enlarger.queue import Worker


def _notice(settings: Settings, markup: str, level: int = logging.INFO) -> None:
    """A line for the operator: on stderr, or with JSON logs one log record like any
    other (a collector reading the log takes one JSON object a line)."""
    if settings.log_format == "json":
        from rich.text import Text

        logging.getLogger("enlarger.serve").log(level, Text.from_markup(markup).plain)
    else:
        err_console.print(markup)


def run_worker(settings: Settings, under_serve: bool = False) -> Worker:
    """Migrate, then run one worker in this process until SIGTERM or SIGINT (`serve`'s
    own workers are told by SIGTERM that `serve` stops, whatever stopped it)."""
    from enlarger.bootstrap import build_worker
    from enlarger.queue import settle_heap

    logs.configure(settings.log_level, settings.log_format)
    worker = build_worker(services_for(settings, migrate_first=True))

    def on_signal(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        why = "serve is stopping" if under_serve and signum == signal.SIGTERM else name
        logging.getLogger(__name__).info("%s: finishing running jobs", why)
        worker.stop(wait=False)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    settle_heap()
    worker.run()
    return worker


PR_SET_PDEATHSIG = 1  # prctl option: the signal this process gets when its parent dies


def run_serve_worker(settings: Settings, serve_pid: int) -> None:
    """A worker process of `serve`: it stops (SIGTERM, handing back running jobs) when
    `serve` dies, even by SIGKILL, instead of living on as an orphan."""
    with contextlib.suppress(OSError, AttributeError):  # Linux only
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != serve_pid:  # serve died before the line above
        return
    run_worker(settings, under_serve=True)


WorkerFlags = dict[str, Any]


def _worker_flags(
    max_parallel_jobs: int | None,
    priority_lane_slots: int | None,
    handlers: str | None,
    log_level: str | None,
    log_format: str | None = None,
) -> WorkerFlags:
    return {
        "max_parallel_jobs": max_parallel_jobs,
        "priority_lane_slots": priority_lane_slots,
        "handlers": handlers,
        "log_level": log_level,
        "log_format": log_format,
    }


def worker(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
    max_parallel_jobs: MaxParallel = None,
    priority_lane_slots: PrioritySlots = None,
    handlers: Handlers = None,
    log_level: LogLevel = None,
    log_format: LogFormat = None,
) -> None:
    """Run a standalone worker (scale out: run one per host or core, on PostgreSQL)."""
    flags = _worker_flags(max_parallel_jobs, priority_lane_slots, handlers, log_level, log_format)
    run_worker(working_settings(config, data_dir=data_dir, database_url=database_url, **flags))


def serve(
    host: Annotated[str, typer.Option(help="Address the HTTP API will listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the HTTP API will listen on.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            help="Worker processes to run; 0 for an API-only node (workers run elsewhere).",
            min=0,
        ),
    ] = 1,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
    max_parallel_jobs: MaxParallel = None,
    priority_lane_slots: PrioritySlots = None,
    handlers: Handlers = None,
    log_level: LogLevel = None,
    log_format: LogFormat = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure", help="Listen beyond loopback although no API token exists (open API)."
        ),
    ] = False,
) -> None:
    """Run the HTTP API and WORKERS worker processes; migrates the database first."""
    from enlarger.access import tokens
    from enlarger.api.app import create_app, run_server
    from enlarger.bootstrap import build_services
    from enlarger.queue import start_deaf_to_ctrl_c

    flags = _worker_flags(max_parallel_jobs, priority_lane_slots, handlers, log_level, log_format)
    settings = working_settings(config, data_dir=data_dir, database_url=database_url, **flags)
    logs.configure(settings.log_level, settings.log_format)
    engine = engine_for(settings, migrate_first=True, pre_ping=True)
    if not tokens.any_created(engine):
        if not _is_loopback(host) and not insecure:
            err_console.print(
                f"[red]error:[/red] no API token exists, so the API would be open to anyone "
                f"who reaches {host}. Create one first (enlarger tokens create --role admin), "
                "listen on 127.0.0.1, or pass --insecure."
            )
            raise typer.Exit(2)
        _notice(
            settings,
            "[yellow]open:[/yellow] no API token exists, so the API needs none; "
            "`enlarger tokens create --role admin` turns access control on",
            logging.WARNING,
        )
    _check_open_files(settings.max_connections)
    app_ = create_app(build_services(settings, engine=engine))
    processes = [
        multiprocessing.get_context("spawn").Process(
            target=run_serve_worker, args=(settings, os.getpid()), name=f"enlarger-worker-{n}"
        )
        for n in range(workers)
    ]
    for process in processes:
        start_deaf_to_ctrl_c(process)  # Ctrl-C reaches them too: `serve` stops them below
    _notice(
        settings,
        f"enlarger: dashboard at http://{host}:{port}/ (API docs at /docs), database "
        f"{settings.resolved_database_url}, storage {settings.resolved_storage_url}, "
        + (
            f"{workers} worker process(es)"
            if workers
            else "no worker process (API only: `enlarger worker` runs the jobs)"
        ),
    )
    told: list[multiprocessing.process.BaseProcess] = []

    def stop_workers() -> None:
        for process in processes:
            if process.is_alive() and process not in told:
                process.terminate()  # SIGTERM: the worker claims nothing more, finishes its jobs
                told.append(process)

    # uvicorn handles SIGINT/SIGTERM itself (graceful HTTP shutdown), then re-raises the
    # signal it caught; these handlers make that a return, so `serve` waits for its
    # workers below and exits 0. The workers are told at once, not after the HTTP side
    # is done: they started jobs meanwhile.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    try:
        run_server(app_, host, port, settings.log_level.lower(), on_stop=stop_workers)
    finally:
        stop_workers()
        for process in processes:
            process.join(settings.shutdown_grace_seconds + 5)


FILES_BESIDES_CONNECTIONS = 100  # the database, the blobs, the workers' pipes, logs


def _check_open_files(max_connections: int) -> None:
    """Raise the open-file limit as far as allowed for `max_connections`, and warn when
    it is still short: past it, new connections fail unseen instead of getting a 503."""
    import resource

    needed = max_connections + FILES_BESIDES_CONNECTIONS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
    if soft != resource.RLIM_INFINITY and soft < needed:
        err_console.print(
            f"[yellow]warning:[/yellow] max_connections is {max_connections} but the open-file "
            f"limit (ulimit -n) is {soft}: set ENLARGER_MAX_CONNECTIONS to at most "
            f"{max(1, soft - FILES_BESIDES_CONNECTIONS)} or raise the limit"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
