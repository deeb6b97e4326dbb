"""`enlarger products`: the catalog's product image jobs."""

from __future__ import annotations

from typing import Annotated

import typer

from enlarger.cli.shared import (
    ConfigFile,
    DatabaseUrl,
    DataDir,
    console,
    services_for,
    settings_from,
)

products_app = typer.Typer(help="Product image jobs (reference 004).", no_args_is_help=True)


@products_app.command("stats")
def products_stats(
    data_dir: DataDir = None, database_url: DatabaseUrl = None, config: ConfigFile = None
) -> None:
    """Product jobs by status, total cost, mean time to DONE and failure rate."""
    from rich.table import Table

    from enlarger.catalog import product_jobs as product_service

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    totals = product_service.stats(services_for(settings).catalog)
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
    from enlarger.catalog import product_jobs as product_service

    settings = settings_from(config, data_dir=data_dir, database_url=database_url)
    catalog = services_for(settings).catalog
    deleted = product_service.cleanup(catalog, older_than_days)
    console.print(f"deleted {deleted} finished product job(s)")
