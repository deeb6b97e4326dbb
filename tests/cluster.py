"""An installation of several hosts for the tests that break them (test_scale_out,
test_partition): `enlarger serve` and `enlarger worker` processes, each with its own data
directory, on one PostgreSQL database and one S3 bucket (moto) reached through proxies
the test owns; and the checks that such a run lost and repeated nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
import pytest
import sqlalchemy as sa

from enlarger.client import EnlargerClient
from enlarger.db.schema import derivatives, images, job_history, jobs
from tests.images import jpeg
from tests.outages import CuttableProxy

REPO_ROOT = Path(__file__).resolve().parent.parent
# the tests of such installations: PostgreSQL only, minutes of waiting, started first
CLUSTER_TEST = [
    pytest.mark.parametrize("backend", ["postgres"], indirect=True),
    pytest.mark.long_wait,
]
DERIVATIVES_PER_IMAGE = 5  # the preview and four thumbnails

# As root, the cluster's processes run ahead of the rest of the suite on the CPU, so the
# rates a test compares are the cluster's own, not its share beside other tests.
PRIORITISED = os.geteuid() == 0


def _ahead_of_the_suite() -> None:
    os.nice(-10)


class Cluster:
    """The processes of the installation, on one database and one bucket via proxies."""

    def __init__(self, root: Path, db_url: str, bucket: str, s3_endpoint: str) -> None:
        self.root = root
        self.bucket = bucket
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
            # them (10 s by default): a lost worker's jobs come back sooner
            ENLARGER_HEARTBEAT_MS="1000",
            ENLARGER_STALE_SECONDS="3",
        )
        self.processes: list[subprocess.Popen[bytes]] = []
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"

    def start(
        self,
        name: str,
        *command: str,
        prefix: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """`enlarger <command>` as process `name`, started by `prefix` (say, `ip netns
        exec`) with `env` over the cluster's environment."""
        data_dir = self.root / name
        data_dir.mkdir()
        log = (self.root / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "enlarger", *command],
            cwd=data_dir,
            env=self.env | (env or {}) | {"ENLARGER_DATA_DIR": str(data_dir)},
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


def shoot(folder: Path, count: int) -> list[Path]:
    """`count` small JPEGs of distinct sizes (so distinct files) in `folder`/shoot."""
    made = folder / "shoot"
    made.mkdir()
    return [jpeg(made / f"IMG_{n:04d}.JPG", 320 + n, 240) for n in range(count)]


def upload(base_url: str, photos: list[Path]) -> list[str]:
    """Upload as an application would, four at a time; 503s are waited out."""

    def send(path: Path) -> str:
        with EnlargerClient(base_url, timeout=60, outage_wait=180) as client:
            return str(client.upload_image(path, collection="shoot")["imageId"])

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(send, photos))


def stored(engine: sa.Engine, image_ids: list[str]) -> int:
    try:
        with engine.connect() as conn:
            query = sa.select(sa.func.count()).where(
                images.c.id.in_(image_ids), images.c.status == "STORED"
            )
            return int(conn.execute(query).scalar_one())
    except sa.exc.OperationalError:
        return 0


def ready(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def assert_made_once(engine: sa.Engine, image_count: int) -> None:
    """Each image has its derivatives, and no two job executions rendered them (one that
    was killed or lost its lease before it could say so left them to the run after it,
    which found them made)."""
    made: Counter[tuple[str, str]] = Counter()
    with engine.connect() as conn:
        per_image = Counter(conn.execute(sa.select(derivatives.c.image_id)).scalars())
        assert len(per_image) == image_count, per_image
        assert set(per_image.values()) == {DERIVATIVES_PER_IMAGE}, per_image
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
    assert len(made) >= image_count - 10, len(made)  # one job renders an image's set
    twice = {key: n for key, n in made.items() if n > 1}
    assert not twice, twice


def assert_in_the_bucket(engine: sa.Engine, bucket: str, s3_endpoint: str) -> None:
    """Every original the database lists lies in the bucket, with its size."""
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
