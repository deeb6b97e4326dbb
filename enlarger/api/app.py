"""The FastAPI application: routers per domain, and errors mapped to 4xx with a reason."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from enlarger import __version__
from enlarger.api import admin, images, projects
from enlarger.api.multipart import MalformedForm
from enlarger.config import Settings
from enlarger.library.projects import InvalidName
from enlarger.library.runtime import Library, build_library
from enlarger.library.service import Conflict, NotFound
from enlarger.media import MediaError, MediaErrorCode


def create_app(settings: Settings, library: Library | None = None) -> FastAPI:
    app = FastAPI(
        title="enlarger",
        version=__version__,
        description="A self-hosted image pipeline: uploads, derivatives and durable jobs.",
    )
    app.state.library = library or build_library(settings)
    app.include_router(images.router)
    app.include_router(admin.router)
    app.include_router(projects.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc.args[0])}, status_code=404)

    @app.exception_handler(Conflict)
    async def conflict(_request: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(InvalidName)
    async def invalid_name(_request: Request, exc: InvalidName) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(MalformedForm)
    async def malformed(_request: Request, exc: MalformedForm) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(MediaError)
    async def media_error(_request: Request, exc: MediaError) -> JSONResponse:
        status = 413 if exc.code is MediaErrorCode.TOO_LARGE else 422
        body = {"detail": exc.message, "errorCode": exc.code.value, "status": "FAILED"}
        return JSONResponse(body, status_code=status)

    return app
