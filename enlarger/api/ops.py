"""The operational surface: `/healthz`, `/readyz`, `/metrics`, and the middleware that
gives every request an id (`X-Request-ID`, in the response and in every log line made
while it is handled), logs it, and counts it by route and status. An error no route
handled is answered here too, as JSON naming the request id (507 when the disk is full),
so it is logged, counted and traceable like any other answer."""

from __future__ import annotations

import collections
import errno
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from enlarger import logs
from enlarger.api.schemas.base_models import ERRORS
from enlarger.api.schemas.ops_models import Health, Readiness
from enlarger.bootstrap import outage_of
from enlarger.db import revision
from enlarger.library import lookups
from enlarger.library.library import Library
from enlarger.queue import DependencyDown, as_dependency_down, is_schema_error
from enlarger.queue.telemetry import RUN_SECONDS_BUCKETS

router = APIRouter(tags=["operations"], responses=ERRORS)
access_log = logging.getLogger("enlarger.http")
# a request that met an outage says so in one line per outage, not a traceback each
OUTAGES = logs.OutageLog(access_log)
RETRY_AFTER_S = 5

GOOD_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
CLIENT_GONE = 499  # nginx's code for a client that closed the connection before the answer
WORKER_ALIVE_S = 30.0  # a worker that saved its counts this recently counts as running


# ---- request ids, access log, HTTP metrics --------------------------------------------


