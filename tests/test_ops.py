"""The operational surface: readiness, Prometheus metrics, request ids."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from enlarger.db import migrate
from enlarger.library.library import Library
from enlarger.logs import OutageLog
from enlarger.queue import Worker
from enlarger.storage.local import LocalBlobStore
from tests.conftest import wait_for
from tests.images import jpeg

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(client: httpx.Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_readyz_checks_database_migrations_and_storage(
    client: httpx.Client, library: Library, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    ready = client.get("/readyz")
    assert ready.status_code == 200
    said = [r.getMessage() for r in caplog.records if r.name.startswith("alembic")]
    assert said == [], said  # a probe every few seconds must not fill the log
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "storage": "ok"},
    }

    assert isinstance(library.blobs, LocalBlobStore)
    probe_folder = library.blobs.root / ".readyz"
    probe_folder.rmdir()  # left by the first probe, empty
    probe_folder.write_text("a file where the probe's folder goes")
    migrate.downgrade(library.engine, "-1")
    try:
        broken = client.get("/readyz")
        assert broken.status_code == 503
        checks = broken.json()["checks"]
        assert checks["database"] == "ok"
        assert checks["migrations"].endswith("run enlarger db upgrade")
        assert checks["storage"].startswith("not writable")
        assert client.get("/healthz").status_code == 200  # up, though not ready
    finally:
        migrate.upgrade(library.engine)
        probe_folder.unlink()
    assert client.get("/readyz").status_code == 200


def test_metrics_count_jobs_runs_storage_and_requests(
    client: httpx.Client, run_worker: Callable[[], Worker], tmp_path: Path
) -> None:
    source = jpeg(tmp_path / "m.jpg", 1200, 800)
    uploaded = client.post("/api/upload", files={"file": ("m.jpg", source.read_bytes())})
    assert uploaded.status_code == 201
    image_id = uploaded.json()["imageId"]
    before = _scrape(client)
    assert _value(before, "enlarger_jobs", type="OFFLOAD_ORIGINAL", status="pending") == 1
    assert _value(before, "enlarger_queue_lag_seconds") is not None

    worker = run_worker()
    wait_for(lambda: client.get(f"/api/images/{image_id}").json()["status"] == "STORED", 60)
    worker.stop(timeout=10)  # a stopping worker saves its counts
    samples = _scrape(client)

    completed = _value(samples, "enlarger_jobs", type="OFFLOAD_ORIGINAL", status="completed")
    assert completed == 1
    outcomes = _value(
        samples, "enlarger_job_outcomes_total", type="OFFLOAD_ORIGINAL", outcome="completed"
    )
    assert outcomes == 1
    assert _value(samples, "enlarger_job_run_seconds_count", type="OFFLOAD_ORIGINAL") == 1
    assert _value(samples, "enlarger_job_run_seconds_sum", type="OFFLOAD_ORIGINAL") > 0
    assert (
        _value(samples, "enlarger_job_run_seconds_bucket", type="OFFLOAD_ORIGINAL", le="+Inf") == 1
    )
    image = client.get(f"/api/images/{image_id}").json()
    made = image["sizes"]
    assert _value(samples, "enlarger_derivatives_written_total") == len(made) == 5
    assert _value(samples, "enlarger_derivatives_stored") == len(made)
    assert _value(samples, "enlarger_bytes_stored", kind="original") == source.stat().st_size
    assert _value(samples, "enlarger_bytes_stored", kind="derivative") > 0
    assert _value(samples, "enlarger_images", status="STORED") == 1
    assert _value(samples, "enlarger_jobs_rescued_total") == 0
    assert _value(samples, "enlarger_queue_lag_seconds") == 0
    upload_count = _value(
        samples, "enlarger_http_requests_total", route="/api/upload", method="POST", status="201"
    )
    assert upload_count == 1
    assert _value(samples, "enlarger_http_request_seconds_count", route="/api/upload") == 1


def test_every_response_carries_a_request_id(client: httpx.Client) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = client.get("/api/images/nope", headers={"X-Request-ID": "no good\\id"})
    assert made.status_code == 404
    assert len(made.headers["x-request-id"]) == 32 and made.headers["x-request-id"].isalnum()
    assert client.get("/healthz").headers["x-request-id"] != made.headers["x-request-id"]


def test_an_outage_is_three_lines_and_a_flapping_one_is_told_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    outages = OutageLog(logging.getLogger("enlarger.test"), remind_every_s=60, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="enlarger.test")
    for second in range(0, 90):  # a request a second for 90 s of outage
        now[0] = second
        outages.down("database", "refused")
    now[0] = 90
    outages.up("database")
    for second in (100, 101, 103):  # out for a second or two, three times, within the minute
        now[0] = second
        outages.down("database", "refused")
        now[0] += 1 + (second == 103)
        outages.up("database")
    now[0] = 149  # all is well since: a minute after the last line, the flaps are told of
    outages.up("database")
    now[0] = 151
    outages.up("database")
    outages.up("database")
    now[0] = 300  # a new outage, long after
    outages.down("database", "refused")
    assert [r.getMessage() for r in caplog.records] == [
        "database unreachable: refused (retrying; the next errors are not logged)",
        "database still unreachable after 60 s: refused",
        "database reachable again after 90 s",
        "database was unreachable 3 more times since, for at most 2 s (flapping)",
        "database unreachable: refused (retrying; the next errors are not logged)",
    ]
