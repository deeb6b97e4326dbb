"""Alembic environment: takes the engine handed over by `enlarger.db.migrate`.

On PostgreSQL an advisory lock serialises concurrent migrators (`serve` and several
`worker`s starting at once); on SQLite `BEGIN IMMEDIATE` does the same.
"""

from __future__ import annotations

from alembic import context

from enlarger.db.schema import metadata

MIGRATION_LOCK_ID = 0x656E6C61  # "enla"

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    is_postgres = connection.dialect.name == "postgresql"
    if is_postgres:
        connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_ID})")
        connection.commit()
    try:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if is_postgres:
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})")
            connection.commit()
