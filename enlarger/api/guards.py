"""Checks on the raw request, before any route: what no route could take.

A NUL character cannot be stored by PostgreSQL and is never a meaningful name, so a
request carrying one in its path, its query or a JSON string is refused with 422 here,
rather than each route meeting it as a database error. A JSON body is read whole to be
checked, so it is limited (413): the largest any route takes, 10,000 file names, is
about 2 MB."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_JSON_BYTES = 8 * 1024 * 1024
NUL_REFUSED = json.dumps(
    {"detail": "the request contains a NUL character (U+0000)", "errorCode": "NUL_CHARACTER"}
).encode()
TOO_LARGE = json.dumps(
    {"detail": f"a JSON body may be at most {MAX_JSON_BYTES:,} bytes", "errorCode": "TOO_LARGE"}
).encode()


class RequestGuards:
    """ASGI middleware: 422 for NUL in the path, the query or a JSON body's strings, 413
    for a JSON body over MAX_JSON_BYTES. JSON bodies (small: uploads are multipart) are
    read whole to be checked, then replayed to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"\x00" in unquote_to_bytes(scope["query_string"]):
            await _refuse(send, 422, NUL_REFUSED)
            return
        content_type = dict(scope["headers"]).get(b"content-type", b"")
        if not content_type.startswith(b"application/json"):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if len(body) > MAX_JSON_BYTES:
            await _refuse(send, 413, TOO_LARGE)
            return
        if b"\\u0000" in body.lower() and _has_nul(body):
            await _refuse(send, 422, NUL_REFUSED)
            return
        await self.app(scope, _replay(body, receive), send)


async def _read_body(receive: Receive) -> bytes:
    """The whole body (or, past MAX_JSON_BYTES, as much as shows it is too long).
    ClientDisconnect when the client goes before sending it all: what came is not the
    request (`{"folder":"a"}` of a declared 1,000 bytes must not create a project)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if not message.get("more_body", False) or size > MAX_JSON_BYTES:
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


def _has_nul(body: bytes) -> bool:
    try:
        document = json.loads(body)
    except ValueError:
        return False  # not JSON after all: the route says what is wrong with it
    return _any_nul(document)


def _any_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_any_nul(k) or _any_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_any_nul(item) for item in value)
    return False


async def _refuse(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
