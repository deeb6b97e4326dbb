"""The photo library's commands: `import`, `backfill`, `sweep` and `maintenance`."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from enlarger import logs
from enlarger.cli.shared import (
    ConfigFile,
    DatabaseUrl,
    DataDir,
    LogLevel,
    MaxParallel,
    console,
    err_console,
    services_for,
    settings_from,
    through_outages,
)
from enlarger.library.tasks import Maintenance

if TYPE_CHECKING:
    from rich.progress import Progress

    from enlarger.library.library import Library


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
    from enlarger.bootstrap import build_worker, outage_of
    from enlarger.library import imports

    flags = {"max_parallel_jobs": max_parallel_jobs, "log_level": log_level or "WARNING"}
    settings = settings_from(config, data_dir=data_dir, database_url=database_url, **flags)
    logs.configure(settings.log_level, settings.log_format)
    services = services_for(settings, migrate_first=True)
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
            if line["skipped"] is None:
                image = Path(line["sidecar_of"])
                line["stored_as"] = imports.sidecar_stored_as(Path(line["path"]), image, standing)
        elif standing is not None:
            with_derivatives = wait and line["skipped"] is None
            line.update(
                imports.report(
                    library, Path(line["path"]), line["image_id"], standing, with_derivatives
                )
            )
        if as_json:
            print(json.dumps(line), flush=True)
    if not as_json:
        for line in _failed_here(lines):
            reason = f"{line['error_code']} {line['error_message'] or ''}".rstrip()
            err_console.print(f"FAILED {line['path']}: {reason}", markup=False, highlight=False)
    err_console.print(_import_summary(lines, wait))


def _taken(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lines of the images this import took (not sidecars, not files skipped)."""
    return [
        line
        for line in lines
        if line["sidecar_of"] is None and line["skipped"] is None and not _is_sidecar(line)
    ]


def _is_sidecar(line: dict[str, Any]) -> bool:
    from enlarger.library.sidecars import is_sidecar

    return is_sidecar(line["path"])


def _failed_here(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The files this import could not take (unreadable, a sidecar of no photo) or that
    FAILED in the library; a sidecar of an image stands as its image does."""
    return [
        line
        for line in lines
        if line["status"] == "FAILED" and line["skipped"] is None and line["sidecar_of"] is None
    ]


def _import_summary(lines: list[dict[str, Any]], wait: bool) -> str:
    """One line: what became of the images, their sidecars, and what was skipped."""
    from enlarger.library import imports

    images = _taken(lines)
    counts = Counter(line["status"] for line in images)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    text = f"imported {len(images)} file(s): {summary or 'nothing'}"
    xmps = [line for line in lines if line["sidecar_of"] is not None and not line["skipped"]]
    if xmps:
        text += f"; {len(xmps)} sidecar(s) with their photos"
    older = sum(1 for line in lines if line["skipped"] == "older")
    if older:
        text += f"; {older} sidecar(s) older than their photos' decisions left out"
    refused = sum(1 for line in _failed_here(lines) if _is_sidecar(line))
    if refused:
        text += f"; {refused} sidecar(s) of no photo refused"
    skipped = [line for line in lines if line["skipped"] is not None and line["sidecar_of"] is None]
    # the same bytes as an image that FAILED are that image: not a photo the project holds
    failed_before = sum(1 for line in skipped if line["status"] == "FAILED")
    if len(skipped) > failed_before:
        in_trash = sum(1 for line in skipped if line["skipped"] == imports.TRASHED)
        text += f"; skipped {len(skipped) - failed_before} already in the project"
        text += f" ({in_trash} of them in its trash)" if in_trash else ""
    if failed_before:
        text += f"; skipped {failed_before} that FAILED before (the same bytes)"
    if not wait and any(line["status"] not in imports.SETTLED for line in images):
        text += "; --wait (or the dashboard) shows how the rest end"
    return text


def _progress() -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("{task.description:<11}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console.made(),
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
    from enlarger.library import imports
    from enlarger.media import MediaError

    task = progress.add_task("importing", total=len(files))
    planned, alone = imports.plan(files)
    ids: list[str] = []
    reported: set[Path] = set()
    for item in planned:
        line = _import_line(item.path)
        ignored: list[Path] = []
        try:
            imported = through_outages(
                library.settings, lambda i=item: imports.import_file(library, i, project)
            )
        except MediaError as exc:
            line.update(error_code=exc.code.value, error_message=exc.message)
        except OSError as exc:
            line.update(error_code="UNREADABLE_FILE", error_message=exc.strerror or str(exc))
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
            basename, stored_as = through_outages(
                library.settings, lambda x=xmp: imports.import_sidecar(library, x, project)
            )
        except (imports.NoPhoto, OSError) as exc:
            line["error_code"] = (
                "SIDECAR_OF_NO_PHOTO" if isinstance(exc, imports.NoPhoto) else "UNREADABLE_FILE"
            )
            line["error_message"] = str(exc)
        else:
            line.update(status="STORED", sidecar_of=basename, stored_as=stored_as)
        lines.append(line)
        progress.advance(task)
    return ids


def _import_line(path: Path) -> dict[str, Any]:
    """One file's line of `import --json` (DESIGN.md's five keys, then the error's words,
    `skipped` and, for a sidecar, the image or photo it went with)."""
    return {
        "path": str(path),
        "image_id": None,
        "status": "FAILED",
        "error_code": None,
        "derivatives": {},
        "error_message": None,
        "skipped": None,
        "sidecar_of": None,
        "stored_as": None,
    }


def _wait_until_settled(library: Library, ids: list[str], progress: Progress) -> None:
    from enlarger.library import imports

    unique = set(ids)
    task = progress.add_task("processing", total=len(unique))
    while True:
        standings = through_outages(library.settings, lambda: imports.standings(library, unique))
        done = sum(1 for s in standings.values() if s.status.value in imports.SETTLED)
        progress.update(task, completed=done)
        if done == len(unique):
            return
        time.sleep(0.2)


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
    uploads go first), and remove the derivatives of sizes taken out of the recipes.
    Running workers do the work."""
    from enlarger.library import processing

    if missing == everything:
        err_console.print("[red]error:[/red] say --missing or --all")
        raise typer.Exit(2)
    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    library = services_for(settings).library
    done = processing.backfill(library, everything=everything)
    console.print(f"queued derivative work for {done.images} image(s)")
    if done.retired:
        console.print(f"removed {done.retired} derivative(s) of sizes no recipe makes any more")


def sweep(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Look over the whole library now, as the daily library_sweep job does (after
    restoring a database from a backup older than the storage): project folders no
    project has become projects again (running workers take their files in), and
    derivatives of images the database does not know, an hour old, are deleted."""
    from enlarger.library import maintenance

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    done = maintenance.sweep_library(services_for(settings).library)
    for folder in done["adopted"]:
        console.print(f"projects/{folder}: a project again; its folder_check is queued")
    console.print(f"deleted the derivatives of {len(done['swept'])} image(s) nobody knows")


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
    from rich.table import Table

    from enlarger import errors
    from enlarger.library import lookups, maintenance

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    library = services_for(settings).library
    try:
        folder = lookups.project_folder(library, project)
        report = maintenance.run(library, task, folder, dry_run=dry_run)
    except errors.NotFound as error:
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