class RequestObserver:
    """ASGI middleware (streams pass straight through, unbuffered): a request id for each
    request, one access-log line, and the HTTP metrics."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "enlarger_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "enlarger_http_request_seconds",
            "Time to the response's headers, by route template",
            ["route"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if GOOD_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        answered = False

        async def send_with_id(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
                self._observe(scope, message["status"], time.perf_counter() - started)
                if message["status"] < 400 and scope["path"].startswith("/api/"):
                    # an API route that answered so read the database: it is back
                    OUTAGES.up("database")
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            if answered:
                raise
            self._observe(scope, CLIENT_GONE, time.perf_counter() - started, "the client went away")
        except Exception as error:
            if answered:
                raise  # the answer is under way: the server can only cut it off
            down = outage_of(error)
            library = scope["app"].state.services.library
            schema = _schema_problem(library, error) if down is None else None
            status, body = error_answer(error, rid, down, schema)
            headers = [(b"content-type", b"application/json")]
            if schema is not None:
                SCHEMA_LOG.say(f"{scope['method']} {loggable_path(scope)}: {schema}")
                headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
            elif down is not None:
                if down.is_outage:
                    OUTAGES.down(down.service, down.message)
                    if down.service == "storage":
                        watch_storage_until_back(scope["app"].state.services.library)
                else:
                    access_log.warning(
                        "%s %s: the %s is busy: %s",
                        scope["method"],
                        loggable_path(scope),
                        down.service,
                        down.message,
                    )
                headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
            elif status == 507:
                access_log.error("%s %s: %s", scope["method"], loggable_path(scope), error)
            else:
                access_log.exception("%s %s failed", scope["method"], loggable_path(scope))
            await send_with_id(
                {"type": "http.response.start", "status": status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            logs.request_id.reset(token)

    def _observe(self, scope: Scope, status: int, seconds: float, note: str = "") -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.requests.labels(template, scope["method"], str(status)).inc()
        self.seconds.labels(template).observe(seconds)
        path = loggable_path(scope)
        access_log.info(
            "%s %s %s %.1f ms%s",
            scope["method"],
            path,
            status,
            seconds * 1000,
            f" ({note})" if note else "",
            extra={"method": scope["method"], "path": path, "status": status},
        )


def loggable_path(scope: Scope) -> str:
    """The request's path with control characters percent-encoded again: a `%0A` in a
    URL must not start a new, forged line in a text log."""
    return CONTROL_CHARS.sub(lambda m: f"%{ord(m.group()):02X}", scope["path"])


def error_answer(
    error: Exception, request_id: str, down: DependencyDown | None, schema: str | None = None
) -> tuple[int, bytes]:
    """The status and JSON body for an error no route handled: 503 with the code of the
    service that is out (`down`: a client waits `Retry-After` and tries again) or
    SCHEMA_MISMATCH (`schema` says what is wrong with it), 507 for a full disk, else 500."""
    answer: dict[str, Any] = {}
    if schema is not None:
        status, answer["errorCode"], detail = 503, "SCHEMA_MISMATCH", schema
    elif down is not None:
        status, answer["errorCode"] = 503, down.code
        state = "unreachable for now" if down.is_outage else "busy (a lock was held too long)"
        detail = f"the {down.service} is {state}; try again shortly"
    elif isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        status, detail = 507, "the server's storage is full; nothing was kept of this request"
    else:
        status, detail = 500, "internal error; the server's log has it under this request id"
    answer |= {"detail": detail, "requestId": request_id}
    return status, json.dumps(answer).encode()


def _schema_problem(library: Library, error: Exception) -> str | None:
    """What is wrong with the database's schema, when `error` is a query of what it lacks
    (rolled back under this server, say)."""
    if not is_schema_error(error):
        return None
    try:
        return library.queue.store.schema_behind() or "the database's schema is not this version's"
    except Exception:  # the database cannot say
        return "the database's schema is not this version's"


class OncePerMinute:
    """An error line at most once a minute: a request each second on a rolled-back schema
    is not a traceback each second. Thread-safe enough: a line more is no harm."""

    def __init__(self, logger: logging.Logger, every_s: float = 60.0) -> None:
        self.logger, self.every_s = logger, every_s
        self._said_at = -float("inf")
        self._since = 0

    def say(self, line: str) -> None:
        now = time.monotonic()
        if now - self._said_at < self.every_s:
            self._since += 1
            return
        again = f" ({self._since} more since the last line)" if self._since else ""
        self.logger.error("%s%s", line, again)
        self._said_at, self._since = now, 0


SCHEMA_LOG = OncePerMinute(access_log)


# ---- the state of the engine and the library, read at each scrape ---------------------


# Connections the HTTP server refused or cut off, by reason ("slow head", "slow body",
# "full"), in this process (app.BoundedHttpTools counts them).
CONNECTIONS_REFUSED: collections.Counter[str] = collections.Counter()


class StateCollector(Collector):
    """Gauges read from the database at scrape time (any host sees every host's work):
    jobs by status and type, queue lag, stored bytes; and counters summed over every
    worker's saved telemetry: outcomes, run times, rescues, derivatives written."""

    def __init__(self, library: Library) -> None:
        self.library = library

    def collect(self) -> Iterator[Metric]:
        """Everything; while the database is out, what needs none, and a gauge saying so."""
        try:
            from_database = list(self._from_database())
        except Exception as exc:
            if as_dependency_down(exc) is None:
                raise
            from_database = []
        yield GaugeMetricFamily(
            "enlarger_database_up",
            "1 when this scrape could read the database, 0 while it is unreachable",
            value=1.0 if from_database else 0.0,
        )
        yield from from_database
        refused = CounterMetricFamily(
            "enlarger_http_connections_refused",
            "Connections this server refused or cut off: a slow request head or body, or "
            "max_connections or max_connections_per_client reached",
            labels=["reason"],
        )
        for reason in ("slow head", "slow body", "full", "client full"):
            refused.add_metric([reason], CONNECTIONS_REFUSED[reason])
        yield refused

    def _from_database(self) -> Iterator[Metric]:
        store = self.library.queue.store
        jobs = GaugeMetricFamily(
            "enlarger_jobs", "Jobs by type and status", labels=["type", "status"]
        )
        for (job_type, status), n in sorted(store.counts().items()):
            jobs.add_metric([job_type, status], n)
        yield jobs
        lag = store.oldest_ready_age_s()
        yield GaugeMetricFamily(
            "enlarger_queue_lag_seconds", "Age of the oldest job ready to run", value=lag or 0.0
        )
        yield from _worker_metrics(store.worker_stats())
        stored = GaugeMetricFamily(
            "enlarger_bytes_stored", "Bytes in storage by kind", labels=["kind"]
        )
        images = GaugeMetricFamily("enlarger_images", "Images by status", labels=["status"])
        totals = lookups.storage_totals(self.library)
        stored.add_metric(["original"], totals.original_bytes)
        stored.add_metric(["derivative"], totals.derivative_bytes)
        for status, n in sorted(totals.images_by_status.items()):
            images.add_metric([status], n)
        yield stored
        yield images
        yield GaugeMetricFamily(
            "enlarger_derivatives_stored", "Derivatives in storage", value=totals.derivatives
        )


def _worker_metrics(saved: list[tuple[str, float, dict[str, Any]]]) -> Iterator[Metric]:
    outcomes: dict[tuple[str, str], float] = {}
    runs: dict[str, list[float]] = {}
    counters: dict[str, float] = {}
    for _worker, _age, stats in saved:
        for job_type, outcome, n in stats.get("outcomes", []):
            outcomes[(job_type, outcome)] = outcomes.get((job_type, outcome), 0) + n
        for job_type, buckets in stats.get("runs", {}).items():
            if len(buckets) == len(RUN_SECONDS_BUCKETS) + 2:
                total = runs.setdefault(job_type, [0.0] * len(buckets))
                runs[job_type] = [a + b for a, b in zip(total, buckets, strict=True)]
        for name, n in stats.get("counters", {}).items():
            counters[name] = counters.get(name, 0) + n
    alive = sum(1 for _, age, _ in saved if age <= WORKER_ALIVE_S)
    yield GaugeMetricFamily("enlarger_workers", "Workers that reported in the last 30 s", alive)
    done = CounterMetricFamily(
        "enlarger_job_outcomes",
        "Job executions by type and outcome (completed, retry, failed, cancelled, released)",
        labels=["type", "outcome"],
    )
    for (job_type, outcome), n in sorted(outcomes.items()):
        done.add_metric([job_type, outcome], n)
    yield done
    run_time = HistogramMetricFamily(
        "enlarger_job_run_seconds", "Run time of job executions by type", labels=["type"]
    )
    for job_type, buckets in sorted(runs.items()):
        cumulative, total = [], 0.0
        for bound, n in zip((*RUN_SECONDS_BUCKETS, float("inf")), buckets, strict=False):
            total += n
            cumulative.append((_le(bound), total))
        run_time.add_metric([job_type], cumulative, sum_value=buckets[-1])
    yield run_time
    for name in ("jobs_rescued", "derivatives_written", "derivative_bytes_written"):
        counters.setdefault(name, 0)
    for name, n in sorted(counters.items()):
        yield CounterMetricFamily(f"enlarger_{name}", f"Counted by workers: {name}", value=n)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def metrics_registry(library: Library) -> CollectorRegistry:
    """One registry per app (tests run several apps in one process)."""
    registry = CollectorRegistry(auto_describe=False)  # no database read at start
    registry.register(StateCollector(library))
    return registry


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={
        200: {
            "description": "Every metric (docs/operations.md lists them)",
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


# ---- health ---------------------------------------------------------------------------


@router.get("/healthz", summary="The process is up (no other check)")
def healthz() -> Health:
    return Health(status="ok")


READINESS_KEY = ".readyz/probe"


def storage_check(library: Library) -> str:
    """ "ok" when a blob can be written and deleted, else what failed."""
    try:
        library.blobs.put_bytes(READINESS_KEY, uuid.uuid4().bytes)
        library.blobs.delete(READINESS_KEY)
    except Exception as exc:  # any failure to write means not ready, whatever the backend
        return f"not writable: {type(exc).__name__}: {exc}"
    return "ok"


_watching_storage = threading.Lock()


def watch_storage_until_back(library: Library) -> None:
    """Storage failed a request: look at it every RETRY_AFTER_S until it takes a write,
    then log that it is back (requests cannot tell: most never touch storage). One
    watcher at a time."""
    if not _watching_storage.acquire(blocking=False):
        return

    def watch() -> None:
        try:
            while storage_check(library) != "ok":
                time.sleep(RETRY_AFTER_S)
            OUTAGES.up("storage")
        finally:
            _watching_storage.release()

    threading.Thread(target=watch, name="enlarger-storage-watch", daemon=True).start()


def readiness(library: Library) -> dict[str, str]:
    """Each check's result: "ok" or what is wrong."""
    checks: dict[str, str] = {}
    try:
        with library.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        current = revision.stored_revision(library.engine)
        head = revision.head_revision()
        checks["database"] = "ok"
        checks["migrations"] = (
            "ok"
            if current == head
            else f"at {current or 'base'}, not {head}: run enlarger db upgrade"
        )
    except sa.exc.SQLAlchemyError as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        checks["migrations"] = "unknown: the database is unreachable"
    checks["storage"] = storage_check(library)
    return checks


@router.get(
    "/readyz",
    summary="Ready for traffic: database reachable, migrations current, storage writable",
    responses={503: {"model": Readiness, "description": "A check failed; the body says which"}},
)
async def readyz(request: Request, response: Response) -> Readiness:
    checks = await run_in_threadpool(readiness, request.app.state.services.library)
    ready = all(result == "ok" for result in checks.values())
    response.status_code = 200 if ready else 503
    return Readiness(status="ready" if ready else "not ready", checks=checks)
