"""The `enlarger` command."""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine

from enlarger import logs
from enlarger.access import tokens
from enlarger.bootstrap import Services, build_services, build_worker, outage_of
from enlarger.catalog import service as product_service
from enlarger.catalog.catalog import check_catalog_settings
from enlarger.config import Settings, SettingsError, load_settings
from enlarger.db import create_db_engine, migrate
from enlarger.library import imports, maintenance, service
from enlarger.library.library import Library
from enlarger.library.tasks import Maintenance
from enlarger.media import MediaError
from enlarger.queue import (
    Job,
    JobConflict,
    Store,
    Worker,
    settle_heap,
    store_for_engine,
)
from enlarger.queue.model import Event
from enlarger.queue.store import Topic

app = typer.Typer(help="enlarger: a self-hosted image pipeline.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
jobs_app = typer.Typer(help="Inspect and steer jobs.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(jobs_app, name="jobs")
products_app = typer.Typer(help="Product image jobs (reference 004).", no_args_is_help=True)
app.add_typer(products_app, name="products")
tokens_app = typer.Typer(help="API tokens (access control).", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")
OUTAGE_PAUSE_MAX_S = 15.0  # `import` tries a service that is out again at least this often

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Where the SQLite file and blobs live.")
]
DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="sqlite:///… or postgresql://…")
]
ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="An enlarger.toml to read settings from.")
]


def _settings_refused(exc: SettingsError) -> typer.Exit:
    """One line per problem, however long (not wrapped), then exit code 2."""
    for line in str(exc).splitlines():
        err_console.print(f"[red]error:[/red] {escape(line)}", soft_wrap=True)
    return typer.Exit(2)


def _settings(config: Path | None = None, **flags: Any) -> Settings:
    try:
        return load_settings(flags, config_file=config)
    except SettingsError as exc:
        raise _settings_refused(exc) from None


def _working_settings(config: Path | None = None, **flags: Any) -> Settings:
    """The settings of a process that runs jobs or serves: the product settings read
    only later (themes, a model file) checked too, before anything else is done."""
    settings = _settings(config, **flags)
    try:
        check_catalog_settings(settings)
    except SettingsError as exc:
        raise _settings_refused(exc) from None
    return settings


def _engine(settings: Settings, *, migrate_first: bool = False, pre_ping: bool = False) -> Engine:
    """The database; `migrate_first` (the long-running commands) upgrades the schema,
    waiting for a database that is out when they start."""
    engine = create_db_engine(settings.resolved_database_url, pre_ping=pre_ping)
    if migrate_first:
        try:
            _through_outages(settings, lambda: migrate.upgrade(engine))
        except Exception as exc:
            if outage_of(exc) is None:
                raise
            err_console.print(f"[red]error:[/red] the database is unreachable: {exc}")
            raise typer.Exit(3) from None
    elif migrate.current_revision(engine) != migrate.head_revision(engine):
        err_console.print(
            "[red]error:[/red] the database is not at the current schema; run `enlarger db upgrade`"
        )
        raise typer.Exit(2)
    return engine


def _store(settings: Settings, *, migrate_first: bool = False) -> Store:
    """The job store of the database (see `_engine`)."""
    engine = _engine(settings, migrate_first=migrate_first)
    return store_for_engine(engine, max_attempts_default=settings.max_attempts_default)


def _services(settings: Settings, *, migrate_first: bool = False) -> Services:
    """The application's services (`enlarger.bootstrap`) on the database (see `_engine`)."""
    return build_services(settings, engine=_engine(settings, migrate_first=migrate_first))


def _open_store(config: Path | None, data_dir: Path | None, database_url: str | None) -> Store:
    """The store of an already migrated database, from the commands' common options."""
    return _store(_settings(config, data_dir=data_dir, database_url=database_url))


# ---- db -----------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(
    revision: str = typer.Argument("head"),
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    engine = create_db_engine(settings.resolved_database_url)
    migrate.upgrade(engine, revision)
    console.print(f"database at revision {migrate.current_revision(engine)}")


