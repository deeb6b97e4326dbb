"""What handlers get injected: the process's Library and Catalog."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from enlarger.catalog.runtime import Catalog
from enlarger.library.runtime import Library


def _library(request: Request) -> Library:
    library: Library = request.app.state.library
    return library


LibraryDep = Annotated[Library, Depends(_library)]


def _catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


CatalogDep = Annotated[Catalog, Depends(_catalog)]
