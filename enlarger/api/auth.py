"""Who may call what: every route's role, checked before the route runs.

The policy is one table, so a route can never be forgotten: the few open routes and the
uploader's routes are listed; any other read needs a viewer token, and anything else
(job control, maintenance, product-job callbacks, deleting…) needs an admin token.

The dashboard signs in once (`/login`) and keeps the token in an HttpOnly, SameSite=Strict
cookie, which every route accepts like the header: a browser's EventSource cannot send
headers, and a cross-site page cannot make the browser send the cookie. A page of the
same site on another port can, so a change the cookie would authorise (and signing in or
out) is refused unless the browser says it comes from this origin (CSRF).

The API's description (`/docs`, `/openapi.json`) needs a viewer token too, unless the
`docs_public` setting opens it.

Until the first token is created the API is open (`enlarger serve` says so, and refuses
to listen beyond loopback that way unless told `--insecure`). Webhooks check their own
signatures and blob URLs their own, so they need no token.
"""

from __future__ import annotations

import hashlib
import time
from urllib.parse import quote, urlsplit

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from enlarger.access.tokens import Role, any_created, authenticate
from enlarger.queue import as_dependency_down

OPEN_ROUTES = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/files/{key:path}"),
    ("PUT", "/files/{key:path}"),
    ("POST", "/api/webhooks/images"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
}
UPLOADER_ROUTES = {
    ("POST", "/api/upload"),
    ("POST", "/api/product-jobs/upload"),
    ("POST", "/api/projects/{folder}/upload"),
    ("PATCH", "/api/projects/{folder}/photos/{basename}"),
    ("PATCH", "/api/projects/{folder}/photos"),
}
CHALLENGE = {"WWW-Authenticate": "Bearer"}
TOKEN_COOKIE = "enlarger_token"
DOCS_ROUTES = {("GET", "/docs"), ("GET", "/openapi.json")}  # open with `docs_public`
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
OUTAGE_TOLERANT_ROUTES = {("GET", "/metrics")}
REMEMBERED_FOR_OUTAGES_S = 600.0
REMEMBERED_TOKENS_MAX = 1000
COOKIE_ROUTES = {("POST", "/login"), ("POST", "/logout")}


def required_role(method: str, path: str) -> Role | None:
    """The role a request to the route `path` (its template) needs; None: open."""
    if (method, path) in OPEN_ROUTES:
        return None
    if (method, path) in UPLOADER_ROUTES:
        return Role.UPLOADER
    if method in ("GET", "HEAD"):
        return Role.VIEWER
    return Role.ADMIN


async def access_control_on(request: Request) -> bool:
    """Whether any token was ever created; once one was, it stays so (tokens are revoked,
    never deleted), so the answer is remembered instead of asked for on every request.
    While the database is out, the routes that need none (the metrics) take the last
    answer this process had."""
    state = request.app.state
    if not getattr(state, "access_control_on", False):
        engine = state.services.engine
        try:
            state.access_control_on = await run_in_threadpool(any_created, engine)
        except Exception as exc:
            route = (request.method, request.scope["route"].path)
            known = getattr(state, "access_control_on", None) is not None
            if not (known and route in OUTAGE_TOLERANT_ROUTES and as_dependency_down(exc)):
                raise
    return bool(state.access_control_on)


async def _role_of(request: Request, token: str, route: tuple[str, str]) -> Role | None:
    """The token's role. While the database is out, a token this process verified in the
    last `REMEMBERED_FOR_OUTAGES_S` still reads the routes that need no database (the
    metrics, which say the database is down); anything else answers 503."""
    known: dict[str, tuple[Role, float]] = request.app.state.verified_tokens
    key = hashlib.sha256(token.encode()).hexdigest()
    try:
        role = await run_in_threadpool(authenticate, request.app.state.services.engine, token)
    except Exception as exc:
        remembered = known.get(key)
        if (
            route in OUTAGE_TOLERANT_ROUTES
            and as_dependency_down(exc) is not None
            and remembered is not None
            and time.monotonic() - remembered[1] < REMEMBERED_FOR_OUTAGES_S
        ):
            return remembered[0]
        raise
    if role is not None:
        if len(known) >= REMEMBERED_TOKENS_MAX:
            known.clear()
        known[key] = (role, time.monotonic())
    return role


def wants_page(request: Request) -> bool:
    """A browser navigating to a page (not a script asking the API for JSON)."""
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


def from_another_origin(request: Request, public_url: str | None) -> bool:
    """Whether a browser sent this request from a page of another origin. Browsers say
    so in Sec-Fetch-Site; older ones only in Origin. A request with neither did not come
    from another origin's page (it is a program's, or a same-origin form's)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    own = {f"{request.url.scheme}://{request.headers.get('host', '')}"}
    if public_url:
        parts = urlsplit(public_url)
        own.add(f"{parts.scheme}://{parts.netloc}")
    return origin not in own


async def authorize(request: Request) -> None:
    """The app-wide dependency: 401 without a valid token, 403 with a weaker one; a
    browser asking for a page without one is sent to sign in instead."""
    route = (request.method, request.scope["route"].path)
    header = request.headers.get("authorization", "")
    settings = request.app.state.services.settings
    by_cookie = not header and (TOKEN_COOKIE in request.cookies or route in COOKIE_ROUTES)
    unsafe = request.method not in SAFE_METHODS
    if by_cookie and unsafe and from_another_origin(request, settings.public_url):
        raise HTTPException(403, "refused: a change sent from another origin's page")
    needed = required_role(*route)
    if needed is None or (route in DOCS_ROUTES and settings.docs_public):
        return
    token = request.cookies.get(TOKEN_COOKIE, "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "the Authorization header must be 'Bearer <token>'", CHALLENGE)
    elif not await access_control_on(request):
        return  # no token was ever created: the API is open
    role = await _role_of(request, token.strip(), route) if token else None
    if role is None:
        if wants_page(request):
            target = quote(
                request.url.path + (f"?{request.url.query}" if request.url.query else "")
            )
            raise HTTPException(303, "sign in first", {"Location": f"/login?next={target}"})
        reason = "the token is unknown or revoked" if token else "a token is needed"
        raise HTTPException(401, f"{reason}: Authorization: Bearer <token>", CHALLENGE)
    if role < needed:
        raise HTTPException(
            403, f"this needs the {needed.name.lower()} role; the token is {role.name.lower()}"
        )
