"""The operational answers: liveness and readiness."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from enlarger.api.schemas.base_models import ApiModel


class Health(ApiModel):
    status: Literal["ok"]


class Readiness(ApiModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str] = Field(
        description="database, migrations, storage: each 'ok' or what is wrong"
    )
