"""Outages of PostgreSQL and of S3 (moto), made by cutting a proxy the test owns in front
of them: requests answer 503 naming the service, with Retry-After, and the Python client
waits them out; /metrics still answers and says the database is down; the log has a line
when a service goes and one when it is back, not a traceback per request."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from enlarger.access import tokens
from enlarger.access.tokens import Role
from enlarger.api.app import create_app
from enlarger.bootstrap import Services, build_services
from enlarger.client import EnlargerClient
from enlarger.db.engine import create_db_engine
from tests.conftest import FAST, PG_ADMIN_DSN, loopback_socket, serving, wait_for
from tests.images import jpeg
from tests.outages import CuttableProxy

REPO_ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@pytest.fixture
def proxied_db(db_url: str) -> Iterator[tuple[CuttableProxy, str]]:
    proxy, url = CuttableProxy.in_front_of(db_url)
    yield proxy, url
    proxy.close()


def _services(tmp_path: Path, database_url: str, **changes: object) -> Services:
    settings = FAST.replace(
        data_dir=tmp_path / "data", database_url=database_url, settle_seconds=0, **changes
    )
    return build_services(settings, engine=create_db_engine(database_url))


def _outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "reachable" in r.getMessage()]


def test_a_database_outage_answers_503_and_the_client_waits_it_out(
    proxied_db: tuple[CuttableProxy, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proxy, url = proxied_db
    services = _services(tmp_path, url)
    photo = jpeg(tmp_path / "a.jpg", 600, 400).read_bytes()
    caplog.set_level(logging.WARNING, logger="enlarger.http")
    with serving(services, loopback_socket()) as base, httpx.Client(base_url=base) as http:
        assert http.get("/api/images").status_code == 200
        proxy.cut()
        for answer in (
            http.get("/api/images"),
            http.post("/api/upload", files={"file": ("a.jpg", photo)}),
        ):
            assert answer.status_code == 503, answer.text
            assert answer.json()["errorCode"] == "DATABASE_UNAVAILABLE"
            assert int(answer.headers["retry-after"]) > 0
        restore = threading.Timer(1.0, proxy.restore)  # the outage lasts about a second more
        restore.start()
        with EnlargerClient(base) as client:
            uploaded = client.upload_image(photo, filename="a.jpg")
        restore.join()
        assert uploaded["status"] == "INGESTED"
    lines = _outage_lines(caplog)
    assert len(lines) == 2 and "database unreachable" in lines[0], lines
    assert "database reachable again" in lines[1]
    assert not [r for r in caplog.records if r.exc_info], "an outage is not a traceback"


@pytest.mark.parametrize("access_control", [True, False], ids=["tokens", "no-tokens"])
def test_metrics_answer_through_a_database_outage(
    proxied_db: tuple[CuttableProxy, str], tmp_path: Path, access_control: bool
) -> None:
    """With access control on, a token read once before the outage still reads the
    metrics, which say the database is down; the request counters are still there. With
    no token created (the default), the metrics stay open through it (they answered 503:
    whether access control was on was asked of the database each time)."""
    proxy, url = proxied_db
    services = _services(tmp_path, url)
    headers = {}
    if access_control:
        _, token = tokens.create(services.engine, Role.VIEWER, "prometheus")
        headers = {"Authorization": f"Bearer {token}"}
    with serving(services, loopback_socket()) as base, httpx.Client(base_url=base) as http:
        before = http.get("/metrics", headers=headers)
        assert before.status_code == 200 and "enlarger_database_up 1.0" in before.text
        proxy.cut()
        during = http.get("/metrics", headers=headers)
        assert during.status_code == 200, during.text
        assert "enlarger_database_up 0.0" in during.text
        assert 'enlarger_http_requests_total{method="GET",route="/metrics",status="200"}' in (
            during.text
        )
        assert "enlarger_jobs{" not in during.text  # what needs the database is left out
        other = http.get("/api/images", headers=headers)
        assert other.status_code == 503
        proxy.restore()
        after = http.get("/metrics", headers=headers)
        assert "enlarger_database_up 1.0" in after.text


def test_a_storage_outage_answers_503_naming_storage(
    db_url: str, bucket: str, s3_endpoint: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A request that meets it answers 503; the log says when storage went and, though
    most requests never touch storage to tell, when it is back."""
    caplog.set_level(logging.WARNING, logger="enlarger.http")
    proxy, endpoint = CuttableProxy.in_front_of(s3_endpoint)
    services = _services(
        tmp_path, db_url, storage_url=f"s3://{bucket}/photos", s3_endpoint_url=endpoint
    )
    photo = jpeg(tmp_path / "a.jpg", 600, 400).read_bytes()
    try:
        with serving(services, loopback_socket()) as base, httpx.Client(base_url=base) as http:
            proxy.cut()
            answer = http.post("/api/upload", files={"file": ("a.jpg", photo)})
            assert answer.status_code == 503, answer.text
            assert answer.json()["errorCode"] == "STORAGE_UNAVAILABLE"
            assert "storage" in answer.json()["detail"] and endpoint not in answer.text
            proxy.restore()
            again = http.post("/api/upload", files={"file": ("a.jpg", photo)})
            assert again.status_code == 201, again.text
            wait_for(lambda: len(_outage_lines(caplog)) == 2, timeout=30)
    finally:
        proxy.close()
    lines = _outage_lines(caplog)
    assert "storage unreachable" in lines[0] and "storage reachable again" in lines[1], lines


