"""What the commands share: consoles, the options every command takes (declared once
here), and the way from options to settings, the database and the application's services.

Commands import what they use inside their bodies, so `enlarger --help` and the light
commands start without loading the image, catalog or web stacks."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy import Engine

    from enlarger.bootstrap import Services
    from enlarger.config import Settings, SettingsError
    from enlarger.queue import Store


class LazyConsole:
    """rich's Console, made at its first use: importing rich costs a fifth of the start of
    a command that prints nothing with it (`--help`)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def made(self) -> Console:
        """The Console itself, for what takes one (a progress display)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.made(), name)


console = LazyConsole()
# messages are not wrapped by rich: a terminal wraps them itself, and a log or a pipe
# keeps a path or a server's message on one line
err_console = LazyConsole(stderr=True, soft_wrap=True)
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


def settings_refused(exc: SettingsError) -> typer.Exit:
    """One line per problem, however long (not wrapped), then exit code 2."""
    from rich.markup import escape

    for line in str(exc).splitlines():
        err_console.print(f"[red]error:[/red] {escape(line)}", soft_wrap=True)
    return typer.Exit(2)


def settings_from(config: Path | None = None, **flags: Any) -> Settings:
    """The settings, or exit code 2 naming what is wrong; a warning on stderr for each
    ENLARGER_ variable that is no setting (a misspelled one would go unnoticed)."""
    from enlarger.config import SettingsError, load_settings, unknown_environment

    try:
        settings = load_settings(flags, config_file=config)
    except SettingsError as exc:
        raise settings_refused(exc) from None
    if unknown := unknown_environment():
        from rich.markup import escape

        for line in unknown:
            err_console.print(f"[yellow]warning:[/yellow] {escape(line)}", soft_wrap=True)
    return settings


def working_settings(config: Path | None = None, **flags: Any) -> Settings:
    """The settings of a process that runs jobs or serves: the product settings read
    only later (themes, a model file) checked too, before anything else is done."""
    from enlarger.catalog.catalog import check_catalog_settings
    from enlarger.config import SettingsError

    settings = settings_from(config, **flags)
    try:
        check_catalog_settings(settings)
    except SettingsError as exc:
        raise settings_refused(exc) from None
    return settings


def engine_for(
    settings: Settings, *, migrate_first: bool = False, pre_ping: bool = False, wait: bool = True
) -> Engine:
    """The database. `migrate_first` upgrades the schema (making a SQLite file if need
    be), waiting for a database that is out unless told not to (`wait`: the long-running
    commands). Otherwise the schema must be current, and a SQLite file is never made."""
    import sqlalchemy as sa

    from enlarger.db import direct, revision
    from enlarger.db.engine import create_db_engine

    url = settings.resolved_database_url
    if not migrate_first and (missing := direct.missing_sqlite_file(url)):
        raise cannot_open(direct.no_database_at(missing))
    engine = create_db_engine(url, pre_ping=pre_ping)
    try:
        if migrate_first:
            from enlarger.db import migrate

            if wait:
                through_outages(settings, lambda: migrate.upgrade(engine))
            else:
                migrate.upgrade(engine)
        elif revision.stored_revision(engine) != revision.head_revision():
            raise not_at_schema()
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        said = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise cannot_open(said) from None
    except Exception as exc:
        # only here: the application's services import the image and catalog stacks,
        # half a second that `jobs list` and the other store commands need not wait
        from enlarger.bootstrap import outage_of

        if (down := outage_of(exc)) is None:
            raise
        raise cannot_open(str(down)) from None
    return engine


def cannot_open(why: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] the database cannot be opened: {why}")
    return typer.Exit(3)


def direct_connection_for(settings: Settings) -> Any:
    """A DB-API connection without SQLAlchemy (`enlarger.db.direct`), for commands that
    only read a few rows, checked like `engine_for`'s. The caller closes it."""
    from enlarger.db import direct, revision

    try:
        connection = direct.connect_directly(settings.resolved_database_url)
    except direct.Unreachable as exc:
        raise cannot_open(str(exc)) from None
    dialect = direct.dialect_of(settings.resolved_database_url)
    if revision.revision_in(connection, dialect) != revision.head_revision():
        connection.close()
        raise not_at_schema()
    return connection


def not_at_schema() -> typer.Exit:
    err_console.print(
        "[red]error:[/red] the database is not at the current schema; run `enlarger db upgrade`"
    )
    return typer.Exit(2)


def store_for(settings: Settings, *, migrate_first: bool = False) -> Store:
    """The job store of the database (see `engine_for`)."""
    from enlarger.queue import store_for_engine

    engine = engine_for(settings, migrate_first=migrate_first)
    return store_for_engine(engine, max_attempts_default=settings.max_attempts_default)


def services_for(settings: Settings, *, migrate_first: bool = False) -> Services:
    """The application's services (`enlarger.bootstrap`) on the database (see
    `engine_for`)."""
    from enlarger.bootstrap import build_services

    return build_services(settings, engine=engine_for(settings, migrate_first=migrate_first))


def open_store(config: Path | None, data_dir: Path | None, database_url: str | None) -> Store:
    """The store of an already migrated database, from the commands' common options."""
    return store_for(settings_from(config, data_dir=data_dir, database_url=database_url))


def through_outages(settings: Settings, attempt: Callable[[], T]) -> T:
    """`attempt()`, tried again while the database or storage is out (saying so once, and
    once when it is back), for up to the outage budget; then its error goes up."""
    from enlarger.bootstrap import outage_of

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


def fmt_time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


JsonLines = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
MaxParallel = Annotated[int | None, typer.Option(help="Job slots per worker.")]
PrioritySlots = Annotated[int | None, typer.Option(help="Slots kept for high priorities.")]
Handlers = Annotated[str | None, typer.Option(help="Handler registry as module:attribute.")]
LogLevel = Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING, ERROR or CRITICAL.")]
LogFormat = Annotated[
    str | None, typer.Option(help="text, or json: one JSON object per line with request ids.")
]
