"""The `enlarger` command: one module per command group, the options and helpers they
share in `shared`. Each command imports what it uses when it runs, so `enlarger --help`
and the light commands start at once."""

from __future__ import annotations

import typer

from enlarger.cli import db_group, jobs_group, photo_commands, products_group, serving, tokens_group

app = typer.Typer(
    help="enlarger: a self-hosted image pipeline.",
    no_args_is_help=True,
    # plain help (click's): rich's boxes took 0.24 s of every `--help`, twice the command's
    # start
    rich_markup_mode=None,
)
app.command()(serving.worker)
app.command()(serving.serve)
app.command("import")(photo_commands.import_)
app.command()(photo_commands.backfill)
app.command()(photo_commands.sweep)
app.command("maintenance")(photo_commands.maintenance_)
app.add_typer(db_group.db_app, name="db")
app.add_typer(jobs_group.jobs_app, name="jobs")
app.add_typer(products_group.products_app, name="products")
app.add_typer(tokens_group.tokens_app, name="tokens")
