"""Many hosts, real failures: `enlarger serve --workers 0` and three `enlarger worker`
processes, each with its own data directory, on one PostgreSQL database and one S3 bucket
(moto), both reached through proxies this test owns. 100 photos are uploaded over HTTP
with the Python client while one worker is SIGKILLed (and replaced), another frozen with
SIGSTOP for 30 s, S3 cut off for 20 s and PostgreSQL cut off for 20 s. Every image ends
STORED, with its files in the bucket; no preview or thumbnail is made twice; and work goes
on while the worker is frozen."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from enlarger.db.engine import create_db_engine
from enlarger.db.schema import images
from tests.cluster import (
    CLUSTER_TEST,
    PRIORITISED,
    Cluster,
    assert_in_the_bucket,
    assert_made_once,
    ready,
    shoot,
    stored,
    upload,
)
from tests.conftest import wait_for

BATCH = 25  # photos per quarter of the test
FREEZE_S = 30.0
OUTAGE_S = 20.0

pytestmark = CLUSTER_TEST


@pytest.fixture
def cluster(db_url: str, bucket: str, s3_endpoint: str, tmp_path: Path) -> Iterator[Cluster]:
    installation = Cluster(tmp_path, db_url, bucket, s3_endpoint)
    try:
        yield installation
    finally:
        installation.stop()


def _rate(engine: sa.Engine, image_ids: list[str], within_s: float) -> float:
    """Images of `image_ids` stored per second, from now until all are or `within_s`
    passes."""
    started = time.monotonic()
    while time.monotonic() - started < within_s and stored(engine, image_ids) < len(image_ids):
        time.sleep(0.2)
    return stored(engine, image_ids) / (time.monotonic() - started)


@pytest.mark.timeout(420)
def test_workers_on_many_hosts_ride_out_kills_freezes_and_outages(
    cluster: Cluster, db_url: str, bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    photos = shoot(tmp_path, 4 * BATCH)
    phases = [photos[i * BATCH : (i + 1) * BATCH] for i in range(4)]
    engine = create_db_engine(db_url)  # straight to the server: the test's own view

    cluster.start("api", "serve", "--port", str(cluster.port), "--workers", "0")
    wait_for(lambda: ready(cluster.base_url), timeout=60)
    workers = [cluster.start(f"worker-{n}", "worker") for n in range(3)]

    # phase 1: one worker SIGKILLed while it works, and replaced
    first = upload(cluster.base_url, phases[0])
    wait_for(lambda: stored(engine, first) >= 5, timeout=60)
    workers[2].kill()
    workers.append(cluster.start("worker-3", "worker"))
    wait_for(lambda: stored(engine, first) == len(first), timeout=120)

    # phase 2: the rate with all three workers, then with one of them frozen for 30 s
    before = upload(cluster.base_url, phases[1][: BATCH // 2])
    rate_before = _rate(engine, before, 60)
    workers[0].send_signal(signal.SIGSTOP)
    frozen_at = time.monotonic()
    during = upload(cluster.base_url, phases[1][BATCH // 2 :])
    rate_frozen = _rate(engine, during, FREEZE_S - (time.monotonic() - frozen_at))
    stored_while_frozen = stored(engine, during)
    time.sleep(max(0.0, FREEZE_S - (time.monotonic() - frozen_at)))  # the freeze lasts 30 s
    workers[0].send_signal(signal.SIGCONT)
    print(f"stored per second: {rate_before:.2f} before the freeze, {rate_frozen:.2f} during")
    # Work goes on while a worker is frozen: what arrived meanwhile is all stored before
    # it thaws (a frozen lock holder stopped every host's offloads for the whole 30 s),
    # at least half as fast as before. The rates are the cluster's own only when it runs
    # ahead of the rest of the suite (as root): else its share of the two cores falls with
    # one worker fewer (ratios of 0.3-0.4 seen beside the suite; 1.2-1.9 alone).
    assert stored_while_frozen == len(during), (stored_while_frozen, rate_before, rate_frozen)
    if PRIORITISED:
        assert rate_frozen >= rate_before / 2, (rate_before, rate_frozen)

    # phase 3: S3 cut off for 20 s, and 10 s into it PostgreSQL for 20 s, while photos
    # arrive: uploads answer 503 and are sent again, jobs wait for the service they need
    last = _upload_during_outages(cluster, engine, phases[2] + phases[3])

    everything = first + before + during + last
    assert len(set(everything)) == 4 * BATCH
    wait_for(lambda: stored(engine, everything) == 4 * BATCH, timeout=240)
    with engine.connect() as conn:
        statuses = Counter(conn.execute(sa.select(images.c.status)).scalars())
    assert statuses == {"STORED": 4 * BATCH}, statuses
    assert_made_once(engine, 4 * BATCH)
    assert_in_the_bucket(engine, bucket, s3_endpoint)
    log = cluster.log_text()
    assert "Traceback" not in log, log[-3000:]
    lines_per_process = log.count("database unreachable") / len(cluster.processes)
    assert 0 < lines_per_process <= 2, log.count("database unreachable")  # not one per try
    engine.dispose()


def _upload_during_outages(cluster: Cluster, engine: sa.Engine, photos: list[Path]) -> list[str]:
    """Upload `photos`; once a fifth of them are in, cut storage for OUTAGE_S seconds and,
    halfway through, the database for as long: the workers meet the outages in their jobs
    and the rest of the uploads at the API. Their ids."""
    known = _image_count(engine)
    with ThreadPoolExecutor(1) as pool:
        uploaded = pool.submit(upload, cluster.base_url, photos)
        wait_for(lambda: _image_count(engine) >= known + len(photos) // 5, timeout=60)
        cluster.storage.cut()
        time.sleep(OUTAGE_S / 2)
        cluster.database.cut()
        time.sleep(OUTAGE_S / 2)
        cluster.storage.restore()
        time.sleep(OUTAGE_S / 2)
        cluster.database.restore()
        return uploaded.result(timeout=240)


def _image_count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(images)).scalar_one())
