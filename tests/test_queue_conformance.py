"""The job engine's guarantees, each checked on SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from enlarger.db import engine as db_engine
from enlarger.db import migrate
from enlarger.db.engine import SQLITE_BUSY_TIMEOUT_MS, create_db_engine
from enlarger.db.schema import job_events, job_schedules
from enlarger.db.schema import jobs as jobs_table
from enlarger.db.types import db_now
from enlarger.queue import (
    ErrorCode,
    FailedJob,
    ItemStatus,
    JobConflict,
    JobQueue,
    JobStatus,
    NewJob,
    Registry,
    Schedule,
    Store,
    as_dependency_down,
    store_for_engine,
)
from enlarger.queue.context import CancelFlag
from enlarger.queue.cpu import ChildTask, CpuPool
from enlarger.queue.model import ClaimRequest, Outcome, OutcomeKind
from enlarger.queue.store import EVENT_GAP_GRACE_S, Topic
from tests import handlers
from tests.conftest import TEST_RUNS_DDL, runs, wait_for
from tests.handlers import cpu_pid

REPO_ROOT = Path(__file__).resolve().parent.parent


def start_worker_process(db_url: str, cwd: Path, **env: str) -> subprocess.Popen[bytes]:
    """`enlarger worker` in its own process, with the test handlers and `env` settings."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "enlarger",
            "worker",
            "--database-url",
            db_url,
            "--handlers",
            "tests.handlers:registry",
        ],
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), ENLARGER_LOG_LEVEL="WARNING", **env),
    )


def status_of(store: Store, job_id: int) -> JobStatus:
    job = store.get_job(job_id)
    assert job is not None
    return job.status


def wait_status(store: Store, job_id: int, *statuses: JobStatus, timeout: float = 15.0) -> None:
    wait_for(lambda: status_of(store, job_id) in statuses, timeout)


# ---- claiming -----------------------------------------------------------------------


# a claimer waits this long at the start line for the others (new processes on busy cores)
START_LINE_TIMEOUT_S = 60


def _claim_until_empty(db_url: str, worker_id: str, start_line: threading.Barrier) -> list[int]:
    """Claim (and complete) in batches of 7 until the queue stays empty; every claimer
    connects, then waits at `start_line` until all are there, so they really compete
    (a start at a set time let one process drain the queue while another still started)."""
    store = store_for_engine(create_db_engine(db_url))
    store.paused_types()  # connect before the start line
    start_line.wait(START_LINE_TIMEOUT_S)
    seen: list[int] = []
    outcomes: list[Outcome] = []
    idle = 0
    while idle < 3:
        _, (claimed,) = store.exchange(worker_id, outcomes, [ClaimRequest(7)], 30)
        outcomes = [Outcome(j.id, j.lease_token, OutcomeKind.COMPLETED) for j in claimed]
        seen.extend(j.id for j in claimed)
        idle = 0 if claimed else idle + 1
        time.sleep(0.002)  # "work": lets SQLite's backing-off writers in
    store.engine.dispose()
    return seen


def test_no_job_handed_to_two_claimers_threads(store: Store, db_url: str) -> None:
    ids = [r.id for r in store.enqueue_many([NewJob("noop") for _ in range(1000)])]
    results: list[list[int]] = [[] for _ in range(4)]
    start_line = threading.Barrier(len(results))

    def claimer(n: int) -> None:
        results[n] = _claim_until_empty(db_url, f"thread-{n}", start_line)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [job_id for chunk in results for job_id in chunk]
    assert len(claimed) == len(set(claimed)), "a job was handed out twice"
    assert sorted(claimed) == sorted(ids)
    assert sum(1 for chunk in results if chunk) >= 2, "only one claimer got work"


def _claim_into_file(db_url: str, worker_id: str, start_line: threading.Barrier, out: Path) -> None:
    out.write_text(json.dumps(_claim_until_empty(db_url, worker_id, start_line)))


