"""The schema's revision, read without loading alembic: what a process checks before it
trusts the database (`enlarger tokens list`, `/readyz`, a worker after an outage), at the
cost of one query. `migrate` does the migrating."""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa

from enlarger.db.engine import read_connection

VERSIONS = Path(__file__).parent / "migrations" / "versions"


@functools.cache  # the installed migrations do not change while a process runs
def head_revision() -> str:
    """The newest migration this version has. Revisions are named `NNNN_what` after
    their files and each follows the one numbered before it (a test holds this against
    alembic's own head)."""
    return max(path.stem for path in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))


def stored_revision(engine: sa.Engine) -> str | None:
    """The revision the database was last migrated to; None before the first migration."""
    with read_connection(engine) as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
