"""`enlarger tokens`: API tokens for access control."""

from __future__ import annotations

import json
import unicodedata
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from enlarger.cli.shared import (
    ConfigFile,
    DatabaseUrl,
    DataDir,
    JsonLines,
    console,
    direct_connection_for,
    engine_for,
    err_console,
    fmt_time,
    settings_from,
)

if TYPE_CHECKING:
    from enlarger.access.token_records import Token

tokens_app = typer.Typer(help="API tokens (access control).", no_args_is_help=True)


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
    from enlarger.access import tokens

    try:
        chosen = tokens.Role.named(role)
    except ValueError as error:
        err_console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    try:
        checked = tokens.checked_name(name)
    except ValueError as error:
        err_console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    engine = engine_for(settings, migrate_first=True, wait=False)
    record, token = tokens.create(engine, chosen, checked)
    err_console.print(
        f"token {record.id} ({record.name}, {chosen.name.lower()}); it is shown only now:"
    )
    console.print(token)


@tokens_app.command("list")
def tokens_list(
    as_json: JsonLines = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Every token: its id, name, role, first characters, when it was created and last
    used (UTC), and whether it is live or revoked."""
    from enlarger.access.token_records import read_tokens

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    connection = direct_connection_for(settings)
    try:
        listed = read_tokens(connection)
    finally:
        connection.close()
    if as_json:
        for t in listed:
            typer.echo(json.dumps(token_json(t), ensure_ascii=False))
        return
    if not listed:
        err_console.print("no API tokens yet: `enlarger tokens create --role admin` makes one")
        return
    rows = [("ID", "NAME", "ROLE", "STARTS WITH", "CREATED", "LAST USED", "STATE")]
    rows += [
        (
            str(t.id),
            t.name,
            t.role.name.lower(),
            t.prefix + "…",
            fmt_time(t.created_at),
            fmt_time(t.last_used_at),
            f"revoked {fmt_time(t.revoked_at)}" if t.revoked_at else "live",
        )
        for t in listed
    ]
    # plain aligned columns, one token a line, as `docker ps` prints: they read the same
    # in a narrow terminal and through grep, and rich's tables cost 40 ms of the start
    widths = [max(terminal_columns(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (
            cell + " " * (width - terminal_columns(cell))
            for cell, width in zip(row, widths, strict=True)
        )
        typer.echo("  ".join(cells).rstrip())


def terminal_columns(text: str) -> int:
    """How many terminal columns `text` takes: wide characters (CJK, emoji) take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def token_json(token: Token) -> dict[str, Any]:
    def when(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "id": token.id,
        "name": token.name,
        "role": token.role.name.lower(),
        "startsWith": token.prefix,
        "createdAt": when(token.created_at),
        "lastUsedAt": when(token.last_used_at),
        "revokedAt": when(token.revoked_at),
    }


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (see tokens list).")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    config: ConfigFile = None,
) -> None:
    """Revoke a token at once (revoking every token does not open the API again)."""
    from enlarger.access import tokens

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    if not tokens.revoke(engine_for(settings), token_id):
        err_console.print(f"[red]error:[/red] no live token {token_id}")
        raise typer.Exit(2)
    console.print(f"revoked token {token_id}")
