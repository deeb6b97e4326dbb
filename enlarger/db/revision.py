"""The schema's revision, read without loading alembic: what a process checks before it
trusts the database (`enlarger tokens list`, `/readyz`, a worker after an outage), at the
cost of one query. `migrate` does the migrating."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy as sa

VERSIONS = Path(__file__).parent / "migrations" / "versions"
REVISION_TABLE_EXISTS = {
    "sqlite": "SELECT count(*) FROM sqlite_master WHERE name = 'alembic_version'",
    "postgresql": "SELECT to_regclass('alembic_version') IS NOT NULL",
}


@functools.cache  # the installed migrations do not change while a process runs
def head_revision() -> str:
    """The newest migration this version has. Revisions are named `NNNN_what` after
    their files and each follows the one numbered before it (a test holds this against
    alembic's own head)."""
    return max(path.stem for path in VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py"))


def revision_in(connection: Any, dialect: str) -> str | None:
    """The revision the database behind a DB-API `connection` was last migrated to; None
    before the first migration."""

    def scalar(sql: str) -> Any:
        cursor = connection.cursor()
        try:
            cursor.execute(sql)
            row = cursor.fetchone()
            return row[0] if row else None
        finally:
            cursor.close()

    return _revision(scalar, dialect)


def stored_revision(engine: sa.Engine) -> str | None:
    """`revision_in` through the engine, whose errors (an outage) callers already know."""
    from enlarger.db.engine import read_connection

    with read_connection(engine) as conn:
        return _revision(lambda sql: conn.exec_driver_sql(sql).scalar(), engine.dialect.name)


def _revision(scalar: Callable[[str], Any], dialect: str) -> str | None:
    if not scalar(REVISION_TABLE_EXISTS[dialect]):
        return None
    return scalar("SELECT version_num FROM alembic_version")