def test_storage_that_takes_connections_but_never_answers_is_an_outage(
    db_url: str, bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    """S3 hung (connections taken, no answer): an upload waited as long as it lasted
    (45 s seen) and then answered 201, /readyz said storage was fine after as long. A call
    unanswered for storage_timeout_seconds now gives up: 503 STORAGE_UNAVAILABLE while
    it is still hung, and /readyz names storage."""
    proxy, endpoint = CuttableProxy.in_front_of(s3_endpoint)
    services = _services(
        tmp_path,
        db_url,
        storage_url=f"s3://{bucket}/photos",
        s3_endpoint_url=endpoint,
        storage_timeout_seconds=1.0,
    )
    photo = jpeg(tmp_path / "a.jpg", 600, 400).read_bytes()
    try:
        with serving(services, loopback_socket()) as base, httpx.Client(base_url=base) as http:
            proxy.hang()
            answer = http.post("/api/upload", files={"file": ("a.jpg", photo)}, timeout=60)
            ready = http.get("/readyz", timeout=60)
            proxy.restore()  # only now: the answers came while it was still hung
            assert answer.status_code == 503, answer.text
            assert answer.json()["errorCode"] == "STORAGE_UNAVAILABLE"
            assert ready.status_code == 503 and "storage" in ready.text, ready.text
            again = http.post("/api/upload", files={"file": ("a.jpg", photo)})
            assert again.status_code == 201, again.text
    finally:
        proxy.close()


def test_an_import_waits_out_a_storage_outage(
    db_url: str, bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    """`enlarger import` with storage out when it starts: it says it waits, then that the
    storage is back, and the file is imported; nothing fails."""
    proxy, endpoint = CuttableProxy.in_front_of(s3_endpoint)
    card = tmp_path / "card"
    card.mkdir()
    jpeg(card / "IMG_0001.JPG", 600, 400)
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO_ROOT),
        ENLARGER_DATA_DIR=str(tmp_path / "data"),
        ENLARGER_DATABASE_URL=db_url,
        ENLARGER_STORAGE_URL=f"s3://{bucket}/photos",
        ENLARGER_S3_ENDPOINT_URL=endpoint,
    )
    proxy.cut()
    command = [sys.executable, "-m", "enlarger", "import", str(card), "--project", "trip", "--json"]
    run = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(run.stderr or []), daemon=True)
    reader.start()
    try:  # storage comes back once the import said it waits for it
        wait_for(lambda: any("storage is unreachable; waiting" in line for line in said), 90)
        proxy.restore()
        out = run.stdout.read() if run.stdout else ""
        run.wait(60)
        reader.join(10)
    finally:
        run.kill()
        proxy.close()
    err = "".join(said)
    assert run.returncode == 0, err
    assert "storage is back" in err, err
    assert [json.loads(line)["status"] for line in out.splitlines()] == ["INGESTED"]


def test_the_first_request_after_a_database_restart_is_answered(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A restart of PostgreSQL closes every connection the API's pool holds: the first
    request after it answered 503 and the log told of an outage of a second that never
    was. The API checks a pooled connection before it uses it."""
    caplog.set_level(logging.WARNING)
    settings = FAST.replace(data_dir=tmp_path / "data", database_url=db_url)
    database = db_url.rsplit("/", 1)[-1]
    with TestClient(create_app(build_services(settings, pre_ping=True))) as http:
        assert http.get("/api/images").status_code == 200
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            closed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchone()
        assert closed is not None and closed[0] >= 1  # the pool's connection, as a restart
        answers = [http.get("/api/images").status_code for _ in range(3)]
    assert answers == [200, 200, 200]
    assert not _outage_lines(caplog)
