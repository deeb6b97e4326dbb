"""`enlarger jobs`: inspect and steer the queue's jobs."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from enlarger.cli.shared import (
    ConfigFile,
    DatabaseUrl,
    DataDir,
    JsonLines,
    console,
    err_console,
    fmt_time,
    open_store,
    settings_from,
    store_for,
)

if TYPE_CHECKING:
    from enlarger.queue import Job, Store
    from enlarger.queue.model import Event


jobs_app = typer.Typer(help="Inspect and steer jobs.", no_args_is_help=True)

STATUS_STYLE = {
    "pending": "yellow",
    "running": "cyan",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def _job_dict(job: Job) -> dict[str, Any]:
    data = dict(job.__dict__, status=job.status.value)
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in data.items()}


@jobs_app.command("list")
def jobs_list(
    status: Annotated[
        str | None,
        typer.Option(help="pending, running, completed, failed or cancelled (any case)."),
    ] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="Only this job type.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonLines = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """List jobs, newest first, with counts by type and status."""
    from rich.markup import escape
    from rich.table import Table

    from enlarger.queue import JobStatus

    if status is not None:  # the API and the dashboard write FAILED; the store, failed
        known = [s.value for s in JobStatus]
        if status.lower() not in known:
            wanted = escape(repr(status))
            err_console.print(f"[red]error:[/red] no status {wanted}: one of {', '.join(known)}")
            raise typer.Exit(2)
        status = status.lower()
    store = open_store(config, data_dir, database_url)
    jobs, total = store.list_jobs(status=status, job_type=job_type, limit=limit, offset=offset)
    if as_json:
        for job in jobs:
            print(json.dumps(_job_dict(job)))
        return
    matching = "jobs" if status is None and job_type is None else "matching jobs"
    shown = f"{matching} {offset + 1}-{offset + len(jobs)} of {total}"
    if not jobs:
        shown = f"no {matching}" if total == 0 else f"no {matching} past {offset} of {total}"
    table = Table(title=shown)
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
            fmt_time(job.run_at),
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
    from rich.table import Table

    store = open_store(config, data_dir, database_url)
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
    from enlarger.queue import JobConflict

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
    _steer(open_store(config, data_dir, database_url).retry, job_id)


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: int,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Cancel a pending job, or stop a running one (a CPU job's process is killed)."""
    _steer(open_store(config, data_dir, database_url).cancel, job_id)


@jobs_app.command("pause")
def jobs_pause(
    job_type: str,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Stop workers from starting jobs of JOB_TYPE (running ones finish)."""
    open_store(config, data_dir, database_url).pause(job_type)
    console.print(f"{job_type}: paused")


@jobs_app.command("resume")
def jobs_resume(
    job_type: str,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Let workers start jobs of JOB_TYPE again."""
    open_store(config, data_dir, database_url).resume(job_type)
    console.print(f"{job_type}: resumed")


@jobs_app.command("watch")
def jobs_watch(
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Replay the kept events first.")
    ] = False,
    max_events: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
    as_json: JsonLines = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Follow job state changes live (Ctrl-C to stop)."""
    from enlarger.queue.store import Topic

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    store = store_for(settings)
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
        f"{event.id:>8} {fmt_time(event.created_at)} {event.kind:<9} {job}"
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
    store = open_store(config, data_dir, database_url)
    total = 0
    while moved := store.prune(older_than):
        total += moved
    console.print(f"moved {total} finished job(s) to history")
