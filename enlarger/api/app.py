"""The FastAPI application: routers per domain, every domain error answered with its
status and code by one handler; `run_server` serves it with uvicorn."""

from __future__ import annotations

import asyncio
import functools
import http
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from enlarger import __version__
from enlarger.api import admin, events, images, jobs, ops, products, project_routes, web
from enlarger.api.auth import authorize, wants_page
from enlarger.api.events import EventHub
from enlarger.api.guards import RequestGuards
from enlarger.bootstrap import Services
from enlarger.errors import EnlargerError, Invalid, code_for_status


def create_app(services: Services) -> FastAPI:
    """The HTTP app over services built at the composition root (`enlarger.bootstrap`):
    routes get them as dependencies (`api.deps`); the app builds none of its own."""
    settings = services.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.event_hub.close()

    app = FastAPI(
        title="enlarger",
        version=__version__,
        description="A self-hosted image pipeline: uploads, derivatives and durable jobs.",
        lifespan=lifespan,
        dependencies=[Depends(authorize)],
        docs_url=None,  # served by `web`, through `authorize` like every route
        redoc_url=None,
        openapi_url=None,
    )
    app.state.services = services
    app.state.event_hub = EventHub(services.queue.store, settings.poll_interval_ms / 1000)
    app.state.metrics = ops.metrics_registry(services.library)
    app.state.verified_tokens = {}  # auth._role_of's: tokens seen valid, for outages
    app.add_middleware(RequestGuards)
    app.add_middleware(ops.RequestObserver, registry=app.state.metrics)  # the outermost
    app.include_router(ops.router)
    app.include_router(images.router)
    app.include_router(admin.router)
    app.include_router(project_routes.router)
    app.include_router(events.router)
    app.include_router(jobs.router)
    app.include_router(products.router)
    app.include_router(web.router)
    app.mount("/static", web.static_files, name="static")
    app.mount(web.DOCS_ASSETS, web.docs_assets, name="docs-assets")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """FastAPI's answer, but a page for a browser that asked for one that is not here."""
        if exc.status_code == 404 and _wants_dashboard_page(request):
            return web.not_found_page(request, f"There is no page at {request.url.path}.")
        if exc.status_code in BODYLESS:
            return await http_exception_handler(request, exc)
        body = {"detail": exc.detail, "errorCode": code_for_status(exc.status_code)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(EnlargerError)
    async def refused(request: Request, exc: EnlargerError) -> Response:
        """Every domain's error, with its status and code; a page for a browser that
        asked for a dashboard page that is not there (/projects/<a folder not there>)."""
        if exc.status == 404 and _wants_dashboard_page(request):
            return web.not_found_page(request, exc.message)
        return JSONResponse(exc.answer(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_input(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's own answer (a list of what is wrong, where), minus what JSON cannot
        carry (a NaN that was sent)."""
        detail = json_safe(jsonable_encoder(exc.errors()))
        return JSONResponse({"detail": detail, "errorCode": Invalid.code}, 422)

    return app


BODYLESS = (204, 304)  # answers that may carry no body, not even an error's


def _wants_dashboard_page(request: Request) -> bool:
    """A browser asking for a page at a path of the dashboard's, not of the API, the
    files or the assets."""
    api = ("/api/", "/files/", "/static/", web.DOCS_ASSETS + "/")
    return wants_page(request) and not request.url.path.startswith(api)


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinities as strings: JSON has no number for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    return value


STREAM_SHUTDOWN_S = 5  # a stream still open this long after a shutdown began is cut off
# An idle connection is kept longer than clients keep theirs (httpx and enlarger.client:
# 5 s), so a client never sends on a connection the server is just closing (uvicorn's 5 s
# default matched theirs: a request racing the close was cut off, "server disconnected")
KEEP_ALIVE_S = 30


class _Server(uvicorn.Server):
    """uvicorn, telling event streams to end when it is asked to stop: they never end by
    themselves, and uvicorn waits for open responses. `on_stop` is told at once too."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_stop = on_stop

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.config.app.state.event_hub.end_streams()
        if self._on_stop is not None:
            self._on_stop()
        super().handle_exit(sig, frame)


logger = logging.getLogger("enlarger.http")
REFUSALS_LOGGED_EVERY_S = 10.0  # a flood of refusals makes a line this often, not one each
_refusals_logged: dict[str, tuple[float, int]] = {}  # by reason: when last logged, count then

# The request line and headers together. uvicorn's httptools parser has no limit of its
# own (it took a 50 MB header); its h11 parser has one, but made uploads about 6 % slower.
MAX_HEAD_BYTES = 64 * 1024


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with limits on what a client may hold:
    - a request's head over MAX_HEAD_BYTES is answered 400 and the connection closed
      (counted in whole reads while the head lasts, so at most one read more is held);
    - a head not whole `head_timeout` seconds after the connection opened or the request
      began is answered 408 (half a head) or closed (nothing sent);
    - a request body (any route's) that stops arriving for `body_idle` seconds, or is
      still arriving after `body_max`, is answered 408 (or, once the answer has begun,
      cut off); time the application is not reading it does not count;
    - past `max_connections` open connections, a new one is answered 503 and closed at
      once, so idle clients cannot use up the server's file descriptors; past
      `max_per_client` from one address, so one client cannot take every place.
    Each refusal is logged and counted (ops.CONNECTIONS_REFUSED, read by /metrics)."""

    def __init__(
        self,
        *args: Any,
        head_timeout: float = 5.0,
        body_idle: float = 60.0,
        body_max: float = 3600.0,
        max_connections: int = 1000,
        max_per_client: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._head_timeout = head_timeout
        self._body_idle = body_idle
        self._body_max = body_max
        self._max_connections = max_connections
        self._max_per_client = max_per_client
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_started = self._body_seen = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self._max_connections:
            self._refuse(
                503, f"the server holds {self._max_connections} connections already", "full"
            )
            return
        if self._max_per_client and self._held_by_this_client() > self._max_per_client:
            message = f"this address holds {self._max_per_client} connections already"
            self._refuse(503, message, "client full")
            return
        self._start_head_timer()

    def _held_by_this_client(self) -> int:
        """Connections open from this one's address, itself included."""
        if not self.client:
            return 1
        host = self.client[0]
        return sum(1 for held in self.connections if held.client and held.client[0] == host)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        self._stop_body_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        if self._head_timer is None:
            self._start_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        super().on_headers_complete()
        self._body_started = self._body_seen = self.loop.time()
        self._body_timer = self.loop.call_later(self._body_idle, self._check_body)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._body_seen = self.loop.time()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._stop_body_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self.send_400_response(f"the request head is over {MAX_HEAD_BYTES} bytes")

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self._head_timeout, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        message = f"the request head did not arrive within {self._head_timeout:g} s"
        if self._head_bytes:
            self._refuse(408, message, "slow head")
        else:  # nothing sent: no answer a client about to send could take for its own
            self._note_refusal("slow head", f"closed: {message}")
            self.transport.close()

    def _check_body(self) -> None:
        self._body_timer = None
        now = self.loop.time()
        if self.flow.read_paused:  # the application is not reading: the client is not late
            self._body_seen = now
        due = min(self._body_seen + self._body_idle, self._body_started + self._body_max)
        if now < due:
            self._body_timer = self.loop.call_at(due, self._check_body)
        elif self.transport.is_closing():
            return
        elif self.cycle is not None and self.cycle.response_started:
            self._note_refusal("slow body", "closed: the request body arrived too slowly")
            self.transport.close()
        else:
            self._refuse(408, "the request body arrived too slowly", "slow body")

    def _note_refusal(self, why: str, message: str) -> None:
        """Count it, and log it unless this reason was logged in the last few seconds
        (then the next line says how many came meanwhile)."""
        counts = ops.CONNECTIONS_REFUSED
        counts[why] += 1
        last_at, count_then = _refusals_logged.get(why, (-REFUSALS_LOGGED_EVERY_S, 0))
        now = time.monotonic()
        if now - last_at < REFUSALS_LOGGED_EVERY_S:
            return
        client = self.client[0] if self.client else "a client"
        since = counts[why] - count_then - 1
        logger.warning(
            "%s: %s%s",
            client,
            message,
            f" ({since} more like it since the last line)" * bool(since),
        )
        _refusals_logged[why] = (now, counts[why])

    def _refuse(self, status: int, message: str, why: str) -> None:
        self._note_refusal(why, f"answered {status} and closed: {message}")
        reason = http.HTTPStatus(status).phrase
        body = message.encode("ascii")
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode("ascii")
            + body
        )
        self.transport.close()


def server_config(app: FastAPI, **options: Any) -> uvicorn.Config:
    """uvicorn's settings for the API, with limits on what a client may send and hold
    (`head_timeout_seconds`, `max_connections`, `max_connections_per_client`)."""
    settings = app.state.services.settings
    protocol = functools.partial(
        BoundedHttpTools,
        head_timeout=settings.head_timeout_seconds,
        body_idle=settings.upload_idle_seconds,
        body_max=settings.upload_max_seconds,
        max_connections=settings.max_connections,
        max_per_client=settings.max_connections_per_client,
    )
    return uvicorn.Config(
        app,
        http=protocol,  # type: ignore[arg-type]
        log_config=None,  # keep enlarger's logging (text or JSON, with request ids)
        access_log=False,  # ops.RequestObserver logs each request, with its id
        timeout_graceful_shutdown=STREAM_SHUTDOWN_S,
        timeout_keep_alive=KEEP_ALIVE_S,
        **options,
    )


def run_server(
    app: FastAPI, host: str, port: int, log_level: str, on_stop: Callable[[], None] | None = None
) -> None:
    """Serve until SIGINT or SIGTERM; `on_stop` is called as soon as one arrives, while
    the HTTP side still finishes its open requests."""
    _Server(server_config(app, host=host, port=port, log_level=log_level), on_stop).run()
