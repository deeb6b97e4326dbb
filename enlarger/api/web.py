"""The dashboard: server-rendered page shells (Jinja2) whose plain JS reads the JSON API
and the live event stream. Signing in stores a token in a cookie (see `auth.py`)."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from enlarger import __version__
from enlarger.access.tokens import authenticate
from enlarger.api.auth import TOKEN_COOKIE, access_control_on
from enlarger.library import projects
from enlarger.web import STATIC, TEMPLATES

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=TEMPLATES)
static_files = StaticFiles(directory=STATIC)
# Swagger UI's own files, as the fastapi-offline package ships them: /docs works offline
docs_assets = StaticFiles(directory=str(files("fastapi_offline") / "static"))
DOCS_ASSETS = "/docs-assets"
COOKIE_MAX_AGE_S = 30 * 86400


def _page(request: Request, template: str, page: str, title: str, **context: object) -> Response:
    return templates.TemplateResponse(
        request,
        template,
        {
            "page": page,
            "title": title,
            "version": __version__,
            "signed_in": bool(request.cookies.get(TOKEN_COOKIE)),
            **context,
        },
    )


# path → (template and page name, title) of the pages that need nothing but their shell
SHELLS = {
    "/": ("gallery", "Gallery"),
    "/projects": ("projects", "Projects"),
    "/jobs": ("jobs", "Jobs"),
    "/products": ("products", "Product jobs"),
}


def _shell(name: str, title: str) -> Callable[[Request], Response]:
    def show(request: Request) -> Response:
        return _page(request, f"{name}.html", name, title)

    return show


for path, (name, title) in SHELLS.items():
    router.add_api_route(path, _shell(name, title), methods=["GET"], response_class=HTMLResponse)


@router.get("/projects/{folder}", response_class=HTMLResponse)
def project_page(request: Request, folder: str) -> Response:
    project = projects.get_project(request.app.state.services.library, folder)
    title = project.title or project.name  # a collection's name when it has no title
    return _page(request, "project.html", "projects", title, folder=project.folder)


def _safe_next(target: str) -> str:
    """Only a path of this site: never an open redirect to another one (browsers read
    `//host` and `/\\host` as another site)."""
    local = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if local else "/"


@router.get("/openapi.json", response_class=JSONResponse)
def openapi(request: Request) -> JSONResponse:
    """The API's description; behind a viewer token unless `docs_public` (see `auth`)."""
    return JSONResponse(request.app.openapi())


@router.get("/docs", response_class=HTMLResponse)
def api_docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="enlarger API",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
    )


def not_found_page(request: Request, reason: str) -> Response:
    """A page saying what was not found, where a browser would otherwise show raw JSON."""
    response = _page(request, "not_found.html", "missing", "Not found", reason=reason)
    response.status_code = 404
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    return _page(request, "login.html", "login", "Sign in", next=_safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request, token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/"
) -> Response:
    engine = request.app.state.services.engine
    if not await access_control_on(request):
        return RedirectResponse(_safe_next(next), status_code=303)  # open: nothing to sign in
    role = await run_in_threadpool(authenticate, engine, token.strip()) if token else None
    if role is None:
        response = _page(
            request,
            "login.html",
            "login",
            "Sign in",
            next=_safe_next(next),
            error="That token is unknown or revoked.",
        )
        response.status_code = 401
        return response
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        TOKEN_COOKIE,
        token.strip(),
        max_age=COOKIE_MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout", response_class=RedirectResponse)
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(TOKEN_COOKIE)
    return response
