"""PostgreSQL: the hot path (claim and finish) as one hand-written statement each, with
their events and NOTIFY inside; claims with FOR UPDATE SKIP LOCKED; LISTEN/NOTIFY so idle
workers wake the moment a job is ready."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from enlarger.db.engine import network_options
from enlarger.logs import OutageLog
from enlarger.queue.model import Outcome
from enlarger.queue.store import Listener, Store, Topic, encode_outcomes

log = logging.getLogger(__name__)


# The finished jobs' events are written by the same statement (a data-modifying CTE), and
# one NOTIFY tells the events topic (`notified` has one row when anything finished, so the
# final SELECT returns every finished job exactly when that NOTIFY was sent).
FINISH_SQL = sa.text(
    f"""
    WITH finished AS (
        UPDATE jobs AS j SET
            status = o.status,
            result = o.result,
            error_code = o.error_code,
            last_error = o.error,
            attempts = CASE WHEN o.released OR o.waited THEN j.attempts - 1 ELSE j.attempts END,
            run_at = CASE WHEN o.status = 'pending' AND NOT o.released
                          THEN now() + make_interval(secs => o.delay_s) ELSE j.run_at END,
            outage_since = CASE WHEN o.waited THEN COALESCE(j.outage_since, now())
                                ELSE j.outage_since END,
            finished_at = CASE WHEN o.status = 'pending' THEN NULL ELSE now() END,
            progress = CASE WHEN o.status = 'completed' THEN 1.0 ELSE j.progress END,
            locked_by = NULL,
            lease_expires_at = NULL,
            updated_at = now()
        FROM (
            SELECT (r ->> 0)::bigint AS id, (r ->> 1)::bigint AS token, r ->> 2 AS status,
                   NULLIF(r -> 3, 'null') AS result, r ->> 4 AS error_code, r ->> 5 AS error,
                   (r ->> 6)::float8 AS delay_s, (r ->> 7)::boolean AS released,
                   (r ->> 8)::boolean AS waited
            FROM jsonb_array_elements(CAST(:outcomes AS jsonb)) AS r
        ) AS o
        WHERE j.id = o.id AND j.lease_token = o.token AND j.status = 'running'
        RETURNING j.id, j.type, j.status
    ), recorded AS (
        INSERT INTO job_events (created_at, job_id, job_type, kind, status)
        SELECT now(), id, type, 'job', status FROM finished
    ), notified AS (
        SELECT pg_notify('{Topic.EVENTS.value}', '') WHERE EXISTS (SELECT 1 FROM finished)
    )
    SELECT id, type, status FROM finished, notified
    """
)


# The ready jobs are locked first (SKIP LOCKED: never two workers on one job), then each
# is reached by primary key; `= ANY(ARRAY(…))` keeps the planner from hash-joining the
# whole table against them. Priority `>= :min_priority` stays an index condition.
CLAIM_SQL = sa.text(
    f"""
    WITH claimed AS (
        UPDATE jobs SET
            status = 'running',
            attempts = attempts + 1,
            lease_token = lease_token + 1,
            locked_by = :worker,
            locked_at = now(),
            lease_expires_at = now() + make_interval(secs => :lease_s),
            updated_at = now()
        WHERE id = ANY(ARRAY(
            SELECT id FROM jobs
            WHERE status = 'pending' AND run_at <= now() AND priority >= :min_priority
              AND type NOT IN (SELECT job_type FROM job_type_pauses)
            ORDER BY priority DESC, run_at, id
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        ))
        RETURNING id, type, payload, lease_token, attempts, max_attempts, priority, timeout_s,
                  EXTRACT(EPOCH FROM now() - outage_since)::float8
    ), recorded AS (
        INSERT INTO job_events (created_at, job_id, job_type, kind, status, data)
        SELECT now(), id, type, 'job', 'running', jsonb_build_object('worker', :worker)
        FROM claimed
    ), notified AS (
        SELECT pg_notify('{Topic.EVENTS.value}', '') WHERE EXISTS (SELECT 1 FROM claimed)
    )
    SELECT claimed.* FROM claimed, notified
    """
)


# The NOTIFY rides along: listeners of the events topic hear of every batch once.
EVENTS_SQL = sa.text(
    f"""
    WITH inserted AS (
        INSERT INTO job_events (created_at, job_id, job_type, kind, status, data)
        SELECT now(), (e ->> 0)::bigint, e ->> 1, :kind, e ->> 2,
               NULLIF(CAST(:data AS jsonb), 'null')
        FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS e
        RETURNING 1
    )
    SELECT pg_notify('{Topic.EVENTS.value}', '') WHERE EXISTS (SELECT 1 FROM inserted)
    """
)


class PostgresStore(Store):
    claim_sql = CLAIM_SQL
    events_sql = EVENTS_SQL
    last_given_event_id_sql = sa.text(
        "SELECT COALESCE(pg_sequence_last_value("
        "CAST(pg_get_serial_sequence('job_events', 'id') AS regclass)), 0)"
    )

    def _insert(self, table: sa.Table) -> Any:
        return pg_insert(table)

    def _one_of(self, column: sa.ColumnElement[Any], ids: sa.Select[Any]) -> sa.ColumnElement[bool]:
        """`column = ANY(ARRAY(ids))`: locks the picked rows first, then reaches each one by
        primary key. `IN (ids)` lets the planner hash-join against a scan of the whole table,
        which made every claim cost as much as the backlog was long."""
        return column == sa.any_(sa.func.array(ids.scalar_subquery()))

    def _finish(self, conn: sa.Connection, outcomes: Sequence[Outcome]) -> list[sa.Row[Any]]:
        return conn.execute(FINISH_SQL, {"outcomes": encode_outcomes(outcomes)}).all()

    def _notify_work(self, conn: sa.Connection) -> None:
        conn.execute(sa.text(f"NOTIFY {Topic.WORK.value}"))

    def listen(
        self,
        on_wake: Callable[[], None],
        poll_interval_s: float,
        topic: Topic = Topic.WORK,
        outages: OutageLog | None = None,
    ) -> Listener:
        return _PgListener(self.engine, on_wake, topic, outages or OutageLog(log))


class _PgListener(Listener):
    """A thread holding one LISTEN connection; reconnects if the server goes away."""

    def __init__(
        self, engine: sa.Engine, on_wake: Callable[[], None], topic: Topic, outages: OutageLog
    ) -> None:
        url = engine.url.set(drivername="postgresql")
        self._channel = topic.value
        self._dsn = url.render_as_string(hide_password=False)
        self._network = network_options(self._dsn)  # a partition noticed, as elsewhere
        self._on_wake = on_wake
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._outages = outages
        self._thread = threading.Thread(target=self._run, name="enlarger-listen", daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, **self._network) as conn:
                    conn.execute(f"LISTEN {self._channel}")
                    self._outages.up("database")
                    self._ready.set()
                    self._on_wake()  # anything enqueued while we were not listening
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self._on_wake()
            except psycopg.Error as exc:
                self._outages.down("database", f"LISTEN connection lost ({exc}); reconnecting")
                self._stop.wait(1.0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
