"""The `enlarger` command on both backends: migrations and steering jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from enlarger.cli import app
from enlarger.db import create_db_engine, migrate
from enlarger.queue import JobQueue, JobStatus

runner = CliRunner()
REPO_ROOT = Path(__file__).resolve().parent.parent


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_db_upgrade_downgrade_current(empty_db_url: str) -> None:
    code, out = invoke("db", "upgrade", "--database-url", empty_db_url)
    head = migrate.head_revision(create_db_engine(empty_db_url))
    assert code == 0 and head in out
    code, out = invoke("db", "current", "--database-url", empty_db_url)
    assert code == 0 and f"current: {head}" in out
    code, out = invoke("db", "downgrade", "base", "--database-url", empty_db_url)
    assert code == 0 and "base" in out
    code, out = invoke("jobs", "list", "--database-url", empty_db_url)
    assert code == 2 and "enlarger db upgrade" in out


def test_jobs_list_show_cancel_retry(queue: JobQueue, db_url: str) -> None:
    first = queue.enqueue("echo", {"n": 1}, priority=5).id
    second = queue.enqueue("noop", items=["a.jpg"]).id

    code, out = invoke("jobs", "list", "--database-url", db_url)
    assert code == 0 and "echo" in out and "pending" in out and "of 2" in out
    code, out = invoke("jobs", "list", "--json", "--type", "noop", "--database-url", db_url)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [row["id"] for row in rows] == [second]

    code, out = invoke("jobs", "show", str(second), "--database-url", db_url)
    assert code == 0 and "a.jpg" in out and "noop" in out
    code, out = invoke("jobs", "show", str(first), "--json", "--database-url", db_url)
    assert code == 0 and json.loads(out)["payload"] == {"n": 1}

    code, out = invoke("jobs", "cancel", str(first), "--database-url", db_url)
    assert code == 0 and "cancelled" in out
    code, out = invoke("jobs", "cancel", str(first), "--database-url", db_url)
    assert code == 1 and "only live jobs cancel" in out
    code, out = invoke("jobs", "retry", str(first), "--database-url", db_url)
    assert code == 0 and "pending" in out
    assert queue.store.get_job(first).status == JobStatus.PENDING  # type: ignore[union-attr]
    code, out = invoke("jobs", "show", "424242", "--database-url", db_url)
    assert code == 1 and "no job 424242" in out


def test_jobs_pause_resume(queue: JobQueue, db_url: str) -> None:
    code, out = invoke("jobs", "pause", "echo", "--database-url", db_url)
    assert code == 0 and "paused" in out and queue.store.paused_types() == ["echo"]
    code, out = invoke("jobs", "resume", "echo", "--database-url", db_url)
    assert code == 0 and "resumed" in out and queue.store.paused_types() == []


def test_bad_setting_is_a_clear_error(db_url: str) -> None:
    result = runner.invoke(
        app, ["jobs", "list", "--database-url", db_url], env={"ENLARGER_MAX_PARALLEL_JOBS": "x"}
    )
    assert result.exit_code == 2 and "max_parallel_jobs" in result.output


def test_jobs_watch_follows_events(queue: JobQueue, db_url: str, tmp_path: Path) -> None:
    job_id = queue.enqueue("echo", 1).id
    queue.store.cancel(job_id)
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "enlarger",
            "jobs",
            "watch",
            "--from-start",
            "--json",
            "--max-events",
            "4",
            "--database-url",
            db_url,
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )
    time.sleep(1.0)
    queue.store.retry(job_id)  # arrives while the watcher waits
    queue.store.pause("echo")
    out, _ = watcher.communicate(timeout=30)
    events = [json.loads(line) for line in out.decode().splitlines()]
    assert [(e["kind"], e["status"]) for e in events] == [
        ("job", "pending"),
        ("job", "cancelled"),
        ("retry", "pending"),
        ("paused", None),
    ]
    assert watcher.returncode == 0
