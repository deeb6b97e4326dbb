"""What routes get injected: the process's services, built at the composition root
(`enlarger.bootstrap`) and kept on the app, or the one domain's view a route works with."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from enlarger.bootstrap import Services
from enlarger.catalog.catalog import Catalog
from enlarger.library.library import Library


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]


def _library(services: ServicesDep) -> Library:
    return services.library


LibraryDep = Annotated[Library, Depends(_library)]


def _catalog(services: ServicesDep) -> Catalog:
    return services.catalog


CatalogDep = Annotated[Catalog, Depends(_catalog)]
