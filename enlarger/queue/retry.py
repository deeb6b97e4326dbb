"""Retry backoff: base · 2^(attempt-1) (2 s, 4 s, 8 s… by default), capped, with jitter so a
burst of failures does not come back as a burst. And which failures are a dependency's
outage rather than the job's fault: those wait, their attempts not spent, with a delay
that grows with the time already waited."""

from __future__ import annotations

import random
from dataclasses import dataclass

import sqlalchemy as sa

from enlarger.queue.model import DependencyDown, ErrorCode


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 2.0
    cap_s: float = 600.0
    jitter: float = 0.2
    # a wait for a service to come back is never longer: it is seen back within seconds
    outage_cap_s: float = 10.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        nominal = min(self.cap_s, self.base_s * 2 ** max(0, attempt - 1))
        return self._spread(nominal, self.cap_s, rng)

    def outage_delay(self, waited_s: float, rng: random.Random | None = None) -> float:
        """Seconds before trying again on a service that has been out for `waited_s`:
        as long as it has been out (the tries double their spacing), at least `base_s`, so
        a blip costs little, and at most `outage_cap_s`, so its return is seen soon."""
        nominal = min(self.outage_cap_s, max(self.base_s, waited_s))
        return self._spread(nominal, self.outage_cap_s, rng)

    def _spread(self, nominal: float, cap: float, rng: random.Random | None) -> float:
        spread = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return min(cap, nominal * spread)


# PostgreSQL's lock_not_available (lock_timeout) and query_canceled (statement_timeout)
BUSY_SQLSTATES = frozenset({"55P03", "57014"})


# SQLite tells a query of a column or table its schema lacks as an OperationalError too
SQLITE_SCHEMA_ERRORS = ("no such column", "no such table", "has no column named")
# PostgreSQL refusing a connection for what it was asked, not for being out: a database
# or role that does not exist (`database "shop" does not exist`), a password it refuses
WRONG_DATABASE_SIGNS = ('" does not exist', "authentication failed")


# PostgreSQL's undefined_column and undefined_table
SCHEMA_SQLSTATES = frozenset({"42703", "42P01"})


def is_schema_error(exc: BaseException) -> bool:
    """A query of a column or table the database's schema lacks: the schema is older
    (or newer) than the code, rolled back under it, say. No outage: it will not pass."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    cause = exc.orig
    said = str(cause)
    return getattr(cause, "sqlstate", None) in SCHEMA_SQLSTATES or any(
        sign in said for sign in SQLITE_SCHEMA_ERRORS
    )


def as_dependency_down(exc: BaseException) -> DependencyDown | None:
    """The database's passing failures as DependencyDown: DATABASE_UNAVAILABLE for refused
    or dropped connections, DATABASE_BUSY for a lock not had in time (PostgreSQL's
    lock_timeout, SQLite's "database is locked"); None for anything else."""
    if isinstance(exc, DependencyDown):
        return exc
    passing = isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError) or (
        isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated
    )
    if not passing:
        return None
    cause = getattr(exc, "orig", None) or exc
    said = (str(cause).strip().splitlines() or [""])[0][:200]
    if any(sign in said for sign in SQLITE_SCHEMA_ERRORS):
        return None  # the schema is not what the code expects: no outage, it will not pass
    if any(sign in said for sign in WRONG_DATABASE_SIGNS):
        return None  # a misspelled database or user, a refused login: waiting will not help
    busy = getattr(cause, "sqlstate", None) in BUSY_SQLSTATES or "database is locked" in said
    code = ErrorCode.DATABASE_BUSY if busy else ErrorCode.DATABASE_UNAVAILABLE
    return DependencyDown(code, f"{type(cause).__name__}: {said}")
