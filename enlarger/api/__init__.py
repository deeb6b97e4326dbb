"""The HTTP API (FastAPI): `create_app(services)`; `enlarger serve` runs it with uvicorn."""

from enlarger.api.app import create_app

__all__ = ["create_app"]
