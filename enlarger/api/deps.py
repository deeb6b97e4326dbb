"""What routes get injected: the process's services, built at the composition root
(`enlarger.bootstrap`) and kept on the app, or the one domain's view a route works with.
Each is `async`: FastAPI runs a plain `def` dependency in its thread pool, a hop per
dependency per request for what is only an attribute read."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from enlarger.bootstrap import Services
from enlarger.catalog.catalog import Catalog
from enlarger.library.library import Library


async def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]


async def _library(services: ServicesDep) -> Library:
    return services.library


LibraryDep = Annotated[Library, Depends(_library)]


async def _catalog(services: ServicesDep) -> Catalog:
    return services.catalog


CatalogDep = Annotated[Catalog, Depends(_catalog)]
