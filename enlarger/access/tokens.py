"""API tokens: created with a role, shown once, kept only as a SHA-256, revocable.

A token is `enl_` and 43 random URL-safe characters (256 bits), so a plain SHA-256 is
enough to keep it (nothing to brute-force, unlike a password) and a lookup by hash
compares no secret in Python. Once any token has ever been created, the API requires
one; revoking every token does not open it again.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata

import sqlalchemy as sa

from enlarger.access.token_records import LIST_TOKENS, Role, Token, token_from_row
from enlarger.db.engine import read_connection
from enlarger.db.schema import api_tokens
from enlarger.db.types import db_now

TOKEN_PREFIX = "enl_"
SHOWN_PREFIX = 12  # characters of a token kept in clear, to tell tokens apart in a list
USE_RECORDED_EVERY_S = 60
MAX_NAME_CHARACTERS = 200  # api_tokens.name's length


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def checked_name(name: str) -> str:
    """A token's name as given, refused when it would not fit its column or would break
    a list (control characters: a newline, a tab, an escape)."""
    name = name.strip()
    if len(name) > MAX_NAME_CHARACTERS:
        raise ValueError(f"a token's name is at most {MAX_NAME_CHARACTERS} characters")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise ValueError("a token's name cannot hold control characters (newlines, tabs)")
    return name


def create(engine: sa.Engine, role: Role, name: str = "") -> tuple[Token, str]:
    """A new token: its record and the token itself (shown once, never stored)."""
    name = checked_name(name)
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
        return [token_from_row(row) for row in conn.exec_driver_sql(LIST_TOKENS)]


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
