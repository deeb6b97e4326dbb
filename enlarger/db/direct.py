"""A DB-API connection made straight from the database URL, without SQLAlchemy.

Importing SQLAlchemy takes 0.2 s, most of what a command that reads a few rows takes,
so `enlarger tokens list` reads through this. Everything else, writes included, goes
through the engine (`engine.py`), which sets up each connection for concurrent use."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

SQLITE_URL = "sqlite:///"
CONNECT_TIMEOUT_S = 10  # a server that does not answer is given up on (unless the URL says)


class Unreachable(Exception):
    """The database could not be opened: a server that is down, a file that is not there."""


def normalize_url(url: str) -> str:
    """Accept the URLs users write (`postgresql://…`) and pick the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def dialect_of(url: str) -> str:
    """`sqlite` or `postgresql`, as SQLAlchemy names the dialect."""
    return normalize_url(url).split(":", 1)[0].split("+", 1)[0]


def connect_directly(url: str) -> Any:
    """A DB-API connection to the database at `url` that already exists (a SQLite file
    is never created here); Unreachable when it cannot be opened."""
    url = normalize_url(url)
    if (path := sqlite_path(url)) is not None:
        if not Path(path).is_file():
            raise Unreachable(no_database_at(path))
        try:
            return sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True, timeout=30)
        except sqlite3.OperationalError as exc:
            raise Unreachable(f"{exc}: {path}") from None
    import psycopg  # only PostgreSQL's users pay for importing it

    timeout = {} if "connect_timeout=" in url else {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), **timeout)
    except psycopg.OperationalError as exc:
        raise Unreachable(str(exc).strip()) from None


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite database URL; None for any other database."""
    if not url.startswith(SQLITE_URL):
        return None
    return url[len(SQLITE_URL) :].split("?", 1)[0]


def missing_sqlite_file(url: str) -> str | None:
    """The path of a SQLite database URL whose file does not exist; None otherwise."""
    path = sqlite_path(url)
    return None if path is None or Path(path).is_file() else path


def no_database_at(path: str) -> str:
    return f"there is no database at {path}; `enlarger db upgrade` makes one"


def stored_time(value: Any) -> datetime | None:
    """A timestamp column's value as read by the driver: SQLite keeps seconds since the
    epoch, PostgreSQL's driver gives a datetime already."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(float(value), UTC)
