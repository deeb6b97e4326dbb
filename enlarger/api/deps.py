"""What handlers get injected: the process's Library."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from enlarger.library.runtime import Library


def _library(request: Request) -> Library:
    library: Library = request.app.state.library
    return library


LibraryDep = Annotated[Library, Depends(_library)]
