"""What every response model shares: the `ApiModel` base (camelCase keys), timestamps
as the API has always written them, pagination, the error body, and the OpenAPI parts
routes declare (error responses, links, multipart request bodies)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """A JSON body of the API. Fields are snake_case in Python and camelCase on the wire;
    a key of another form (reference 003's snake_case ones) names its own `alias`.
    Every key is documented as sent, so the schema marks them all required except those
    a body leaves out when they have no value (`Field(exclude_if=...)`)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        from_attributes=True,
        json_schema_serialization_defaults_required=True,
    )


def answer(model: ApiModel, status_code: int) -> JSONResponse:
    """`model` answered with a status other than its route's (which documents it): a
    route declares one `response_model`, and FastAPI would check this against that."""
    return JSONResponse(model.model_dump(mode="json", by_alias=True), status_code=status_code)


def absent_if_none(value: Any) -> bool:
    """For `Field(exclude_if=absent_if_none)`: a key the body leaves out, not null."""
    return value is None


# A point in time as Python's isoformat writes it (`+00:00`, not pydantic's `Z`).
Timestamp = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class Pagination(ApiModel):
    total: int
    limit: int
    offset: int
    has_more: bool

    @classmethod
    def of(cls, total: int, limit: int, offset: int, returned: int) -> Pagination:
        return cls(total=total, limit=limit, offset=offset, has_more=offset + returned < total)


class ErrorAnswer(ApiModel):
    """A refused or failed request: `detail` says why (for a request that does not fit
    the schema, FastAPI's list of what is wrong), and `errorCode` names the error for
    machines (enlarger.errors). Image errors add `status`; a failure of the server
    itself `requestId`."""

    detail: str | list[dict[str, Any]]
    error_code: str | None = Field(None, exclude_if=absent_if_none)
    status: str | None = Field(None, exclude_if=absent_if_none)
    request_id: str | None = Field(None, exclude_if=absent_if_none)


# Every operation's answers other than those it documents itself: 4xx and 5xx errors,
# JSON from the application; plain text from the HTTP server (api/app.py's
# BoundedHttpTools, uvicorn) for a request it cannot parse or will not take (400, 408, 503).
ERRORS: dict[int | str, dict[str, Any]] = {
    "default": {
        "model": ErrorAnswer,
        "description": "An error: `detail` says why",
        # JSON first (the model fills its schema): generated clients read the first
        "content": {"application/json": {}, "text/plain": {"schema": {"type": "string"}}},
    }
}


def links(parameter: str, source: str, **operations: str) -> dict[str, Any]:
    """OpenAPI links from this answer to each of `operations` (operation id: what it
    gives), the value at `source` in this answer's body (`/jobId`) as their `parameter`."""
    given = {parameter: f"$response.body#{source}"}
    return {
        operation: {"operationId": operation, "parameters": given, "description": description}
        for operation, description in operations.items()
    }


def multipart_body(
    properties: dict[str, Any], required: list[str], description: str
) -> dict[str, Any]:
    """`openapi_extra` for a route reading its multipart form itself (`api/multipart.py`):
    the fields it takes, files as `format: binary`."""
    schema = {"type": "object", "properties": properties, "required": required}
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"multipart/form-data": {"schema": schema}},
        }
    }


BINARY = {"type": "string", "format": "binary"}
