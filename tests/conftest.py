"""Fixtures: every engine test runs on SQLite and on a real PostgreSQL server.

Each PostgreSQL test gets its own database, cloned from a template that was migrated
once per test process. Without a reachable server the PostgreSQL half is skipped
locally and fails under CI=true, where it must never be skipped.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx
import psycopg
import pytest
import sqlalchemy as sa
import uvicorn
from moto.server import ThreadedMotoServer

from enlarger.api import create_app, ops
from enlarger.api.app import server_config
from enlarger.bootstrap import Services, build_services, build_worker
from enlarger.bootstrap import registry as app_registry
from enlarger.catalog.catalog import Catalog
from enlarger.catalog.fetch import FetchLimits, fetch
from enlarger.catalog.states import StageFailed
from enlarger.config import Settings
from enlarger.db import migrate
from enlarger.db.engine import create_db_engine
from enlarger.library.library import Library
from enlarger.logs import OutageLog
from enlarger.queue import JobQueue, Store, Worker, store_for_engine
from tests.browsers import browser, page  # noqa: F401 (fixtures of the browser tests)
from tests.handlers import registry as test_registry

# Dummy credentials for moto's S3 server, set at import so that every process the suite
# starts (workers' CPU children included) has them; no instance-metadata lookups.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}.items():
    os.environ.setdefault(_name, _value)

PG_ADMIN_DSN = os.environ.get("ENLARGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
# one template per pytest-xdist worker (PostgreSQL copies a template only while no other
# session is connected to it) and per run, so two checkouts testing at once on one server
# (CI beside a developer) do not drop each other's
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)[:8]
TEMPLATE_DB = f"enlarger_test_template_{_RUN}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
TEST_RUNS_DDL = "CREATE TABLE IF NOT EXISTS test_runs (job_id BIGINT, what TEXT, pid INTEGER)"


def _pg_url(database: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base}/{database}"


def _pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


HEAVY_TIMEOUT_S = 360


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that mostly wait for minutes (`long_wait`) start first, then those with a
    minute or more of work (`heavy`), so the other test processes run the rest beside them
    instead of one of them ending the run alone. A heavy test gets HEAVY_TIMEOUT_S unless
    it says otherwise: beside the suite on busy cores it takes more than twice its time
    on a quiet machine (the 5,000-photo culling took 104 s in one such run, and
    went past 120 s in the next)."""

    def starts(item: pytest.Item) -> int:
        for order, marker in enumerate(("long_wait", "heavy")):
            if item.get_closest_marker(marker):
                return order
        return 2

    items.sort(key=starts)
    for item in items:
        if item.get_closest_marker("heavy") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(HEAVY_TIMEOUT_S))


@pytest.fixture(scope="session")
def matting_compiled() -> None:
    """Wait for scripts/test's pymatting warm-up to have compiled its numba functions
    (it holds a lock on ENLARGER_TEST_MATTING_LOCK until then), so the tests that cut out
    products do not each compile them again beside it. Without the variable (pytest run
    by hand), nothing to wait for."""
    lock = os.environ.get("ENLARGER_TEST_MATTING_LOCK")
    if lock:
        with open(lock) as held:
            fcntl.flock(held, fcntl.LOCK_SH)


@pytest.fixture(autouse=True)
def fresh_outage_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API's outage logs are the process's: what an earlier test in this process left
    in them (an outage a minute ago makes the next a flap, a line a minute ago keeps the
    next one back) is not this test's."""
    monkeypatch.setattr(ops, "OUTAGES", OutageLog(ops.access_log))
    monkeypatch.setattr(ops, "SCHEMA_LOG", ops.OncePerMinute(ops.access_log))


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    if not _pg_available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_DSN} (required under CI)")
        pytest.skip("PostgreSQL is not reachable")
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    engine = create_db_engine(_pg_url(TEMPLATE_DB))
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(TEST_RUNS_DDL)
    engine.dispose()
    yield TEMPLATE_DB
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database with `test_runs`, copied for each test (a copy takes
    well under a millisecond; migrating, 85 ms)."""
    path = tmp_path_factory.mktemp("template") / "enlarger.db"
    engine = create_db_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(TEST_RUNS_DDL)
    engine.dispose()  # the last connection checkpoints the WAL into the file
    return path


def _new_pg_database(template: str | None) -> str:
    """A new database, a copy of `template` when given. PostgreSQL 15+ copies a small
    template's files faster than it logs them (FILE_COPY: 0.16 s to create and drop, not
    0.31 s, which adds up over the suite's few hundred databases)."""
    name = f"enlarger_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        clause = f" TEMPLATE {template}" if template else ""
        if template and conn.info.server_version >= 150000:
            clause += " STRATEGY FILE_COPY"
        conn.execute(f"CREATE DATABASE {name}{clause}")
    return name


