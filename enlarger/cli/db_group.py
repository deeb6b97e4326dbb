"""`enlarger db`: the database schema's migrations."""

from __future__ import annotations

import typer

from enlarger.cli.shared import ConfigFile, DatabaseUrl, DataDir, console, settings_from

db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(
    revision: str = typer.Argument("head"),
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from enlarger.db import migrate
    from enlarger.db.engine import create_db_engine

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
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
    from enlarger.db import migrate
    from enlarger.db.engine import create_db_engine

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    engine = create_db_engine(settings.resolved_database_url)
    migrate.downgrade(engine, revision)
    console.print(f"database at revision {migrate.current_revision(engine) or 'base'}")


@db_app.command("current")
def db_current(
    data_dir: DataDir = None, database_url: DatabaseUrl = None, config: ConfigFile = None
) -> None:
    """Show the database's revision and the newest one this version knows."""
    from enlarger.db import migrate
    from enlarger.db.engine import create_db_engine

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
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
    from enlarger.db import migrate
    from enlarger.db.engine import create_db_engine

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    engine = create_db_engine(settings.resolved_database_url)
    current = migrate.current_revision(engine)
    for revision, doc in migrate.revisions(engine):
        mark = "  <- the database" if revision == current else ""
        console.print(f"{revision}  {doc}{mark}", highlight=False, soft_wrap=True)
    if current is None:
        console.print("(the database has none yet: base)", highlight=False)