def test_no_job_handed_to_two_claimers_processes(store: Store, db_url: str, tmp_path: Path) -> None:
    ids = [r.id for r in store.enqueue_many([NewJob("noop") for _ in range(1500)])]
    spawn = multiprocessing.get_context("spawn")
    outputs = [tmp_path / f"claims-{n}.json" for n in range(3)]
    start_line = spawn.Barrier(len(outputs))
    processes = [
        spawn.Process(target=_claim_into_file, args=(db_url, f"proc-{n}", start_line, out))
        for n, out in enumerate(outputs)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(START_LINE_TIMEOUT_S + 30)
        assert process.exitcode == 0
    results = [json.loads(out.read_text()) for out in outputs]
    claimed = [job_id for chunk in results for job_id in chunk]
    assert len(claimed) == len(set(claimed)), "a job was handed out twice"
    assert sorted(claimed) == sorted(ids)
    assert sum(1 for chunk in results if chunk) >= 2, "only one claimer got work"
    assert store.counts() == {("noop", "completed"): 1500}


# ---- fencing and rescue -------------------------------------------------------------


def _expire_leases(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            jobs_table.update()
            .where(jobs_table.c.status == "running")
            .values(lease_expires_at=jobs_table.c.locked_at)
        )


def test_stale_token_changes_nothing(store: Store, engine: sa.Engine) -> None:
    job_id = store.enqueue(NewJob("echo", items=["a"])).id
    _, ((first,),) = store.exchange("slow-worker", [], [ClaimRequest(1)], 30)
    _expire_leases(engine)
    assert store.rescue_expired() == [job_id]
    _, ((second,),) = store.exchange("rescuer", [], [ClaimRequest(1)], 30)
    assert second.id == job_id and second.lease_token == first.lease_token + 1

    stale = Outcome(job_id, first.lease_token, OutcomeKind.COMPLETED, result="stale")
    accepted, _ = store.exchange("slow-worker", [stale], [], 30)
    assert accepted == []
    assert not store.set_progress(job_id, first.lease_token, 0.5)
    assert not store.update_item(job_id, first.lease_token, "a", ItemStatus.DONE)
    assert store.heartbeat({job_id: first.lease_token}, 30).lost == {job_id}
    job = store.get_job(job_id)
    assert job is not None
    assert (job.status, job.result, job.progress) == (JobStatus.RUNNING, None, None)
    assert store.list_items(job_id)[0].status == ItemStatus.PENDING

    fresh = Outcome(job_id, second.lease_token, OutcomeKind.COMPLETED, result="fresh")
    accepted, _ = store.exchange("rescuer", [fresh], [], 30)
    assert accepted == [job_id]
    job = store.get_job(job_id)
    assert job is not None and job.result == "fresh" and job.attempts == 2


def test_rescue_after_sigkill_of_worker_process(
    queue: JobQueue, db_url: str, engine: sa.Engine, make_worker, tmp_path: Path
) -> None:
    job_id = queue.enqueue("record", {"db": db_url, "sleep_first": 60}).id
    victim = start_worker_process(
        db_url, tmp_path, ENLARGER_STALE_SECONDS="2", ENLARGER_HEARTBEAT_MS="200"
    )
    try:
        wait_for(lambda: runs(engine, job_id), timeout=30)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed_at = time.monotonic()
    finally:
        victim.kill()
    make_worker()
    wait_status(queue.store, job_id, JobStatus.COMPLETED, timeout=20)
    rescued_after = time.monotonic() - killed_at
    job = queue.store.get_job(job_id)
    assert job is not None and job.attempts == 2
    assert [what for _, what, _ in runs(engine, job_id)] == ["run:1", "run:2"]
    assert rescued_after < 15, f"rescue took {rescued_after:.1f} s"


# ---- retries and errors ----------------------------------------------------------------


def test_retries_until_success_with_backoff(queue: JobQueue, make_worker) -> None:
    job_id = queue.enqueue("flaky", {"succeed_on": 3}).id
    make_worker()
    wait_status(queue.store, job_id, JobStatus.COMPLETED)
    job = queue.store.get_job(job_id)
    assert job is not None and job.attempts == 3 and job.result == "ok on attempt 3"
    starts = [
        e.created_at
        for e in queue.store.read_events()
        if e.job_id == job_id and e.kind == "job" and e.status == "running"
    ]
    assert len(starts) == 3
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    # base 0.2 s, jitter ±20 %: ≥ 0.16 s after attempt 1, ≥ 0.32 s after attempt 2
    assert gaps[0] >= 0.16 and gaps[1] >= 0.32, gaps


def test_max_attempts_bounds_retries(queue: JobQueue, make_worker) -> None:
    job_id = queue.enqueue("flaky", {"succeed_on": 99}).id  # handler default: 4 attempts
    make_worker()
    wait_status(queue.store, job_id, JobStatus.FAILED, timeout=20)
    job = queue.store.get_job(job_id)
    assert job is not None
    assert (job.attempts, job.max_attempts, job.error_code) == (4, 4, "HANDLER_ERROR")
    assert "attempt 4 fails" in (job.last_error or "")


@pytest.mark.parametrize(
    ("backend", "job_type", "code"),
    [
        ("sqlite", "outage", "STORAGE_UNAVAILABLE"),
        ("postgres", "cpu_outage", "DATABASE_UNAVAILABLE"),
    ],
    indirect=["backend"],
)
def test_an_outage_is_waited_out_without_spending_attempts(
    queue: JobQueue, make_worker, job_type: str, code: str, tmp_path: Path
) -> None:
    """A dependency out for a while costs a one-attempt job nothing: it waits (its error
    saying which service) and completes on its first counted attempt once the service is
    back; once the outage budget is spent, the outage counts like any failure."""
    outage = tmp_path / "outage"
    outage.touch()
    waits = queue.enqueue(job_type, {"outage_flag": str(outage)}).id
    patient = make_worker(outage_budget_seconds=60)
    wait_for(lambda: (queue.store.get_job(waits) or waits).error_code == code, timeout=60)
    outage.unlink()  # the service is back
    wait_status(queue.store, waits, JobStatus.COMPLETED, timeout=60)
    job = queue.store.get_job(waits)
    assert job is not None and (job.attempts, job.result) == (1, 1)
    tries = [e for e in queue.store.read_events() if e.job_id == waits and e.status == "running"]
    assert len(tries) >= 2
    patient.stop(timeout=10)

    outage.touch()  # out again, for good
    spent = queue.enqueue(job_type, {"outage_flag": str(outage)}).id
    make_worker(outage_budget_seconds=1)
    wait_status(queue.store, spent, JobStatus.FAILED, timeout=60)
    job = queue.store.get_job(spent)
    assert job is not None and (job.attempts, job.error_code) == (1, code)


def test_permanent_errors_fail_at_once(queue: JobQueue, make_worker) -> None:
    """A declared failure's error is its own words (its code says what kind); any other
    exception keeps its type's name, the one clue to a handler's bug."""
    corrupt = queue.enqueue("broken_input").id
    declared = queue.enqueue("value_error").id
    make_worker()
    errors = {}
    for job_id, code in ((corrupt, "CORRUPT_IMAGE"), (declared, "HANDLER_ERROR")):
        wait_status(queue.store, job_id, JobStatus.FAILED)
        job = queue.store.get_job(job_id)
        assert job is not None and job.attempts == 1 and job.error_code == code
        errors[job_id] = job.last_error
    assert errors == {
        corrupt: "the bytes are not an image",
        declared: "ValueError: bad input, declared permanent",
    }


def test_unknown_type_fails_clearly(queue: JobQueue, make_worker) -> None:
    job_id = queue.enqueue("no_such_type").id
    make_worker()
    wait_status(queue.store, job_id, JobStatus.FAILED)
    job = queue.store.get_job(job_id)
    assert job is not None and job.attempts == 1
    assert job.error_code == ErrorCode.UNKNOWN_JOB_TYPE
    assert "no_such_type" in (job.last_error or "")


def test_timeouts(queue: JobQueue, make_worker) -> None:
    io_job = queue.enqueue("sleep", {"seconds": 30}, timeout_s=0.5, max_attempts=1).id
    cpu_job = queue.enqueue("cpu_spin", {"seconds": 30}, timeout_s=1.0, max_attempts=1).id
    async_job = queue.enqueue("async_sleep", {"seconds": 30}, timeout_s=0.5, max_attempts=1).id
    worker = make_worker()
    for job_id in (io_job, cpu_job, async_job):
        wait_status(queue.store, job_id, JobStatus.FAILED, timeout=20)
        job = queue.store.get_job(job_id)
        assert job is not None and job.error_code == ErrorCode.TIMEOUT
    counted = {(t, o): n for t, o, n in worker.telemetry.snapshot()["outcomes"]}
    assert counted == {
        ("sleep", "failed"): 1,
        ("cpu_spin", "failed"): 1,
        ("async_sleep", "failed"): 1,
    }


def test_a_failed_jobs_error_never_shows_a_path_of_the_server(
    queue: JobQueue, make_worker, tmp_path: Path
) -> None:
    missing = tmp_path / "server-only-folder" / "upload.tmp"
    job_id = queue.enqueue("open_missing", {"path": str(missing)}).id
    make_worker()
    wait_status(queue.store, job_id, JobStatus.FAILED)
    job = queue.store.get_job(job_id)
    assert job is not None and job.last_error == "FileNotFoundError: No such file or directory"


def test_crashing_cpu_child_fails_the_job_not_the_worker(queue: JobQueue, make_worker) -> None:
    crash = queue.enqueue("cpu_crash").id
    make_worker()
    wait_status(queue.store, crash, JobStatus.FAILED)
    job = queue.store.get_job(crash)
    assert job is not None and job.error_code == ErrorCode.WORKER_CRASHED
    after = queue.enqueue("cpu_pid").id
    wait_status(queue.store, after, JobStatus.COMPLETED)


# ---- lanes, idempotency, items ---------------------------------------------------------


def test_priority_lane_runs_while_backlog_runs(queue: JobQueue, make_worker) -> None:
    backlog = [queue.enqueue("sleep", {"seconds": 3}, priority=0).id for _ in range(4)]
    make_worker(max_parallel_jobs=2, priority_lane_slots=1, priority_threshold=90)
    wait_for(lambda: status_of(queue.store, backlog[0]) == JobStatus.RUNNING)
    urgent = queue.enqueue("echo", "now", priority=95).id
    wait_status(queue.store, urgent, JobStatus.COMPLETED, timeout=2.5)
    statuses = Counter(status_of(queue.store, job_id) for job_id in backlog)
    assert statuses[JobStatus.RUNNING] == 1, "the normal lane has one slot"
    assert statuses[JobStatus.PENDING] == 3, "the backlog must still be waiting"


def test_normal_lane_takes_highest_priority_first(queue: JobQueue, make_worker) -> None:
    low = queue.enqueue("echo", "low", priority=1).id
    high = queue.enqueue("echo", "high", priority=50).id
    make_worker(max_parallel_jobs=1, priority_lane_slots=0)
    wait_status(queue.store, low, JobStatus.COMPLETED)
    order = [e.job_id for e in queue.store.read_events() if e.status == "running"]
    assert order == [high, low]


def test_idempotency_under_concurrent_enqueue(store: Store, db_url: str) -> None:
    barrier = threading.Barrier(8)
    results = []
    lock = threading.Lock()

    def enqueue() -> None:
        own = store_for_engine(create_db_engine(db_url))
        barrier.wait()
        result = own.enqueue(NewJob("noop", idempotency_key="upload:abc"))
        with lock:
            results.append(result)
        own.engine.dispose()

    threads = [threading.Thread(target=enqueue) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r.id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert store.counts() == {("noop", "pending"): 1}


def test_idempotency_key_is_free_again_once_finished(store: Store) -> None:
    first = store.enqueue(NewJob("noop", idempotency_key="k"))
    _, ((claimed,),) = store.exchange("w", [], [ClaimRequest(1)], 30)
    store.exchange("w", [Outcome(claimed.id, claimed.lease_token, OutcomeKind.COMPLETED)], [], 30)
    second = store.enqueue(NewJob("noop", idempotency_key="k"))
    assert second.created and second.id != first.id


def test_itemized_job_reports_items_and_progress(queue: JobQueue, make_worker) -> None:
    keys = ["a.jpg", "bad.jpg", "c.jpg"]
    job_id = queue.enqueue("cpu_items", {"keys": keys}, items=keys).id
    make_worker()
    wait_status(queue.store, job_id, JobStatus.COMPLETED)
    job = queue.store.get_job(job_id)
    assert job is not None and job.progress == 1.0
    assert job.items_summary is not None
    assert (job.items_summary["done"], job.items_summary["failed"]) == (2, 1)
    items = {item.key: item for item in queue.store.list_items(job_id)}
    assert items["bad.jpg"].error == "bad file"
    item_events = [e for e in queue.store.read_events() if e.kind == "item"]
    assert {e.data["key"] for e in item_events} == set(keys)


def test_enqueue_joins_the_callers_transaction(queue: JobQueue, engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE domain_rows (name TEXT)")

    with pytest.raises(RuntimeError), engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO domain_rows VALUES ('rolled back')")
        queue.enqueue("noop", conn=conn)
        raise RuntimeError("the domain write failed")
    assert queue.store.counts() == {}

    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO domain_rows VALUES ('kept')")
        queue.enqueue("noop", conn=conn)
    assert queue.store.counts() == {("noop", "pending"): 1}


# ---- steering ----------------------------------------------------------------------------


def test_cancel_running_cpu_job_kills_its_process(
    queue: JobQueue, db_url: str, engine: sa.Engine, make_worker
) -> None:
    job_id = queue.enqueue("cpu_spin", {"seconds": 120, "db": db_url}).id
    make_worker()
    pid_row = wait_for(lambda: runs(engine, job_id), timeout=20)
    pid = int(pid_row[0][1].split(":")[1])
    assert psutil.pid_exists(pid)
    job = queue.store.cancel(job_id)
    assert job.cancel_requested
    wait_status(queue.store, job_id, JobStatus.CANCELLED, timeout=10)

    def gone() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(gone, timeout=10)


def test_cancel_pending_then_retry(queue: JobQueue, make_worker) -> None:
    job_id = queue.enqueue("echo", "x").id
    assert queue.store.cancel(job_id).status == JobStatus.CANCELLED
    with pytest.raises(JobConflict):
        queue.store.cancel(job_id)
    assert queue.store.retry(job_id).status == JobStatus.PENDING
    make_worker()
    wait_status(queue.store, job_id, JobStatus.COMPLETED)


def test_retry_of_failed_job_gets_fresh_attempts(queue: JobQueue, make_worker) -> None:
    job_id = queue.enqueue("broken_input").id
    make_worker()
    wait_status(queue.store, job_id, JobStatus.FAILED)
    retried = queue.store.retry(job_id)
    assert (retried.status, retried.attempts, retried.error_code) == (JobStatus.PENDING, 0, None)
    wait_status(queue.store, job_id, JobStatus.FAILED)
    with pytest.raises(KeyError):
        queue.store.retry(999_999)


def test_pause_and_resume_a_job_type(queue: JobQueue, make_worker) -> None:
    queue.store.pause("echo")
    paused = queue.enqueue("echo", "p").id
    other = queue.enqueue("noop").id
    make_worker()
    wait_status(queue.store, other, JobStatus.COMPLETED)
    time.sleep(0.5)
    assert status_of(queue.store, paused) == JobStatus.PENDING
    assert queue.store.paused_types() == ["echo"]
    queue.store.resume("echo")
    wait_status(queue.store, paused, JobStatus.COMPLETED)


def test_graceful_stop_hands_back_running_jobs(queue: JobQueue, make_worker) -> None:
    job_id = queue.enqueue("sleep", {"seconds": 30}).id
    worker = make_worker(shutdown_grace_seconds=0.3)
    wait_status(queue.store, job_id, JobStatus.RUNNING)
    worker.stop(timeout=10)
    job = queue.store.get_job(job_id)
    assert job is not None
    assert (job.status, job.attempts, job.locked_by) == (JobStatus.PENDING, 0, None)


def test_graceful_stop_lets_short_jobs_finish(queue: JobQueue, make_worker) -> None:
    job_id = queue.enqueue("sleep", {"seconds": 0.5}).id
    worker = make_worker(shutdown_grace_seconds=10)
    wait_status(queue.store, job_id, JobStatus.RUNNING)
    worker.stop(timeout=15)
    assert status_of(queue.store, job_id) == JobStatus.COMPLETED


def test_sigterm_stops_a_worker_process_cleanly(
    queue: JobQueue, db_url: str, engine: sa.Engine, tmp_path: Path
) -> None:
    job_id = queue.enqueue("record", {"db": db_url, "sleep_first": 60}).id
    process = start_worker_process(db_url, tmp_path, ENLARGER_SHUTDOWN_GRACE_SECONDS="0.5")
    try:
        wait_for(lambda: runs(engine, job_id), timeout=30)
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        process.kill()
    job = queue.store.get_job(job_id)
    assert job is not None and job.status == JobStatus.PENDING and job.attempts == 0


# ---- schedules, pruning, counts, events ------------------------------------------------


def test_schedule_fires_once_per_period_across_two_workers(
    store: Store, engine: sa.Engine, make_worker
) -> None:
    registry = Registry()
    registry.register("tick", lambda ctx, payload: None)
    registry.schedule("every-second", "tick", every_s=1.0)
    make_worker(registry)
    make_worker(registry)

    def fired() -> list[str]:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(jobs_table.c.idempotency_key)).scalars())

    wait_for(lambda: len(fired()) >= 4, timeout=60)  # four periods, whenever they come
    periods = Counter(fired())
    assert all(n == 1 for n in periods.values()), f"a period fired twice: {periods}"


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_workers_starting_together_wait_on_no_schedule_row(store: Store, engine: sa.Engine) -> None:
    """Each worker syncs the same schedules as it starts; they were upserted, each taking
    the rows' locks, so one whose transaction stalled held up the others past their
    lock_timeout (two workers died at start with a traceback). Unchanged ones are not
    written now."""
    schedules = [Schedule(f"every-{n}", "tick", every_s=60.0 + n) for n in range(5)]
    store.sync_schedules(schedules)
    with engine.connect() as stalled:
        stalled.exec_driver_sql("BEGIN")
        stalled.exec_driver_sql("SELECT * FROM job_schedules FOR UPDATE")
        with ThreadPoolExecutor(1) as pool:
            starting = pool.submit(store.sync_schedules, schedules)
            starting.result(timeout=5)  # long before the lock timeout (10 s)
        stalled.rollback()
    changed = [Schedule("every-0", "tick", every_s=30.0)]
    store.sync_schedules(changed)  # a change is still written
    with engine.connect() as conn:
        interval = conn.execute(
            sa.select(job_schedules.c.interval_s).where(job_schedules.c.name == "every-0")
        ).scalar_one()
    assert interval == 30.0


def test_pruning_moves_finished_jobs_to_history(queue: JobQueue, make_worker) -> None:
    done = [queue.enqueue("echo", n).id for n in range(5)]
    itemized = queue.enqueue("cpu_items", {"keys": ["a", "b"]}, items=["a", "b"]).id
    failed = queue.enqueue("broken_input").id
    live = queue.enqueue("echo", "later", delay_s=3600).id
    worker = make_worker()
    for job_id in (*done, itemized, failed):
        wait_status(queue.store, job_id, JobStatus.COMPLETED, JobStatus.FAILED)
    worker.stop()
    before = queue.store.counts()
    time.sleep(0.05)
    assert queue.store.prune(older_than_s=0) == 7
    assert queue.store.prune(older_than_s=0) == 0
    assert queue.store.counts() == before
    hot, total = queue.store.list_jobs()
    assert [job.id for job in hot] == [live] and total == 1
    archived = queue.store.get_job(itemized)
    assert archived is not None and archived.archived
    assert archived.items_summary == {"total": 2, "done": 2}
    failed_job = queue.store.get_job(failed)
    assert failed_job is not None and failed_job.error_code == "CORRUPT_IMAGE"


def test_events_have_monotonic_ids_and_cover_the_lifecycle(queue: JobQueue, make_worker) -> None:
    job_id = queue.enqueue("echo", 1).id
    make_worker()
    wait_status(queue.store, job_id, JobStatus.COMPLETED)
    events = queue.store.read_events()
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert [e.status for e in events if e.job_id == job_id] == ["pending", "running", "completed"]
    assert queue.store.read_events(after_id=ids[-1]) == []


def test_heartbeats_keep_a_job_that_outlives_its_lease(queue: JobQueue, make_worker) -> None:
    """Leases last `stale_seconds` (2 s here); a 3 s job is renewed by heartbeats, never
    rescued, and runs once."""
    job_id = queue.enqueue("sleep", {"seconds": 3.0}).id
    worker = make_worker()
    wait_status(queue.store, job_id, JobStatus.COMPLETED, timeout=20)
    job = queue.store.get_job(job_id)
    assert job is not None and job.attempts == 1
    assert (worker.stats.rescued, worker.stats.lost_leases) == (0, 0)
    kinds = [e.kind for e in queue.store.read_events() if e.job_id == job_id]
    assert "rescued" not in kinds


def test_rescue_fails_a_job_whose_attempts_are_spent(store: Store, engine: sa.Engine) -> None:
    job_id = store.enqueue(NewJob("noop", max_attempts=1)).id
    store.exchange("doomed", [], [ClaimRequest(1)], 30)
    _expire_leases(engine)
    assert store.rescue_expired() == [job_id]
    job = store.get_job(job_id)
    assert job is not None
    assert (job.status, job.error_code) == (JobStatus.FAILED, ErrorCode.LEASE_EXPIRED)


def test_cpu_children_are_recycled(queue: JobQueue, make_worker) -> None:
    ids = [queue.enqueue("cpu_pid").id for _ in range(6)]
    make_worker(max_parallel_jobs=1, priority_lane_slots=0, cpu_max_tasks_per_child=2)
    for job_id in ids:
        wait_status(queue.store, job_id, JobStatus.COMPLETED)
    pids = [queue.store.get_job(job_id).result for job_id in ids]  # type: ignore[union-attr]
    assert len(set(pids)) == 3, pids
    assert os.getpid() not in pids


def test_counts_by_type_and_status(store: Store) -> None:
    store.enqueue_many([NewJob("a"), NewJob("a"), NewJob("b", delay_s=60)])
    assert store.counts() == {("a", "pending"): 2, ("b", "pending"): 1}
    assert store.oldest_ready_age_s() is not None


def test_event_listeners_hear_state_changes(store: Store) -> None:
    heard = threading.Event()
    listener = store.listen(heard.set, 0.02, Topic.EVENTS)
    try:

        def woken_by_an_event() -> bool:  # the listener may still be starting: again until
            heard.clear()
            store.enqueue(NewJob("noop"))
            return heard.wait(0.5)

        assert wait_for(woken_by_an_event, timeout=30), "no wake-up for a recorded event"
    finally:
        listener.close()


def test_reading_events_waits_at_a_fresh_gap(store: Store, engine: sa.Engine) -> None:
    store.enqueue(NewJob("noop"))
    (first,) = store.read_events()
    with engine.begin() as conn:  # as if id first+1 belonged to a transaction not yet committed
        conn.execute(
            job_events.insert().values(
                id=first.id + 2, created_at=db_now(), kind="job", status="pending"
            )
        )
    assert store.read_events(after_id=first.id) == []
    with engine.begin() as conn:  # long enough ago: the gap was a rollback
        conn.execute(
            job_events.update()
            .where(job_events.c.id == first.id + 2)
            .values(created_at=db_now(-EVENT_GAP_GRACE_S - 1))
        )
    assert [e.id for e in store.read_events(after_id=first.id)] == [first.id + 2]


def test_cpu_children_start_with_the_handler_modules_loaded(
    queue: JobQueue, db_url: str, tmp_path: Path
) -> None:
    """In a fresh worker process the forkserver imports the handlers' module, so a child
    runs its first job without importing it."""
    job_id = queue.enqueue("cpu_where_imported", {}).id
    worker = start_worker_process(db_url, tmp_path)
    try:
        wait_status(queue.store, job_id, JobStatus.COMPLETED, timeout=30)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)
    result = queue.store.get_job(job_id).result
    assert result["importedBy"] not in (result["runsIn"], worker.pid)


