"""What a token is (its role and record) and the one query that lists them, read over any
DB-API connection: the API reads it through the engine, `enlarger tokens list` through
`db.direct`, so the command answers without importing SQLAlchemy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

from enlarger.db.direct import stored_time

LIST_TOKENS = (
    "SELECT id, name, role, prefix, created_at, last_used_at, revoked_at"
    " FROM api_tokens ORDER BY id"
)


class Role(IntEnum):
    """Each role may do what the ones below it may."""

    VIEWER = 1  # read
    UPLOADER = 2  # also upload and edit keep flags
    ADMIN = 3  # everything: job control, maintenance, product-job callbacks…

    @classmethod
    def named(cls, name: str) -> Role:
        try:
            return cls[name.upper()]
        except KeyError:
            known = ", ".join(r.name.lower() for r in cls)
            raise ValueError(f"unknown role {name!r}; use one of {known}") from None


@dataclass(frozen=True)
class Token:
    id: int
    name: str
    role: Role
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def token_from_row(row: Sequence[Any]) -> Token:
    """A row of LIST_TOKENS as a Token."""
    token_id, name, role, prefix, created_at, last_used_at, revoked_at = row
    created = stored_time(created_at)
    assert created is not None  # the column is NOT NULL
    return Token(
        token_id,
        name,
        Role.named(role),
        prefix,
        created,
        stored_time(last_used_at),
        stored_time(revoked_at),
    )


def read_tokens(connection: Any) -> list[Token]:
    """Every token, oldest first, over a DB-API connection."""
    cursor = connection.cursor()
    try:
        cursor.execute(LIST_TOKENS)
        return [token_from_row(row) for row in cursor.fetchall()]
    finally:
        cursor.close()
