"""Engine factory. SQLite gets WAL, full fsync and `BEGIN IMMEDIATE` for every transaction
that may write (so two processes never deadlock upgrading a read lock), `BEGIN DEFERRED`
for `read_connection`; PostgreSQL goes through psycopg 3."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from enlarger.db.direct import CONNECT_TIMEOUT_S, normalize_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
# how long a writer waiting for SQLite's write lock sleeps between tries, at first and at
# most: SQLite's own busy handler sleeps 1, 2, 5, 10… 100 ms and so kept a waiter asleep
# long after the lock was free (p90 8.6 ms, p99 19 ms for each enqueue at 200 jobs/s)
WRITE_LOCK_PAUSE_S = (0.0002, 0.002)
SQLITE_BEGIN_OPTION = "sqlite_begin"
# A session that waits on a lock, or holds a transaction open while doing nothing, is cut
# off after seconds: a paused or partitioned process then costs the others that long, not
# the cluster (no lock is held across slow work, so neither fires in normal running).
POSTGRES_LOCK_TIMEOUT_MS = 10_000
POSTGRES_IDLE_IN_TRANSACTION_MS = 60_000
HELD_BRIEFLY_MS = 5_000
POSTGRES_SESSION_OPTIONS = (
    f"-c lock_timeout={POSTGRES_LOCK_TIMEOUT_MS} "
    f"-c idle_in_transaction_session_timeout={POSTGRES_IDLE_IN_TRANSACTION_MS}"
)
# And on the client's side, a server it cannot reach (a partition sends no reset, so a
# query would wait for ever) is given up on: a connection attempt after 10 s, a query
# whose bytes go unacknowledged for 30 s, an idle connection that fails three keepalives.
# Options the database URL names itself win.
POSTGRES_NETWORK_OPTIONS: dict[str, int] = {
    "connect_timeout": CONNECT_TIMEOUT_S,
    "tcp_user_timeout": 30_000,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def read_connection(engine: sa.Engine) -> sa.Connection:
    """A connection for reads only: on SQLite it begins DEFERRED, so it never waits for
    (or blocks) the single writer; elsewhere it is a plain connection."""
    return engine.connect().execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})


def hold_briefly(conn: sa.Connection) -> None:
    """On PostgreSQL, end this transaction if it sits idle for 5 s (its process paused or
    cut off): for transactions that take a lock many others wait on and do nothing slow
    while they hold it, so a frozen holder costs seconds, not the whole idle timeout."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL idle_in_transaction_session_timeout = {HELD_BRIEFLY_MS}")


def is_postgres(engine_or_url: sa.Engine | str) -> bool:
    url = engine_or_url if isinstance(engine_or_url, str) else str(engine_or_url.url)
    return normalize_url(url).startswith("postgresql")


def _configure_sqlite(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
        if mode == "IMMEDIATE":
            _begin_writing(connection)
        else:
            connection.exec_driver_sql(f"BEGIN {mode}")


def _begin_writing(connection: sa.Connection) -> None:
    """BEGIN IMMEDIATE, trying again every fraction of a millisecond while another
    connection writes (up to SQLITE_BUSY_TIMEOUT_MS), instead of in SQLite's own sleeps.
    The tries go to the driver itself: SQLAlchemy's wrapping of each refusal cost ~0.2 ms
    of CPU, 15 ms per upload while the API and a worker took turns. The last try goes
    through SQLAlchemy, so an error stays the one callers tell "database is locked" by."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause, longest = WRITE_LOCK_PAUSE_S
    driver = connection.connection.driver_connection
    assert driver is not None  # a connection being begun is checked out
    driver.execute("PRAGMA busy_timeout = 0")
    try:
        while time.monotonic() < deadline:
            try:
                driver.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    break
            time.sleep(pause)
            pause = min(pause * 2, longest)
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        driver.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")


def create_db_engine(url: str, *, pool_size: int = 5, pre_ping: bool = False) -> sa.Engine:
    """An engine for `url`; with `pre_ping` (the API's), a PostgreSQL connection is
    checked before each use, so the first request after a server restart finds a new
    one instead of answering 503 on the dead one."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            poolclass=sa.pool.QueuePool,
            pool_size=pool_size,
            max_overflow=10,
        )
        _configure_sqlite(engine)
        return engine
    # workers take no pre-ping: it costs a round trip per transaction; a connection found
    # dead is invalidated on its error and the worker retries the exchange
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=10,
        pool_pre_ping=pre_ping,
        connect_args={"options": POSTGRES_SESSION_OPTIONS} | network_options(url),
    )


def network_options(url: str) -> dict[str, int]:
    """POSTGRES_NETWORK_OPTIONS but those `url` names itself."""
    named = sa.engine.make_url(url).query
    return {key: value for key, value in POSTGRES_NETWORK_OPTIONS.items() if key not in named}
