"""Run Alembic programmatically: no alembic.ini to find, the URL comes from Settings."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from enlarger.db.engine import read_connection

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class _NoDialectNotes(logging.Filter):
    """Alembic names the dialect and its DDL mode each time it looks at a database: two
    lines at every `/readyz`. The migrations it runs are still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(("Context impl", "Will assume"))


logging.getLogger("alembic.runtime.migration").addFilter(_NoDialectNotes())


def _config(engine: sa.Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    command.upgrade(_config(engine), revision)


def downgrade(engine: sa.Engine, revision: str) -> None:
    command.downgrade(_config(engine), revision)


def current_revision(engine: sa.Engine) -> str | None:
    with read_connection(engine) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: sa.Engine) -> str | None:
    return ScriptDirectory.from_config(_config(engine)).get_current_head()


def revisions(engine: sa.Engine) -> list[tuple[str, str]]:
    """Every revision this version knows, (id, its docstring's first sentence), newest
    first: the names `enlarger db downgrade` takes."""
    scripts = ScriptDirectory.from_config(_config(engine))
    return [(s.revision, _first_sentence(s.doc or "")) for s in scripts.walk_revisions()]


def _first_sentence(doc: str) -> str:
    text = " ".join(doc.split())
    head, dot, _ = text.partition(". ")
    return head + dot.strip() if dot else text
