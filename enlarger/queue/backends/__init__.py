"""One module per database; `open_store` picks by URL."""

from __future__ import annotations

import sqlalchemy as sa

from enlarger.db.engine import create_db_engine, is_postgres
from enlarger.queue.store import Store


def store_for_engine(engine: sa.Engine, *, max_attempts_default: int = 3) -> Store:
    if is_postgres(engine):
        from enlarger.queue.backends.postgres import PostgresStore

        return PostgresStore(engine, max_attempts_default=max_attempts_default)
    from enlarger.queue.backends.sqlite import SqliteStore

    return SqliteStore(engine, max_attempts_default=max_attempts_default)


def open_store(url: str, *, max_attempts_default: int = 3, pool_size: int = 5) -> Store:
    engine = create_db_engine(url, pool_size=pool_size)
    return store_for_engine(engine, max_attempts_default=max_attempts_default)
