"""The one error type of `enlarger.media`: a stable code for machines, a sentence for people."""

from __future__ import annotations

from enum import StrEnum


class MediaErrorCode(StrEnum):
    EMPTY_FILE = "EMPTY_FILE"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    CORRUPT_IMAGE = "CORRUPT_IMAGE"
    TOO_MANY_PIXELS = "TOO_MANY_PIXELS"
    TOO_LARGE = "TOO_LARGE"


class MediaError(Exception):
    """The file itself is the problem: retrying cannot help."""

    def __init__(self, code: MediaErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[MediaError], tuple[MediaErrorCode, str]]:
        return (MediaError, (self.code, self.message))
