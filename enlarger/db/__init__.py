"""Database access: one engine factory for SQLite and PostgreSQL, the schema, migrations."""

from enlarger.db.engine import create_db_engine, is_postgres, normalize_url, read_connection

__all__ = ["create_db_engine", "is_postgres", "normalize_url", "read_connection"]
