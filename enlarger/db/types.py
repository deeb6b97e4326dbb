"""Column types that behave the same on SQLite and PostgreSQL.

Timestamps are `timestamptz` on PostgreSQL and epoch seconds (REAL) on SQLite, where
numeric comparison is fast and exact; both come back to Python as aware UTC datetimes.
`db_now()` is the database's own clock, so leases compare against one clock even when
workers run on many hosts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import TypeDecorator

from enlarger.db.direct import stored_time

SQLITE_EPOCH_NOW = "((julianday('now') - 2440587.5) * 86400.0)"


class Timestamp(TypeDecorator[datetime]):
    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Float())
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return value.timestamp() if isinstance(value, datetime) else float(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        return stored_time(value)


Json = sa.JSON().with_variant(JSONB(), "postgresql")
# None stored as SQL NULL rather than JSON null: read back as None all the same, but a
# claim has nothing to decode for the many jobs without a payload
NullableJson = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class db_now(FunctionElement[datetime]):
    """The database clock, optionally shifted by a number of seconds (a bind or a column)."""

    type = Timestamp()
    inherit_cache = True


@compiles(db_now, "postgresql")
def _pg_now(element: db_now, compiler: Any, **kw: Any) -> str:
    if not element.clauses.clauses:
        return "now()"
    return f"(now() + make_interval(secs => {compiler.process(element.clauses, **kw)}))"


@compiles(db_now, "sqlite")
def _sqlite_now(element: db_now, compiler: Any, **kw: Any) -> str:
    if not element.clauses.clauses:
        return SQLITE_EPOCH_NOW
    return f"({SQLITE_EPOCH_NOW} + {compiler.process(element.clauses, **kw)})"


class db_seconds_between(FunctionElement[float]):
    """Seconds from the first timestamp to the second (`end - start`), as a number."""

    type = sa.Float()
    inherit_cache = True


@compiles(db_seconds_between, "postgresql")
def _pg_seconds_between(element: db_seconds_between, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXTRACT(EPOCH FROM ({end} - {start}))"


@compiles(db_seconds_between, "sqlite")
def _sqlite_seconds_between(element: db_seconds_between, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in element.clauses)
    return f"({end} - {start})"
