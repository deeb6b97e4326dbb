"""The docs stay true to the code: every route has its section in the API guide and every
setting its row in the configuration reference."""

from __future__ import annotations

from pathlib import Path

from fastapi.routing import APIRoute

from enlarger.api import admin, events, images, jobs, ops, products, project_routes, web
from enlarger.config import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_api_guide_has_every_route() -> None:
    guide = (DOCS / "api.md").read_text()
    routes = {
        (method, route.path.replace("{key:path}", "{key}"))
        for module in (admin, events, images, jobs, ops, products, project_routes, web)
        for route in module.router.routes
        if isinstance(route, APIRoute)
        for method in route.methods - {"HEAD"}
    }
    assert len(routes) > 50
    missing = sorted(f"{m} {p}" for m, p in routes if f"### {m} {p}\n" not in guide)
    assert not missing, missing


def test_the_configuration_reference_has_every_setting() -> None:
    reference = (DOCS / "configuration.md").read_text()
    missing = [name for name in Settings.model_fields if f"`{name}`" not in reference]
    assert not missing, missing
