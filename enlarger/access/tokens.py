"""API tokens: created with a role, shown once, kept only as a SHA-256, revocable.

A token is `enl_` and 43 random URL-safe characters (256 bits), so a plain SHA-256 is
enough to keep it (nothing to brute-force, unlike a password) and a lookup by hash
compares no secret in Python. Once any token has ever been created, the API requires
one; revoking every token does not open it again.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

import sqlalchemy as sa

from enlarger.db.engine import read_connection
from enlarger.db.schema import api_tokens
from enlarger.db.types import db_now

TOKEN_PREFIX = "enl_"
SHOWN_PREFIX = 12  # characters of a token kept in clear, to tell tokens apart in a list
USE_RECORDED_EVERY_S = 60


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


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(engine: sa.Engine, role: Role, name: str = "") -> tuple[Token, str]:
    """A new token: its record and the token itself (shown once, never stored)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        token_id = conn.execute(
            api_tokens.insert()
            .values(
                name=name or role.name.lower(),
                role=role.name.lower(),
                token_hash=_digest(token),
                prefix=token[:SHOWN_PREFIX],
                created_at=db_now(),
            )
            .returning(api_tokens.c.id)
        ).scalar_one()
    return next(t for t in list_tokens(engine) if t.id == token_id), token


def list_tokens(engine: sa.Engine) -> list[Token]:
    with read_connection(engine) as conn:
        rows = conn.execute(sa.select(api_tokens).order_by(api_tokens.c.id)).all()
    return [
        Token(
            r.id, r.name, Role.named(r.role), r.prefix, r.created_at, r.last_used_at, r.revoked_at
        )
        for r in rows
    ]


def revoke(engine: sa.Engine, token_id: int) -> bool:
    """Revoke a token; False when there is no such live token."""
    with engine.begin() as conn:
        changed = conn.execute(
            api_tokens.update()
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=db_now())
        )
    return changed.rowcount == 1


def any_created(engine: sa.Engine) -> bool:
    """Whether access control is on: some token was created (revoked ones count)."""
    with read_connection(engine) as conn:
        return bool(conn.execute(sa.select(sa.exists().select_from(api_tokens))).scalar())


def authenticate(engine: sa.Engine, token: str) -> Role | None:
    """The role of a live token, or None. Its use is recorded at most once a minute, so
    requests stay reads."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    digest = _digest(token)
    live = api_tokens.c.token_hash == digest, api_tokens.c.revoked_at.is_(None)
    with read_connection(engine) as conn:
        row = conn.execute(
            sa.select(
                api_tokens.c.id,
                api_tokens.c.role,
                sa.or_(
                    api_tokens.c.last_used_at.is_(None),
                    api_tokens.c.last_used_at < db_now(-USE_RECORDED_EVERY_S),
                ),
            ).where(*live)
        ).first()
    if row is None:
        return None
    if row[2]:
        with engine.begin() as conn:
            conn.execute(
                api_tokens.update().where(api_tokens.c.id == row[0]).values(last_used_at=db_now())
            )
    return Role.named(row[1])
