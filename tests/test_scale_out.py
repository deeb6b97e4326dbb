"""Many hosts, real failures: `enlarger serve --workers 0` and three `enlarger worker`
processes, each with its own data directory, on one PostgreSQL database and one S3 bucket
(moto), both reached through proxies this test owns. 100 photos are uploaded over HTTP
with the Python client while one worker is SIGKILLed (and replaced), another frozen with
SIGSTOP for 30 s, S3 cut off for 20 s and PostgreSQL cut off for 20 s. Every image ends
STORED, with its files in the bucket; no preview or thumbnail is made twice; and work goes
on while the worker is frozen."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
import pytest
import sqlalchemy as sa

from enlarger.client import EnlargerClient
from enlarger.db import create_db_engine
from enlarger.db.schema import derivatives, images, job_history, jobs
from tests.conftest import wait_for
from tests.images import jpeg
from tests.outages import CuttableProxy

REPO_ROOT = Path(__file__).resolve().parent.parent
BATCH = 25  # photos per quarter of the test
FREEZE_S = 30.0
OUTAGE_S = 20.0

pytestmark = [
    pytest.mark.parametrize("backend", ["postgres"], indirect=True),
    pytest.mark.long_wait,
]


# As root, the cluster's processes run ahead of the rest of the suite on the CPU, so the
# rates compared below are the cluster's own, not its share beside other tests.
PRIORITISED = os.geteuid() == 0


def _ahead_of_the_suite() -> None:
    os.nice(-10)


class Cluster:
    """The processes of the installation, on one database and one bucket via proxies."""

    def __init__(self, root: Path, db_url: str, bucket: str, s3_endpoint: str) -> None:
        self.root = root
        self.database, database_url = CuttableProxy.in_front_of(db_url)
        self.storage, endpoint = CuttableProxy.in_front_of(s3_endpoint)
        self.env = dict(
            os.environ,
            PYTHONPATH=str(REPO_ROOT),
            ENLARGER_DATABASE_URL=database_url,
            ENLARGER_STORAGE_URL=f"s3://{bucket}/library",
            ENLARGER_S3_ENDPOINT_URL=endpoint,
            ENLARGER_SECRET_KEY="scale-out-test-secret-key-0123456789",
            ENLARGER_LOG_LEVEL="WARNING",
            ENLARGER_MAX_PARALLEL_JOBS="2",
            # leases renewed every second and rescued 3 s after a worker stops renewing
            # them (10 s by default): the frozen worker's jobs come back sooner
            ENLARGER_HEARTBEAT_MS="1000",
            ENLARGER_STALE_SECONDS="3",
        )
        self.processes: list[subprocess.Popen[bytes]] = []
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"

    def start(self, name: str, *command: str) -> subprocess.Popen[bytes]:
        data_dir = self.root / name
        data_dir.mkdir()
        log = (self.root / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "enlarger", *command],
            cwd=data_dir,
            env=self.env | {"ENLARGER_DATA_DIR": str(data_dir)},
            stderr=log,
            preexec_fn=_ahead_of_the_suite if PRIORITISED else None,
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
            process.wait(10)
        self.database.close()
        self.storage.close()

    def log_text(self) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text(errors='replace')}" for p in sorted(self.root.glob("*.log"))
        )


@pytest.fixture
def cluster(db_url: str, bucket: str, s3_endpoint: str, tmp_path: Path) -> Iterator[Cluster]:
    installation = Cluster(tmp_path, db_url, bucket, s3_endpoint)
    try:
        yield installation
    finally:
        installation.stop()


def _upload(base_url: str, photos: list[Path]) -> list[str]:
    """Upload as an application would, four at a time; 503s are waited out."""

    def send(path: Path) -> str:
        with EnlargerClient(base_url, timeout=60, outage_wait=180) as client:
            return str(client.upload_image(path, collection="shoot")["imageId"])

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(send, photos))


def _stored(engine: sa.Engine, image_ids: list[str]) -> int:
    try:
        with engine.connect() as conn:
            query = sa.select(sa.func.count()).where(
                images.c.id.in_(image_ids), images.c.status == "STORED"
            )
            return int(conn.execute(query).scalar_one())
    except sa.exc.OperationalError:
        return 0


def _rate(engine: sa.Engine, image_ids: list[str], within_s: float) -> float:
    """Images of `image_ids` stored per second, from now until all are or `within_s`
    passes."""
    started = time.monotonic()
    while time.monotonic() - started < within_s and _stored(engine, image_ids) < len(image_ids):
        time.sleep(0.2)
    return _stored(engine, image_ids) / (time.monotonic() - started)


@pytest.mark.timeout(420)
def test_workers_on_many_hosts_ride_out_kills_freezes_and_outages(
    cluster: Cluster, db_url: str, bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    photos = [jpeg(shoot / f"IMG_{n:04d}.JPG", 320 + n, 240) for n in range(4 * BATCH)]
    phases = [photos[i * BATCH : (i + 1) * BATCH] for i in range(4)]
    engine = create_db_engine(db_url)  # straight to the server: the test's own view

    cluster.start("api", "serve", "--port", str(cluster.port), "--workers", "0")
    wait_for(lambda: _ready(cluster.base_url), timeout=60)
    workers = [cluster.start(f"worker-{n}", "worker") for n in range(3)]

    # phase 1: one worker SIGKILLed while it works, and replaced
    first = _upload(cluster.base_url, phases[0])
    wait_for(lambda: _stored(engine, first) >= 5, timeout=60)
    workers[2].kill()
    workers.append(cluster.start("worker-3", "worker"))
    wait_for(lambda: _stored(engine, first) == len(first), timeout=120)

    # phase 2: the rate with all three workers, then with one of them frozen for 30 s
    before = _upload(cluster.base_url, phases[1][: BATCH // 2])
    rate_before = _rate(engine, before, 60)
    workers[0].send_signal(signal.SIGSTOP)
    frozen_at = time.monotonic()
    during = _upload(cluster.base_url, phases[1][BATCH // 2 :])
    rate_frozen = _rate(engine, during, FREEZE_S - (time.monotonic() - frozen_at))
    stored_while_frozen = _stored(engine, during)
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
    wait_for(lambda: _stored(engine, everything) == 4 * BATCH, timeout=240)
    with engine.connect() as conn:
        statuses = Counter(conn.execute(sa.select(images.c.status)).scalars())
    assert statuses == {"STORED": 4 * BATCH}, statuses
    _assert_made_once(engine)
    _assert_in_the_bucket(engine, bucket, s3_endpoint)
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
        uploaded = pool.submit(_upload, cluster.base_url, photos)
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


def _ready(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _assert_made_once(engine: sa.Engine) -> None:
    """Each image has its five derivatives, and no two job executions rendered its preview
    or its thumbnails (one that was killed or lost its lease before it could say so left
    them to the run after it, which found them made)."""
    made: Counter[tuple[str, str]] = Counter()
    with engine.connect() as conn:
        per_image = Counter(conn.execute(sa.select(derivatives.c.image_id)).scalars())
        assert len(per_image) == 4 * BATCH and set(per_image.values()) == {5}, per_image
        for table in (jobs, job_history):
            rows = conn.execute(
                sa.select(table.c.type, table.c.payload, table.c.result).where(
                    table.c.type.in_(("PREVIEW_GENERATION", "THUMBNAIL_GENERATION")),
                    table.c.status == "completed",
                )
            )
            for job_type, payload, result in rows:
                if result and "derivatives" in result:
                    made[(job_type, payload["imageId"])] += 1
    assert len(made) >= 2 * 4 * BATCH - 10, len(made)
    twice = {key: n for key, n in made.items() if n > 1}
    assert not twice, twice


def _assert_in_the_bucket(engine: sa.Engine, bucket: str, s3_endpoint: str) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    listed = {
        entry["Key"].removeprefix("library/"): entry["Size"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for entry in page.get("Contents", [])
    }
    with engine.connect() as conn:
        originals = dict(conn.execute(sa.select(images.c.original_key, images.c.size_bytes)).all())
    missing = {key for key in originals if listed.get(key) != originals[key]}
    assert not missing, sorted(missing)[:5]
