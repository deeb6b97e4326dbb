"""The errors a request or a command can cause, for whoever caused it.

    EnlargerError         a stable `code` for machines, a sentence for people, an HTTP status
    ├── Malformed         400: the request cannot be read (a broken multipart form)
    ├── NotFound          404: nothing has that id, name or folder
    ├── Conflict          409: the change would break a rule, or came at the wrong time
    ├── TooLarge          413
    └── Invalid           422: the request is readable but asks for something impossible

Each domain raises these or its own subclasses, which declare their `code` (and, where
the status differs, their `status`). The HTTP app answers every one with one handler:
`{"detail": message, "errorCode": code}`. Errors of the engine's own (a job's failure,
a storage outage, a worker's child killed) are not requests' mistakes and stay outside.
"""

from __future__ import annotations

import http
from typing import Any


class EnlargerError(Exception):
    status: int = 400
    code: str = "BAD_REQUEST"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def answer(self) -> dict[str, Any]:
        """The JSON body an HTTP client gets."""
        return {"detail": self.message, "errorCode": str(self.code)}


class Malformed(EnlargerError):
    status = 400
    code = "MALFORMED_REQUEST"


class NotFound(EnlargerError):
    status = 404
    code = "NOT_FOUND"


class Conflict(EnlargerError):
    status = 409
    code = "CONFLICT"


class TooLarge(EnlargerError):
    status = 413
    code = "TOO_LARGE"


class Invalid(EnlargerError):
    status = 422
    code = "INVALID"


FAMILIES = {
    family.status: family.code for family in (Malformed, NotFound, Conflict, TooLarge, Invalid)
}


def code_for_status(status: int) -> str:
    """The code of a refusal made by the framework or the HTTP layer (an unknown route,
    a wrong method, a query parameter that does not parse), which has only a status:
    the family's code, else the status's name (`METHOD_NOT_ALLOWED`)."""
    return FAMILIES.get(status) or http.HTTPStatus(status).name
