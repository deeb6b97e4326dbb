"""SQLite: one writer at a time (`BEGIN IMMEDIATE`), batched finishes and events through
JSON arrays, and wake-ups by watching `PRAGMA data_version`, which changes whenever any
other connection, in this process or another, commits."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from enlarger.db.types import SQLITE_EPOCH_NOW, NullableJson
from enlarger.logs import OutageLog
from enlarger.queue.model import ClaimedJob, JobStatus, Outcome
from enlarger.queue.store import Listener, Store, Topic, encode_outcomes

# MATERIALIZED: left to itself SQLite flattens the JSON subquery and rescans it per row.
FINISH_SQL = sa.text(
    f"""
    WITH o AS MATERIALIZED (
        SELECT value ->> 0 AS id, value ->> 1 AS token, value ->> 2 AS status,
               value -> 3 AS result, value ->> 4 AS error_code, value ->> 5 AS error,
               value ->> 6 AS delay_s, value ->> 7 AS released, value ->> 8 AS waited
        FROM json_each(:outcomes)
    )
    UPDATE jobs SET
        status = o.status,
        result = o.result,
        error_code = o.error_code,
        last_error = o.error,
        attempts = CASE WHEN o.released OR o.waited THEN jobs.attempts - 1 ELSE jobs.attempts END,
        run_at = CASE WHEN o.status = 'pending' AND NOT o.released
                      THEN {SQLITE_EPOCH_NOW} + o.delay_s ELSE jobs.run_at END,
        outage_since = CASE WHEN o.waited THEN COALESCE(jobs.outage_since, {SQLITE_EPOCH_NOW})
                            ELSE jobs.outage_since END,
        finished_at = CASE WHEN o.status = 'pending' THEN NULL ELSE {SQLITE_EPOCH_NOW} END,
        progress = CASE WHEN o.status = 'completed' THEN 1.0 ELSE jobs.progress END,
        locked_by = NULL,
        lease_expires_at = NULL,
        updated_at = {SQLITE_EPOCH_NOW}
    FROM o
    WHERE jobs.id = o.id AND jobs.lease_token = o.token AND jobs.status = 'running'
    RETURNING jobs.id, jobs.type, jobs.status
    """
)

CLAIM_SQL = sa.text(
    f"""
    UPDATE jobs SET
        status = 'running',
        attempts = attempts + 1,
        lease_token = lease_token + 1,
        locked_by = :worker,
        locked_at = {SQLITE_EPOCH_NOW},
        lease_expires_at = {SQLITE_EPOCH_NOW} + :lease_s,
        updated_at = {SQLITE_EPOCH_NOW}
    WHERE id IN (
        SELECT id FROM jobs
        WHERE status = 'pending' AND run_at <= {SQLITE_EPOCH_NOW} AND priority >= :min_priority
          AND type NOT IN (SELECT job_type FROM job_type_pauses)
        ORDER BY priority DESC, run_at, id
        LIMIT :limit
    )
    RETURNING id, type, payload, lease_token, attempts, max_attempts, priority, timeout_s,
              {SQLITE_EPOCH_NOW} - outage_since
    """
).columns(payload=NullableJson)

# An executemany binds each row in Python: it took nearly half of a worker's
# claim-and-finish time.
EVENTS_SQL = sa.text(
    f"""
    INSERT INTO job_events (created_at, job_id, job_type, kind, status, data)
    SELECT {SQLITE_EPOCH_NOW}, value ->> 0, value ->> 1, :kind, value ->> 2, :data
    FROM json_each(:rows)
    """
)


class SqliteStore(Store):
    claim_sql = CLAIM_SQL
    events_sql = EVENTS_SQL
    last_given_event_id_sql = sa.text(
        "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'job_events'), 0)"
    )

    def _insert(self, table: sa.Table) -> Any:
        return sqlite_insert(table)

    def _finish(self, conn: sa.Connection, outcomes: Sequence[Outcome]) -> list[sa.Row[Any]]:
        rows = conn.execute(FINISH_SQL, {"outcomes": encode_outcomes(outcomes)}).all()
        self._record_events(conn, rows)
        return rows

    def _record_claimed(
        self, conn: sa.Connection, claimed: Sequence[ClaimedJob], worker_id: str
    ) -> None:
        running = [(job.id, job.type, JobStatus.RUNNING.value) for job in claimed]
        self._record_events(conn, running, data={"worker": worker_id})

    def listen(
        self,
        on_wake: Callable[[], None],
        poll_interval_s: float,
        topic: Topic = Topic.WORK,
        outages: OutageLog | None = None,
    ) -> Listener:
        """Any commit may carry news for either topic: one watcher serves both."""
        return _DataVersionWatcher(self.engine, on_wake, poll_interval_s)


class _DataVersionWatcher(Listener):
    def __init__(
        self, engine: sa.Engine, on_wake: Callable[[], None], poll_interval_s: float
    ) -> None:
        self._path = engine.url.database or ""
        self._on_wake = on_wake
        self._interval = poll_interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="enlarger-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        try:
            last = None
            while not self._stop.wait(self._interval):
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if version != last:
                    last = version
                    self._on_wake()
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
