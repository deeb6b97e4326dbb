"""Parameters the API's routes share: numbers that reach the database (the response
models are in `api/schemas/`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

# Numbers that reach the database fit its 64-bit integers (a larger one is a 422, not an
# overflow deep in the driver).
MAX_DB_INT = 2**63 - 1
Offset = Annotated[int, Query(ge=0, le=MAX_DB_INT)]
JobId = Annotated[int, Path(ge=1, le=MAX_DB_INT)]