@db_app.command("downgrade")
def db_downgrade(
    revision: str = typer.Argument(..., help="Target revision, or 'base' to remove everything."),
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Revert migrations down to REVISION."""
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    engine = create_db_engine(settings.resolved_database_url)
    migrate.downgrade(engine, revision)
    console.print(f"database at revision {migrate.current_revision(engine) or 'base'}")


@db_app.command("current")
def db_current(
    data_dir: DataDir = None, database_url: DatabaseUrl = None, config: ConfigFile = None
) -> None:
    """Show the database's revision and the newest one this version knows."""
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    engine = create_db_engine(settings.resolved_database_url)
    console.print(
        f"current: {migrate.current_revision(engine) or 'base'}  "
        f"head: {migrate.head_revision(engine)}"
    )


@db_app.command("history")
def db_history(
    data_dir: DataDir = None, database_url: DatabaseUrl = None, config: ConfigFile = None
) -> None:
    """List the revisions this version knows, newest first, the database's marked: the
    names `enlarger db downgrade` takes."""
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    engine = create_db_engine(settings.resolved_database_url)
    current = migrate.current_revision(engine)
    for revision, doc in migrate.revisions(engine):
        mark = "  <- the database" if revision == current else ""
        console.print(f"{revision}  {doc}{mark}", highlight=False, soft_wrap=True)
    if current is None:
        console.print("(the database has none yet: base)", highlight=False)


# ---- worker and serve -----------------------------------------------------------------


def _notice(settings: Settings, markup: str, level: int = logging.INFO) -> None:
    """A line for the operator: on stderr, or with JSON logs one log record like any
    other (a collector reading the log takes one JSON object a line)."""
    if settings.log_format == "json":
        logging.getLogger("enlarger.serve").log(level, Text.from_markup(markup).plain)
    else:
        err_console.print(markup)


def run_worker(settings: Settings) -> Worker:
    """Migrate, then run one worker in this process until SIGTERM or SIGINT."""
    logs.configure(settings.log_level, settings.log_format)
    worker = build_worker(_services(settings, migrate_first=True))

    def on_signal(signum: int, _frame: Any) -> None:
        logging.getLogger(__name__).info("signal %s: finishing running jobs", signum)
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
    run_worker(settings)


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


MaxParallel = Annotated[int | None, typer.Option(help="Job slots per worker.")]
PrioritySlots = Annotated[int | None, typer.Option(help="Slots kept for high priorities.")]
Handlers = Annotated[str | None, typer.Option(help="Handler registry as module:attribute.")]
LogLevel = Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")]
LogFormat = Annotated[
    str | None, typer.Option(help="text, or json: one JSON object per line with request ids.")
]


@app.command()
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
    run_worker(_working_settings(config, data_dir=data_dir, database_url=database_url, **flags))


@app.command()
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
    from enlarger.api.app import create_app, run_server

    flags = _worker_flags(max_parallel_jobs, priority_lane_slots, handlers, log_level, log_format)
    settings = _working_settings(config, data_dir=data_dir, database_url=database_url, **flags)
    logs.configure(settings.log_level, settings.log_format)
    engine = _engine(settings, migrate_first=True, pre_ping=True)
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
        process.start()
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
    # uvicorn handles SIGINT/SIGTERM itself (graceful HTTP shutdown), then re-raises the
    # signal it caught; these handlers make that a return, so the workers below are
    # stopped in turn and `serve` exits 0.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    try:
        run_server(app_, host, port, settings.log_level.lower())
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker finishes its running jobs
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


# ---- access tokens -----------------------------------------------------------------------


@tokens_app.command("create")
def tokens_create(
    role: Annotated[str, typer.Option("--role", help="viewer, uploader or admin.")],
    name: Annotated[str, typer.Option("--name", help="Who or what the token is for.")] = "",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Create an API token and print it once (only its hash is kept). The first token
    turns access control on."""
    try:
        chosen = tokens.Role.named(role)
    except ValueError as error:
        err_console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    record, token = tokens.create(_store(settings, migrate_first=True).engine, chosen, name)
    err_console.print(
        f"token {record.id} ({record.name}, {chosen.name.lower()}); it is shown only now:"
    )
    console.print(token)


@tokens_app.command("list")
def tokens_list(
    data_dir: DataDir = None, database_url: DatabaseUrl = None, config: ConfigFile = None
) -> None:
    """Every token: its id, name, role, first characters and state."""
    engine = _open_store(config, data_dir, database_url).engine
    table = Table(title="API tokens")
    for column in ("id", "name", "role", "starts with", "created", "last used", "state"):
        table.add_column(column)
    for t in tokens.list_tokens(engine):
        state = f"revoked {_fmt_time(t.revoked_at)}" if t.revoked_at else "live"
        table.add_row(
            str(t.id),
            t.name,
            t.role.name.lower(),
            t.prefix + "…",
            _fmt_time(t.created_at),
            _fmt_time(t.last_used_at),
            state,
        )
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (see tokens list).")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Revoke a token at once (revoking every token does not open the API again)."""
    if not tokens.revoke(_open_store(config, data_dir, database_url).engine, token_id):
        err_console.print(f"[red]error:[/red] no live token {token_id}")
        raise typer.Exit(2)
    console.print(f"revoked token {token_id}")


# ---- import ---------------------------------------------------------------------------


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (recursively).")],
    project: Annotated[
        str | None,
        typer.Option(
            help="Project (its name, folder or title) to add to; a new name makes a new "
            "one (default: 'default')."
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Return when every file is STORED or FAILED.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per file on stdout, nothing else.")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
    max_parallel_jobs: MaxParallel = None,
    log_level: LogLevel = None,
) -> None:
    """Ingest files and folders into the library, with a progress bar.

    Files are copied, never moved; an .xmp sidecar goes with the image it describes. A
    file whose bytes the project holds or has in its trash is skipped. With --wait a
    worker runs in this process too (next to any others), so the command also works when
    nothing else is running. Exits 0 when every file was handled, even if some FAILED.
    """
    flags = {"max_parallel_jobs": max_parallel_jobs, "log_level": log_level or "WARNING"}
    settings = _settings(config, data_dir=data_dir, database_url=database_url, **flags)
    logs.configure(settings.log_level, settings.log_format)
    services = _services(settings, migrate_first=True)
    try:
        files = imports.discover(paths)
    except FileNotFoundError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    library = services.library
    worker = build_worker(services) if wait else None
    if worker is not None:
        worker.start()
    lines: list[dict[str, Any]] = []
    try:
        with _progress() as progress:
            ids = _import_all(library, files, project, lines, progress)
            if worker is not None:
                _wait_until_settled(library, ids, progress)
    except KeyboardInterrupt:
        err_console.print("interrupted: imported files stay queued and will be processed")
        raise typer.Exit(130) from None
    except Exception as exc:
        down = outage_of(exc)
        if down is None:
            raise
        err_console.print(
            f"[red]error:[/red] the {down.service} stayed unreachable for "
            f"{settings.outage_budget_seconds:.0f} s: stopped. What was imported stays; "
            "run the import again to bring the rest (it skips what is there)"
        )
        raise typer.Exit(3) from None
    finally:
        if worker is not None:
            worker.stop(timeout=settings.shutdown_grace_seconds)
    standings = imports.standings(library, [line["image_id"] for line in lines if line["image_id"]])
    for line in lines:
        standing = standings.get(line["image_id"]) if line["image_id"] else None
        if standing is not None and line["sidecar_of"]:
            line["status"] = standing.status.value  # a sidecar stands as its image does
        elif standing is not None:
            with_derivatives = wait and line["skipped"] is None
            line.update(
                imports.report(
                    library, Path(line["path"]), line["image_id"], standing, with_derivatives
                )
            )
        if as_json:
            print(json.dumps(line), flush=True)
    err_console.print(_import_summary(lines))


def _import_summary(lines: list[dict[str, Any]]) -> str:
    """One line: what became of the images, their sidecars, and what was skipped."""
    images = [line for line in lines if line["sidecar_of"] is None and line["skipped"] is None]
    counts = Counter(line["status"] for line in images)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    text = f"imported {len(images)} file(s): {summary or 'nothing'}"
    xmps = [line for line in lines if line["sidecar_of"] is not None and not line["skipped"]]
    if xmps:
        text += f"; {len(xmps)} sidecar(s) with their photos"
    older = sum(1 for line in lines if line["skipped"] == "older")
    if older:
        text += f"; {older} sidecar(s) older than their photos' decisions left out"
    skipped = Counter(
        line["skipped"]
        for line in lines
        if line["skipped"] is not None and line["sidecar_of"] is None
    )
    if skipped:
        in_trash = skipped[imports.TRASHED]
        text += f"; skipped {sum(skipped.values())} already in the project"
        text += f" ({in_trash} of them in its trash)" if in_trash else ""
    return text


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<11}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    )


def _import_all(
    library: Library,
    files: list[Path],
    project: str | None,
    lines: list[dict[str, Any]],
    progress: Progress,
) -> list[str]:
    """Ingest each image with its sidecars, then the sidecars of no image of the import;
    a file that cannot be read fails alone with a code."""
    task = progress.add_task("importing", total=len(files))
    planned, alone = imports.plan(files)
    ids: list[str] = []
    reported: set[Path] = set()
    for item in planned:
        line = _import_line(item.path)
        ignored: list[Path] = []
        try:
            imported = _through_outages(
                library.settings, lambda i=item: imports.import_file(library, i, project)
            )
        except MediaError as exc:
            line["error_code"] = exc.code.value
            err_console.print(f"{item.path}: {exc.message}")
        except OSError as exc:
            line["error_code"] = "UNREADABLE_FILE"
            err_console.print(f"{item.path}: {exc.strerror or exc}")
        else:
            line.update(image_id=imported.image_id, skipped=imported.skipped)
            ignored = imported.ignored
            if imported.skipped != imports.TRASHED:
                ids.append(imported.image_id)
        lines.append(line)
        new = [xmp for xmp in item.sidecars if xmp not in reported]  # IMG_1.xmp: JPG and RAW
        for xmp in new:
            reported.add(xmp)
            with_image = {"image_id": line["image_id"], "sidecar_of": str(item.path)}
            why = "older" if line["skipped"] == imports.HELD else line["skipped"]
            lines.append(
                _import_line(xmp) | with_image | ({"skipped": why} if xmp in ignored else {})
            )
        progress.advance(task, 1 + len(new))
    for xmp in alone:
        line = _import_line(xmp)
        try:
            basename = _through_outages(
                library.settings, lambda x=xmp: imports.import_sidecar(library, x, project)
            )
        except (imports.NoPhoto, OSError) as exc:
            line["error_code"] = (
                "SIDECAR_OF_NO_PHOTO" if isinstance(exc, imports.NoPhoto) else "UNREADABLE_FILE"
            )
            err_console.print(f"{xmp}: {exc}")
        else:
            line.update(status="STORED", sidecar_of=basename)
        lines.append(line)
        progress.advance(task)
    return ids


def _import_line(path: Path) -> dict[str, Any]:
    """One file's line of `import --json` (DESIGN.md's five keys, then `skipped` and, for
    a sidecar, the image or photo it went with)."""
    return {
        "path": str(path),
        "image_id": None,
        "status": "FAILED",
        "error_code": None,
        "derivatives": {},
        "skipped": None,
        "sidecar_of": None,
        "stored_as": None,
    }


def _through_outages(settings: Settings, attempt: Callable[[], T]) -> T:
    """`attempt()`, tried again while the database or storage is out (saying so once, and
    once when it is back), for up to the outage budget; then its error goes up."""
    started = time.monotonic()
    deadline = started + settings.outage_budget_seconds
    pause, waiting = 1.0, None
    while True:
        try:
            result = attempt()
        except Exception as exc:
            down = outage_of(exc)
            if down is None or time.monotonic() + pause > deadline:
                raise
            if waiting is None:
                waiting = down.service
                state = "unreachable" if down.is_outage else "busy"
                err_console.print(
                    f"[yellow]{time.strftime('%H:%M:%S')} the {waiting} is {state}; waiting "
                    f"for it (up to {settings.outage_budget_seconds:.0f} s)"
                )
            time.sleep(pause)
            pause = min(2 * pause, OUTAGE_PAUSE_MAX_S)
            continue
        if waiting is not None:
            waited = time.monotonic() - started
            err_console.print(
                f"{time.strftime('%H:%M:%S')} the {waiting} is back after {waited:.0f} s; going on"
            )
        return result


def _wait_until_settled(library: Library, ids: list[str], progress: Progress) -> None:
    unique = set(ids)
    task = progress.add_task("processing", total=len(unique))
    while True:
        standings = _through_outages(library.settings, lambda: imports.standings(library, unique))
        done = sum(1 for s in standings.values() if s.status.value in imports.SETTLED)
        progress.update(task, completed=done)
        if done == len(unique):
            return
        time.sleep(0.2)


@app.command()
def backfill(
    missing: Annotated[
        bool, typer.Option("--missing", help="Only images lacking a current derivative.")
    ] = False,
    everything: Annotated[
        bool, typer.Option("--all", help="Every image, current derivatives included.")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Queue derivative work for images made before a recipe change (low priority: new
    uploads go first). Running workers do the work."""
    if missing == everything:
        err_console.print("[red]error:[/red] say --missing or --all")
        raise typer.Exit(2)
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    library = _services(settings).library
    done = service.backfill(library, everything=everything)
    console.print(f"queued derivative work for {done.images} image(s)")


@app.command()
def sweep(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Look over the whole library now, as the daily library_sweep job does (after
    restoring a database from a backup older than the storage): project folders no
    project has become projects again (running workers take their files in), and
    derivatives of images the database does not know, an hour old, are deleted."""
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    done = maintenance.sweep_library(_services(settings).library)
    for folder in done["adopted"]:
        console.print(f"projects/{folder}: a project again; its folder_check is queued")
    console.print(f"deleted the derivatives of {len(done['swept'])} image(s) nobody knows")


@app.command("maintenance")
def maintenance_(
    task: Annotated[Maintenance, typer.Argument(help="The task to run on the project.")],
    project: Annotated[
        str, typer.Option("--project", help="The project (its folder, name or title).")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only report what the task would change.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The report as one JSON line.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Run a project maintenance task now, in this process (the schedules run them in the
    workers): trash_maintenance, manifest_check, folder_check or manifest_cleaning."""
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    library = _services(settings).library
    try:
        folder = service.project_folder(library, project)
        report = maintenance.run(library, task, folder, dry_run=dry_run)
    except service.NotFound as error:
        err_console.print(f"[red]error:[/red] {error.args[0]}")
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(report.as_dict()))  # one line, as the help says (and jq expects)
        return
    table = Table(
        title=f"{task.value} on {project}" + (" (dry run: nothing changed)" if dry_run else "")
    )
    for column in ("action", "file", "reason"):
        table.add_column(column)
    for change in report.changes:
        table.add_row(change.action, change.name, change.reason)
    console.print(table if report.changes else "nothing to change")
    for job_id in report.jobs:
        console.print(f"queued job {job_id} to process what was taken in")
    if report.settling:
        again = f"; job {report.recheck} looks again in a few seconds" if report.recheck else ""
        console.print(
            f"{len(report.settling)} file(s) still being written, left for now: "
            + ", ".join(report.settling)
            + again
        )


# ---- product jobs -------------------------------------------------------------------------


@products_app.command("stats")
def products_stats(
    data_dir: DataDir = None, database_url: DatabaseUrl = None, config: ConfigFile = None
) -> None:
    """Product jobs by status, total cost, mean time to DONE and failure rate."""
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    totals = product_service.stats(_services(settings).catalog)
    table = Table(title=f"{totals['total']} product job(s)")
    table.add_column("status")
    table.add_column("jobs", justify="right")
    for status, count in totals["byStatus"].items():
        table.add_row(status, str(count))
    console.print(table)
    console.print(
        f"total cost ${totals['totalCostUsd']}, mean time to DONE "
        f"{totals['avgDurationS'] if totals['avgDurationS'] is not None else '-'} s, "
        f"failure rate {totals['failureRate']:.1%}"
    )


@products_app.command("cleanup")
def products_cleanup(
    older_than_days: Annotated[
        float, typer.Option("--older-than-days", min=0, help="Finished at least this long ago.")
    ],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Delete DONE and FAILED product jobs finished more than N days ago, with their
    artifacts (published copies stay)."""
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    catalog = _services(settings).catalog
    deleted = product_service.cleanup(catalog, older_than_days)
    console.print(f"deleted {deleted} finished product job(s)")


# ---- jobs -----------------------------------------------------------------------------

STATUS_STYLE = {
    "pending": "yellow",
    "running": "cyan",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def _fmt_time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _job_dict(job: Job) -> dict[str, Any]:
    data = dict(job.__dict__, status=job.status.value)
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in data.items()}


@jobs_app.command("list")
def jobs_list(
    status: Annotated[str | None, typer.Option(help="pending, running, completed…")] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="Only this job type.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """List jobs, newest first, with counts by type and status."""
    store = _open_store(config, data_dir, database_url)
    jobs, total = store.list_jobs(status=status, job_type=job_type, limit=limit, offset=offset)
    if as_json:
        for job in jobs:
            print(json.dumps(_job_dict(job)))
        return
    table = Table(title=f"jobs {offset + 1}-{offset + len(jobs)} of {total}")
    for column in ("id", "type", "status", "prio", "attempts", "run at", "error"):
        table.add_column(column)
    for job in jobs:
        style = STATUS_STYLE.get(job.status.value, "")
        table.add_row(
            str(job.id),
            job.type,
            f"[{style}]{job.status.value}[/{style}]",
            str(job.priority),
            f"{job.attempts}/{job.max_attempts}",
            _fmt_time(job.run_at),
            (job.error_code or "") + (f": {job.last_error[:60]}" if job.last_error else ""),
        )
    console.print(table)
    counts = store.counts()
    if counts:
        summary = Table(title="all jobs by type and status (history included)")
        statuses = sorted({status for _, status in counts})
        summary.add_column("type")
        for name in statuses:
            summary.add_column(name, justify="right")
        for job_type_name in sorted({t for t, _ in counts}):
            cells = [str(counts.get((job_type_name, s), 0)) for s in statuses]
            summary.add_row(job_type_name, *cells)
        console.print(summary)


def _load_job(store: Store, job_id: int) -> Job:
    job = store.get_job(job_id)
    if job is None:
        err_console.print(f"[red]error:[/red] no job {job_id}")
        raise typer.Exit(1)
    return job


@jobs_app.command("show")
def jobs_show(
    job_id: int,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Show one job: state, attempts, lease, error, payload, items."""
    store = _open_store(config, data_dir, database_url)
    job = _load_job(store, job_id)
    data = _job_dict(job)
    if as_json:
        print(json.dumps(data))
        return
    table = Table(
        title=f"job {job_id}" + (" (archived)" if job.archived else ""), show_header=False
    )
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in data.items():
        if value is not None and value != "":
            table.add_row(key, json.dumps(value) if isinstance(value, dict | list) else str(value))
    console.print(table)
    items = store.list_items(job_id)
    if items:
        item_table = Table(title="items")
        for column in ("key", "status", "error"):
            item_table.add_column(column)
        for item in items:
            item_table.add_row(item.key, item.status.value, item.error or "")
        console.print(item_table)


def _steer(action: Callable[[int], Job], job_id: int) -> None:
    """Run `store.retry` or `store.cancel` and say what became of the job."""
    try:
        job = action(job_id)
    except KeyError:
        err_console.print(f"[red]error:[/red] no job {job_id}")
        raise typer.Exit(1) from None
    except JobConflict as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    note = " (cancel requested; its worker stops it)" if job.cancel_requested else ""
    console.print(f"job {job_id}: {job.status.value}{note}")


@jobs_app.command("retry")
def jobs_retry(
    job_id: int,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Run a failed or cancelled job again with fresh attempts."""
    _steer(_open_store(config, data_dir, database_url).retry, job_id)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: int,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Cancel a pending job, or stop a running one (a CPU job's process is killed)."""
    _steer(_open_store(config, data_dir, database_url).cancel, job_id)


@jobs_app.command("pause")
def jobs_pause(
    job_type: str,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Stop workers from starting jobs of JOB_TYPE (running ones finish)."""
    _open_store(config, data_dir, database_url).pause(job_type)
    console.print(f"{job_type}: paused")


@jobs_app.command("resume")
def jobs_resume(
    job_type: str,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Let workers start jobs of JOB_TYPE again."""
    _open_store(config, data_dir, database_url).resume(job_type)
    console.print(f"{job_type}: resumed")


@jobs_app.command("watch")
def jobs_watch(
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Replay the kept events first.")
    ] = False,
    max_events: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Follow job state changes live (Ctrl-C to stop)."""
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    store = _store(settings)
    news = threading.Event()
    listener = store.listen(news.set, settings.poll_interval_ms / 1000, Topic.EVENTS)
    cursor = 0 if from_start else store.last_event_id()
    shown = 0
    try:
        while max_events is None or shown < max_events:
            events = store.read_events(after_id=cursor)
            for event in events[: None if max_events is None else max_events - shown]:
                _print_event(event, as_json)
                shown += 1
            if events:
                cursor = events[-1].id
            else:
                news.wait(1.0)
                news.clear()
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()


def _print_event(event: Event, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps({**event.__dict__, "created_at": event.created_at.isoformat()}), flush=True
        )
        return
    job = f"job {event.job_id} " if event.job_id is not None else ""
    detail = "" if event.data is None else f" {json.dumps(event.data)}"
    style = STATUS_STYLE.get(event.status or "", "")
    status = f"[{style}]{event.status}[/{style}]" if style else (event.status or "")
    console.print(
        f"{event.id:>8} {_fmt_time(event.created_at)} {event.kind:<9} {job}"
        f"({event.job_type or '-'}) {status}{detail}"
    )


@jobs_app.command("prune")
def jobs_prune(
    older_than: Annotated[float, typer.Option(help="Seconds since the job finished.")] = 3600.0,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Move finished jobs into history now (workers also do this on their own)."""
    store = _open_store(config, data_dir, database_url)
    total = 0
    while moved := store.prune(older_than):
        total += moved
    console.print(f"moved {total} finished job(s) to history")


if __name__ == "__main__":
    app()
