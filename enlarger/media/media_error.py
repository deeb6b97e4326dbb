"""The one error type of `enlarger.media`: a stable code for machines, a sentence for people."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from enlarger.errors import EnlargerError


class MediaErrorCode(StrEnum):
    EMPTY_FILE = "EMPTY_FILE"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    CORRUPT_IMAGE = "CORRUPT_IMAGE"
    TOO_MANY_PIXELS = "TOO_MANY_PIXELS"
    TOO_LARGE = "TOO_LARGE"


class MediaError(EnlargerError):
    """The file itself is the problem: retrying cannot help. Too large is a 413, any
    other problem a 422; the answer says the image FAILED."""

    def __init__(self, code: MediaErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = 413 if code is MediaErrorCode.TOO_LARGE else 422

    def answer(self) -> dict[str, Any]:
        return super().answer() | {"status": "FAILED"}

    def __reduce__(self) -> tuple[type[MediaError], tuple[MediaErrorCode, str]]:
        return (MediaError, (self.code, self.message))