def _drop_pg_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def empty_db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database with no tables at all (for migration tests)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'enlarger.db'}"
        return
    request.getfixturevalue("pg_template")  # skips or fails when there is no server
    name = _new_pg_database(None)
    yield _pg_url(name)
    _drop_pg_database(name)


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database with the `test_runs` table the test handlers write to."""
    if backend == "sqlite":
        path = tmp_path / "enlarger.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    name = _new_pg_database(request.getfixturevalue("pg_template"))
    yield _pg_url(name)
    _drop_pg_database(name)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: sa.Engine) -> Store:
    return store_for_engine(engine)


@pytest.fixture
def queue(store: Store) -> JobQueue:
    return JobQueue(store, test_registry)


FAST = Settings(
    max_parallel_jobs=4,
    priority_lane_slots=1,
    heartbeat_ms=200,
    stale_seconds=2.0,
    retry_base_seconds=0.2,
    poll_interval_ms=20,
    shutdown_grace_seconds=5.0,
)


@pytest.fixture
def make_worker(db_url: str) -> Iterator[Callable[..., Worker]]:
    """Start workers (each with its own engine, like a separate process); stop them after."""
    started: list[tuple[Worker, sa.Engine]] = []

    def make(
        registry: Any = test_registry,
        settings: Settings = FAST,
        *,
        services: Any = None,
        **changes: Any,
    ) -> Worker:
        """`services` reach a test registry's handlers as `ctx.services`; enlarger's own
        registry gets the application's, built from `settings`."""
        engine = create_db_engine(db_url)
        settings = settings.replace(**changes)
        if registry is app_registry:  # enlarger's own handlers read the application's services
            worker = build_worker(build_services(settings, engine=engine))
        else:
            worker = Worker(store_for_engine(engine), registry, settings, services=services)
        worker.start()
        started.append((worker, engine))
        return worker

    yield make
    for worker, engine in started:
        worker.stop(timeout=10)
        engine.dispose()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a loopback port (credentials: see above)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"enlarger-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def storage(request: pytest.FixtureRequest) -> str:
    """Where `library` keeps its blobs: "local" unless a module parametrizes it, as
    `pytestmark = BOTH_STACKS` does."""
    return str(getattr(request, "param", "local"))


# A module marked `pytestmark = BOTH_STACKS` runs each test twice: on SQLite with local
# disk, and on PostgreSQL with S3 (moto's server). The database and the blob store are
# separate layers, so the other two pairings would test nothing these two do not.
BOTH_STACKS = pytest.mark.parametrize(
    ("backend", "storage"), [("sqlite", "local"), ("postgres", "s3")], indirect=True
)


@pytest.fixture
def library_changes() -> dict[str, Any]:
    """Settings a test module adds to its library's (override it in the module)."""
    return {}


@pytest.fixture
def services(
    storage: str,
    request: pytest.FixtureRequest,
    db_url: str,
    tmp_path: Path,
    engine: sa.Engine,
    library_changes: dict[str, Any],
) -> Library:
    """The photo library on this test's database, with blobs under tmp_path or in a fresh
    bucket of moto's S3 server. Files are never left alone as too young (settle_seconds),
    unless the test's `library_changes` say otherwise."""
    changes = {"settle_seconds": 0} | library_changes
    settings = FAST.replace(data_dir=tmp_path / "data", database_url=db_url, **changes)
    if storage == "s3":
        bucket = request.getfixturevalue("bucket")
        endpoint = request.getfixturevalue("s3_endpoint")
        settings = settings.replace(storage_url=f"s3://{bucket}/photos", s3_endpoint_url=endpoint)
    return build_services(settings, engine=engine)


@pytest.fixture
def library(services: Services) -> Library:
    """The photo library's view of the test's services."""
    return services.library


@pytest.fixture
def catalog(services: Services) -> Catalog:
    """The catalog's view of the test's services."""
    return services.catalog


@pytest.fixture
def run_worker(make_worker: Callable[..., Worker], library: Library) -> Callable[[], Worker]:
    """Start a worker running enlarger's own handlers with the library's settings."""
    return lambda: make_worker(app_registry, library.settings)


def loopback_socket() -> socket.socket:
    """A socket bound to a free loopback port (its address known before serving on it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serving(services: Services, sock: socket.socket) -> Iterator[str]:
    """The HTTP API served by uvicorn on `sock`; yields its base URL."""
    app = create_app(services)
    server = uvicorn.Server(server_config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        app.state.event_hub.end_streams()  # open event streams end, as `serve` ends them
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def live_server(services: Services) -> Iterator[str]:
    """The HTTP API served by uvicorn on a loopback port; yields its base URL."""
    with serving(services, loopback_socket()) as base_url:
        yield base_url


@pytest.fixture
def client(live_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server, timeout=30) as client:
        yield client


def fetch_is_cut_off(url: str, port: int, tmp_path: Path, why: str) -> None:
    """A fetch from a server on `port` (allowed) that drips is stopped by its 1.5 s
    deadline, as a retryable failure saying `why`, and leaves no file behind."""
    allowed = FetchLimits(timeout_s=1.5, allow_hosts=frozenset({f"127.0.0.1:{port}"}))
    started = time.monotonic()
    with pytest.raises(StageFailed, match=why) as slow:
        fetch(url, tmp_path / "d", "0" * 64, allowed)
    assert slow.value.retryable
    assert time.monotonic() - started < 10  # not the minutes the drip would take
    assert not list(tmp_path.iterdir())


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; fail with a clear message on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def runs(engine: sa.Engine, job_id: int | None = None) -> list[tuple[int, str, int]]:
    query = "SELECT job_id, what, pid FROM test_runs"
    params: dict[str, Any] = {}
    if job_id is not None:
        query += " WHERE job_id = :j"
        params["j"] = job_id
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(query), params)]