# a process that takes Ctrl-C itself (as the worker does) and starts a CPU child whose
# forkserver preloads tests.slow_preload, then runs a job in it
_CTRL_C_AT_START = """
import signal
from enlarger.queue.context import CancelFlag
from enlarger.queue.cpu import ChildTask, CpuPool
from tests.handlers import cpu_pid

signal.signal(signal.SIGINT, lambda *_: None)
child = CpuPool(10, 1000, 2000, preload=["tests.slow_preload"]).acquire()
task = ChildTask(cpu_pid, None, 1, "cpu_pid", 1, 3, 1)
print(child.run(task, lambda *_: None, None, CancelFlag()))
"""


def test_ctrl_c_while_cpu_children_start_does_not_kill_them(tmp_path: Path) -> None:
    """Ctrl-C signals the terminal's whole process group. A forkserver still importing
    the handlers' modules died of it, and every CPU job of a stopping worker then failed
    with "EOFError", spending an attempt (seen pressing Ctrl-C right after `serve`
    started)."""
    started, go = tmp_path / "started", tmp_path / "go"
    env = dict(
        os.environ, ENLARGER_TEST_PRELOAD_STARTED=str(started), ENLARGER_TEST_PRELOAD_GO=str(go)
    )
    process = subprocess.Popen(
        [sys.executable, "-c", _CTRL_C_AT_START],
        cwd=Path(__file__).parent.parent,
        env=env,
        start_new_session=True,  # its own process group, as a terminal gives `serve`
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(started.exists, timeout=60)  # the forkserver is mid-preload
        os.killpg(process.pid, signal.SIGINT)
        go.touch()
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, err
    assert int(out) not in (process.pid, 0)  # the job ran, in a child


def test_a_warmed_cpu_pool_has_a_child_ready_before_the_first_job() -> None:
    """A worker with CPU handlers warms its pool as it starts: the forkserver, with the
    handlers' modules imported, and one child are up before the first CPU job, which
    then starts no process (a first upload's photo appeared 2-4 s later than the next
    one's on a slow machine)."""
    pool = CpuPool(10, 1000, 2000)
    try:
        pool.warm()
        wait_for(lambda: pool.idle_children == 1, timeout=60)
        child = pool.acquire()
        assert pool.idle_children == 0
        task = ChildTask(cpu_pid, None, 1, "cpu_pid", 1, 3, 1)
        assert child.run(task, lambda *_: None, None, CancelFlag()) == child.process.pid
        pool.release(child)
        assert pool.idle_children == 1
    finally:
        pool.close()
    assert pool.idle_children == 0 and not child.alive


def test_a_sqlite_writer_waits_for_the_write_lock_and_leaves_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that finds another connection writing tries again until the lock is free
    (in its own short pauses, not SQLite's sleeps) and then puts the connection's busy
    timeout back, so the statements after it still wait rather than fail."""
    path = tmp_path / "locked.db"
    engine = create_db_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    done, errors = threading.Event(), []

    def write() -> None:
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        except Exception as exc:
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=write, daemon=True).start()
    assert not done.wait(0.3)  # the other connection still writes
    holder.execute("COMMIT")
    holder.close()
    assert done.wait(10) and not errors, errors
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1

    # one that never gets it fails as the database being busy, which jobs wait out
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(db_engine, "SQLITE_BUSY_TIMEOUT_MS", 200)
    with pytest.raises(sa.exc.OperationalError) as refused, engine.begin():
        pass
    holder.close()
    down = as_dependency_down(refused.value)
    assert down is not None and down.code == ErrorCode.DATABASE_BUSY
    engine.dispose()


def test_memory_heavy_cpu_children_are_replaced(queue: JobQueue, make_worker) -> None:
    ids = [queue.enqueue("cpu_pid").id for _ in range(3)]
    make_worker(max_parallel_jobs=1, priority_lane_slots=0, cpu_max_rss_mb=1)  # all exceed it
    for job_id in ids:
        wait_status(queue.store, job_id, JobStatus.COMPLETED)
    pids = {queue.store.get_job(job_id).result for job_id in ids}  # type: ignore[union-attr]
    assert len(pids) == 3


def test_a_cpu_child_over_the_memory_ceiling_is_killed_and_its_job_fails_for_good(
    queue: JobQueue, make_worker
) -> None:
    hog = queue.enqueue("cpu_hog", {"mb": 400, "seconds": 5}).id
    small = queue.enqueue("cpu_hog", {"mb": 1, "seconds": 0}).id
    make_worker(max_parallel_jobs=1, priority_lane_slots=0, cpu_kill_rss_mb=250)
    wait_status(queue.store, hog, JobStatus.FAILED, timeout=4)
    job = queue.store.get_job(hog)
    assert job is not None and job.error_code == ErrorCode.MEMORY_LIMIT and job.attempts == 1
    assert "250 MB" in (job.last_error or "")
    wait_status(queue.store, small, JobStatus.COMPLETED)


def _told(marker: str) -> list[FailedJob]:
    return [
        t for t in handlers.TOLD if isinstance(t.payload, dict) and t.payload.get("m") == marker
    ]


def test_on_failed_hears_once_of_a_job_failed_for_good(queue: JobQueue, make_worker) -> None:
    """After its last retry (not before), or killed for memory where its handler never
    saw it: the hook is told once, with the job's error and the worker's services."""
    marker = uuid.uuid4().hex
    services = {"the worker's": "services"}
    retried_out = queue.enqueue("doomed", {"m": marker}).id
    killed = queue.enqueue("cpu_hog_told", {"mb": 400, "seconds": 5, "m": marker}).id
    make_worker(max_parallel_jobs=1, priority_lane_slots=0, cpu_kill_rss_mb=250, services=services)
    for job_id in (retried_out, killed):
        wait_status(queue.store, job_id, JobStatus.FAILED, timeout=15)
    heard = wait_for(lambda: len(_told(marker)) >= 2 and _told(marker))
    time.sleep(0.3)  # nothing more comes
    assert sorted((t.id, t.error_code) for t in _told(marker)) == sorted(
        [(retried_out, ErrorCode.HANDLER_ERROR), (killed, ErrorCode.MEMORY_LIMIT)]
    )
    assert queue.store.get_job(retried_out).attempts == 2  # type: ignore[union-attr]
    assert all(t.services is services and t.type in ("doomed", "cpu_hog_told") for t in heard)


def test_on_failed_hears_of_a_job_whose_worker_died_on_its_last_attempt(
    queue: JobQueue, engine: sa.Engine, make_worker
) -> None:
    marker = uuid.uuid4().hex
    abandoned = queue.enqueue("doomed", {"m": marker}, max_attempts=1).id
    queue.store.exchange("gone-for-good", [], [ClaimRequest(1)], 30)
    _expire_leases(engine)
    make_worker()
    wait_status(queue.store, abandoned, JobStatus.FAILED)
    heard = wait_for(lambda: _told(marker))
    assert [(t.id, t.error_code) for t in heard] == [(abandoned, ErrorCode.LEASE_EXPIRED)]


def _serve_with_two_workers(db_url: str, cwd: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), ENLARGER_LOG_LEVEL="WARNING")
    command = ["serve", "--port", "0", "--workers", "2", "--database-url", db_url]
    command += ["--handlers", "tests.handlers:registry"]
    return subprocess.Popen([sys.executable, "-m", "enlarger", *command], cwd=cwd, env=env)


def _migrated(engine: sa.Engine) -> bool:
    """The schema is at the head revision (the tables appear a migration at a time)."""
    has_version = "alembic_version" in sa.inspect(engine).get_table_names()
    return has_version and migrate.current_revision(engine) == migrate.head_revision(engine)


def _worker_pids(db_url: str, jobs: int, until_pids: int = 0) -> set[int]:
    """Once `serve` has migrated: run `jobs` jobs, and the pids of the processes that ran
    them (with `until_pids`, each job waits until that many have run one: a worker
    process that starts first cannot take them all)."""
    engine = create_db_engine(db_url)
    wait_for(lambda: _migrated(engine), timeout=30)
    with engine.begin() as conn:
        conn.exec_driver_sql(TEST_RUNS_DDL)
    store = store_for_engine(engine)
    payload = {"db": db_url, "sleep_first": 0.3, "until_pids": until_pids}
    ids = [store.enqueue(NewJob("record", payload)).id for _ in range(jobs)]
    for job_id in ids:  # processes starting on a busy machine: a generous deadline
        wait_status(store, job_id, JobStatus.COMPLETED, timeout=300)
    pids = {pid for _, _, pid in runs(engine)}
    engine.dispose()
    return pids


@pytest.mark.timeout(420)  # two processes starting on a loaded machine: see _worker_pids
def test_serve_migrates_on_start_and_runs_workers(empty_db_url: str, tmp_path: Path) -> None:
    serve = _serve_with_two_workers(empty_db_url, tmp_path)
    try:
        worker_pids = _worker_pids(empty_db_url, 16, until_pids=2)
        assert len(worker_pids) == 2, "both worker processes should have run jobs"
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0
    finally:
        serve.kill()


def test_serve_with_no_workers_is_an_api_node_and_a_worker_elsewhere_runs_the_jobs(
    empty_db_url: str, tmp_path: Path
) -> None:
    """`serve --workers 0` was refused; an API-only node is how an operator splits the
    API from the workers."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), ENLARGER_LOG_LEVEL="WARNING")
    command = ["serve", "--port", "0", "--workers", "0", "--database-url", empty_db_url]
    serve = subprocess.Popen([sys.executable, "-m", "enlarger", *command], cwd=tmp_path, env=env)
    engine = create_db_engine(empty_db_url)
    worker = None
    try:
        wait_for(lambda: _migrated(engine), timeout=30)
        alone = ["worker", "--database-url", empty_db_url, "--handlers", "tests.handlers:registry"]
        worker = subprocess.Popen([sys.executable, "-m", "enlarger", *alone], cwd=tmp_path, env=env)
        assert _worker_pids(empty_db_url, 4) == {worker.pid}
        assert serve.poll() is None and psutil.Process(serve.pid).children() == []
    finally:
        engine.dispose()
        for process in (serve, worker):
            if process is not None:
                process.kill()
                process.wait(10)


def test_workers_of_a_killed_serve_stop_instead_of_living_on(
    empty_db_url: str, tmp_path: Path
) -> None:
    serve = _serve_with_two_workers(empty_db_url, tmp_path)
    try:
        worker_pids = _worker_pids(empty_db_url, 8)
        assert worker_pids and serve.pid not in worker_pids
    finally:
        serve.kill()  # SIGKILL: serve cannot stop them itself
        serve.wait(10)

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(lambda: all(gone(pid) for pid in worker_pids), timeout=60)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # nothing here differs by backend
def test_a_killed_workers_cpu_child_ends_quietly(db_url: str, store: Store, tmp_path: Path) -> None:
    """SIGKILL a worker: its CPU child sees the pipe close and exits, writing no
    traceback into the log beside the worker's."""
    log_file = tmp_path / "worker.log"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    command = ["worker", "--database-url", db_url, "--handlers", "tests.handlers:registry"]
    with log_file.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "enlarger", *command], cwd=tmp_path, env=env, stderr=log
        )
        try:
            job_id = store.enqueue(NewJob("cpu_pid")).id
            wait_status(store, job_id, JobStatus.COMPLETED, timeout=60)
            child = psutil.Process(store.get_job(job_id).result)  # type: ignore[union-attr]
        finally:
            worker.kill()
            worker.wait(10)
    child.wait(timeout=20)
    assert "Traceback" not in log_file.read_text(), log_file.read_text()


