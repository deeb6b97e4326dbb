"""A worker on a host of its own, cut off by the network for 60 s: `enlarger serve
--workers 0` and two workers here, a third in a network namespace this test makes, joined
to this one by a virtual cable (veth), reaching PostgreSQL and S3 (moto) through proxies
on the cable's far end. Pulling the cable (the link down) is a partition: no reset, no
error, its packets go nowhere. The others rescue its jobs and go on; when the cable is
back its late results are refused, it works again, and nothing is lost or made twice.

Needs root (network namespaces); elsewhere it is skipped, never under CI."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from enlarger.db.engine import create_db_engine
from enlarger.db.schema import images, jobs
from tests import cluster as hosts
from tests.conftest import wait_for
from tests.outages import CuttableProxy

PARTITION_S = 60.0
PHOTOS = 40

pytestmark = hosts.CLUSTER_TEST


@dataclass(frozen=True)
class Island:
    """A network namespace joined to this one by a veth pair: `near` is this side's
    address, `far` the namespace's; `link` this side's end of the cable."""

    namespace: str
    link: str
    near: str
    far: str

    def cut(self) -> None:
        _ip("link", "set", self.link, "down")

    def join(self) -> None:
        _ip("link", "set", self.link, "up")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def island() -> Iterator[Island]:
    tag = f"enl{os.getpid() % 100_000}"
    subnet = f"10.231.{os.getpid() % 250 + 1}"
    made = Island(f"{tag}-ns", f"{tag}h", f"{subnet}.1", f"{subnet}.2")
    try:
        if os.geteuid() != 0 or shutil.which("ip") is None:
            raise PermissionError("network namespaces need root and iproute2")
        _ip("netns", "add", made.namespace)
    except (PermissionError, subprocess.CalledProcessError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"a host of its own cannot be made here: {exc}")
        pytest.skip(f"a host of its own cannot be made here: {exc}")
    far_end = f"{tag}n"
    inside = ("netns", "exec", made.namespace, "ip")
    try:
        _ip("link", "add", made.link, "type", "veth", "peer", "name", far_end)
        _ip("link", "set", far_end, "netns", made.namespace)
        _ip("addr", "add", f"{made.near}/24", "dev", made.link)
        _ip("link", "set", made.link, "up")
        _ip(*inside, "addr", "add", f"{made.far}/24", "dev", far_end)
        _ip(*inside, "link", "set", far_end, "up")
        _ip(*inside, "link", "set", "lo", "up")
        yield made
    finally:
        subprocess.run(["ip", "link", "del", made.link], capture_output=True)
        subprocess.run(["ip", "netns", "del", made.namespace], capture_output=True)


@pytest.mark.timeout(360)
def test_a_worker_cut_off_by_the_network_is_rescued_and_comes_back(
    island: Island, db_url: str, bucket: str, s3_endpoint: str, tmp_path: Path
) -> None:
    photos = hosts.shoot(tmp_path, PHOTOS + 10)
    engine = create_db_engine(db_url)  # straight to the server: the test's own view
    cluster = hosts.Cluster(tmp_path, db_url, bucket, s3_endpoint)
    database, database_url = CuttableProxy.in_front_of(db_url, listen_host=island.near)
    storage, endpoint = CuttableProxy.in_front_of(s3_endpoint, listen_host=island.near)
    try:
        cluster.start("api", "serve", "--port", str(cluster.port), "--workers", "0")
        wait_for(lambda: hosts.ready(cluster.base_url), timeout=60)
        others = [cluster.start(f"worker-{n}", "worker") for n in "ab"]
        away = cluster.start(
            "worker-away",
            "worker",
            prefix=("ip", "netns", "exec", island.namespace),
            env={"ENLARGER_DATABASE_URL": database_url, "ENLARGER_S3_ENDPOINT_URL": endpoint},
        )
        with ThreadPoolExecutor(1) as pool:  # cut off while it works, uploads going on
            uploading = pool.submit(hosts.upload, cluster.base_url, photos[:PHOTOS])
            held = wait_for(lambda: _running_on(engine, away.pid), timeout=60, interval=0.01)
            island.cut()
            cut_at = time.monotonic()
            ids = uploading.result(timeout=120)
        # the others rescue what it held and finish everything while it is away
        wait_for(lambda: hosts.stored(engine, ids) == PHOTOS, timeout=PARTITION_S - 5)
        finished = _statuses(engine, held)
        assert set(finished.values()) == {"completed"}, finished
        assert away.poll() is None  # it waits, without a word from anyone
        time.sleep(max(0.0, PARTITION_S - (time.monotonic() - cut_at)))
        island.join()

        # back on the network: its late results are refused, and it works again (alone
        # now, so what comes next is stored only if it does)
        wait_for(lambda: _outage_told(cluster, "worker-away"), timeout=60)
        for worker in others:
            worker.terminate()
            worker.wait(30)
        more = hosts.upload(cluster.base_url, photos[PHOTOS:])
        wait_for(lambda: hosts.stored(engine, more) == len(more), timeout=120)
        assert away.poll() is None
        everything = ids + more
        with engine.connect() as conn:
            statuses = conn.execute(sa.select(images.c.status)).scalars().all()
        assert statuses == ["STORED"] * len(everything)
        hosts.assert_made_once(engine, len(everything))
        hosts.assert_in_the_bucket(engine, bucket, s3_endpoint)
        log = cluster.log_text()
        assert "Traceback" not in log, log[-3000:]
    finally:
        cluster.stop()
        database.close()
        storage.close()
        engine.dispose()


def _running_on(engine: sa.Engine, pid: int) -> list[int]:
    """Jobs running on the worker process `pid` (its id is host:pid:random)."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(jobs.c.id).where(
                    jobs.c.status == "running", jobs.c.locked_by.like(f"%:{pid}:%")
                )
            ).scalars()
        )


def _statuses(engine: sa.Engine, job_ids: list[int]) -> dict[int, str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(jobs.c.id, jobs.c.status).where(jobs.c.id.in_(job_ids)))
        return {row.id: row.status for row in rows}


def _outage_told(cluster: hosts.Cluster, name: str) -> bool:
    """The worker said the database went and that it is back."""
    said = (cluster.root / f"{name}.log").read_text(errors="replace")
    return "database unreachable" in said and "database reachable again" in said