def test_rescued_and_handed_back_jobs_keep_their_place(store: Store, engine: sa.Engine) -> None:
    oldest, *_ = [r.id for r in store.enqueue_many([NewJob("noop") for _ in range(5)])]
    _, ((claimed,),) = store.exchange("doomed", [], [ClaimRequest(1)], 30)
    assert claimed.id == oldest
    _expire_leases(engine)
    store.rescue_expired()
    _, ((again,),) = store.exchange("rescuer", [], [ClaimRequest(1)], 30)
    assert again.id == oldest, "a rescued job goes back to its place, not to the end"

    handed_back = Outcome(oldest, again.lease_token, OutcomeKind.RELEASED)
    _, ((third,),) = store.exchange("stopping", [handed_back], [ClaimRequest(1)], 30)
    assert third.id == oldest and third.attempts == 2


def test_a_worker_on_a_schema_rolled_back_under_it_says_so_once_and_goes_on_after(
    queue: JobQueue, make_worker, caplog: pytest.LogCaptureFixture
) -> None:
    """The schema was rolled back while workers of the newer version still ran: each
    logged a traceback every half second. Now the first failure is logged with what is
    wrong with the schema, the same again at most once a minute; upgraded again, the
    worker goes on by itself."""
    caplog.set_level(logging.INFO, logger="enlarger.queue.worker")
    worker = make_worker()
    wait_status(queue.store, queue.enqueue("noop").id, JobStatus.COMPLETED)
    exchanges = [0]
    exchange = worker.store.exchange

    def counted(*args: object, **kwargs: object) -> object:
        exchanges[0] += 1
        return exchange(*args, **kwargs)

    worker.store.exchange = counted  # type: ignore[method-assign]
    migrate.downgrade(queue.store.engine, "0015_landing_key")  # jobs.outage_since goes
    waiting = queue.enqueue("noop").id
    before = exchanges[0]
    wait_for(lambda: exchanges[0] >= before + 6, timeout=30)  # failing, again and again
    failures = [r for r in caplog.records if "exchange" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert failures[0].exc_info is not None
    assert "schema is at 0015_landing_key, this version needs" in failures[0].getMessage()
    assert "enlarger db upgrade" in failures[0].getMessage()

    migrate.upgrade(queue.store.engine)
    wait_status(queue.store, waiting, JobStatus.COMPLETED, timeout=30)
