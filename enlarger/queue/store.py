"""The job store: every read and write of the engine's tables.

`Store` holds the operations that are the same SQL on both databases (written once in
SQLAlchemy Core); each backend module (`backends/postgres.py`, `backends/sqlite.py`)
adds what differs: the batched, fenced finish of jobs, how a batch's events are
written, how idle workers are woken, and on PostgreSQL the claim (one statement with its
events, the busiest query there is).
The worker only ever talks to this interface.

Fencing: every claim increments a job's `lease_token`; every write a worker makes about
a running job (finish, heartbeat, progress, items) names the token it was given and
changes nothing if the token has moved on, so a rescued job cannot be finished twice.

One module, though long: it is the engine's SQL in one place to read (as procrastinate
keeps its schema); the backends add only what differs.
"""

from __future__ import annotations

import functools
import json
import math
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from enum import StrEnum
from typing import Any, ClassVar

import sqlalchemy as sa

from enlarger.db import revision
from enlarger.db.engine import read_connection
from enlarger.db.schema import (
    FINISHED_STATUSES,
    LIVE_STATUSES,
    job_events,
    job_history,
    job_history_counts,
    job_items,
    job_schedules,
    job_type_pauses,
    jobs,
    worker_stats,
)
from enlarger.db.types import db_now
from enlarger.logs import OutageLog
from enlarger.queue.context import JobCancelled
from enlarger.queue.model import (
    ClaimedJob,
    ClaimRequest,
    EnqueueResult,
    ErrorCode,
    Event,
    HeartbeatReply,
    ItemStatus,
    Job,
    JobItem,
    JobStatus,
    NewJob,
    Outcome,
    OutcomeKind,
)
from enlarger.queue.registry import Schedule

LIVE_KEY_WHERE = sa.text("idempotency_key IS NOT NULL AND status IN ('pending', 'running')")
# "any priority" in a claim's floor: PostgreSQL's smallest integer, below every job's
LOWEST_PRIORITY = -(2**31)
HISTORY_COLUMNS = [c.name for c in job_history.c if c.name != "items_summary"]
WORKER_STATS_KEEP_S = 7 * 86400  # a worker's counts outlive it a week, then reset
EVENT_GAP_GRACE_S = 5.0


def encode_outcomes(outcomes: Sequence[Outcome]) -> str:
    """A batch of outcomes as one JSON array of rows, unpacked in SQL by either backend
    (far cheaper than binding one array per column, and than one object per outcome):
    [id, lease token, status, result, error code, error, retry delay in s, released, waited
    (a WAIT: its attempt is not counted either, and its outage clock starts)]."""
    return json.dumps(
        [
            (
                o.job_id,
                o.lease_token,
                o.status.value,
                o.result,
                o.error_code,
                o.error,
                o.retry_delay_s,
                o.kind is OutcomeKind.RELEASED,
                o.kind is OutcomeKind.WAIT,
            )
            for o in outcomes
        ]
    )


def in_start_order(claimed: list[ClaimedJob]) -> list[ClaimedJob]:
    """Claimed jobs in the order a worker starts them: highest priority first, then
    oldest (an UPDATE … RETURNING hands them back in no set order)."""
    claimed.sort(key=lambda j: (-j.priority, j.id))
    return claimed


class JobConflict(Exception):
    """The operation does not fit the job's state (retrying a running job, say)."""


class Topic(StrEnum):
    WORK = "enlarger_work"
    EVENTS = "enlarger_events"


class Listener(ABC):
    """Calls back whenever its topic may have news; `close()` stops it."""

    @abstractmethod
    def close(self) -> None: ...


class Store(ABC):
    # the backend's INSERT of a batch of events: `:rows` a JSON array of [job id, job type,
    # status], `:kind` and `:data` (JSON text) the same for every row
    events_sql: ClassVar[sa.TextClause]
    # the highest event id the database has ever given out (0 before the first), pruned
    # or not: its id sequence's
    last_given_event_id_sql: ClassVar[sa.TextClause]
    # the backend's claim: `:worker`, `:lease_s`, `:limit` and `:min_priority` in, a
    # ClaimedJob's fields out (in its order) for each job it marked running
    claim_sql: ClassVar[sa.Executable]

    def __init__(self, engine: sa.Engine, *, max_attempts_default: int = 3) -> None:
        self.engine = engine
        self.max_attempts_default = max_attempts_default

    # ---- what each backend supplies -------------------------------------------------

    @abstractmethod
    def _finish(self, conn: sa.Connection, outcomes: Sequence[Outcome]) -> list[sa.Row[Any]]:
        """Apply outcomes whose lease token still matches and record an event for each;
        return (id, type, status) rows."""

    @abstractmethod
    def _insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT construct (it has `on_conflict_do_nothing/update`)."""

    def _one_of(self, column: sa.ColumnElement[Any], ids: sa.Select[Any]) -> sa.ColumnElement[bool]:
        """`column IN (ids)`: the condition that picks the rows a claim or rescue updates."""
        return column.in_(ids)

    def _notify_work(self, conn: sa.Connection) -> None:  # noqa: B027 - optional hook
        """Tell idle workers that a job became ready (PostgreSQL NOTIFY; SQLite polls)."""

    @abstractmethod
    def listen(
        self,
        on_wake: Callable[[], None],
        poll_interval_s: float,
        topic: Topic = Topic.WORK,
        outages: OutageLog | None = None,
    ) -> Listener:
        """Start calling `on_wake` whenever `topic` may have news: a job became ready
        (WORK) or events were recorded (EVENTS). A listener that loses the database tells
        `outages` (the caller's, so a process logs an outage once), else its own."""

    # ---- transactions ---------------------------------------------------------------

    @contextmanager
    def transaction(self, conn: sa.Connection | None = None) -> Iterator[sa.Connection]:
        """The caller's connection (its transaction, its commit) or a new transaction."""
        if conn is not None:
            yield conn
            return
        with self.engine.begin() as own:
            yield own

    def _record_events(
        self, conn: sa.Connection, rows: Sequence[Any], kind: str = "job", data: Any = None
    ) -> None:
        """One event per (id, type, status) row, in the same transaction as the change: one
        statement for the batch, its rows unpacked from a JSON array by the database."""
        if not rows:
            return
        params = {
            "rows": json.dumps([tuple(r[:3]) for r in rows]),
            "kind": kind,
            "data": json.dumps(data),
        }
        conn.execute(self.events_sql, params)

    def record_event(
        self, conn: sa.Connection, kind: str, data: dict[str, Any], status: str | None = None
    ) -> None:
        """An event about something other than a job (an image, a product job), written in
        the caller's transaction so it is seen exactly when the change is."""
        self._record_events(conn, [(None, None, status)], kind, data)

    # ---- enqueue --------------------------------------------------------------------

    def enqueue(self, job: NewJob, conn: sa.Connection | None = None) -> EnqueueResult:
        return self.enqueue_many([job], conn)[0]

    def enqueue_many(
        self, new_jobs: Sequence[NewJob], conn: sa.Connection | None = None
    ) -> list[EnqueueResult]:
        """Insert jobs (inside `conn`'s transaction when given). A job whose idempotency key
        is held by a live job is not inserted; the live job's id comes back instead."""
        results: list[EnqueueResult] = []
        with self.transaction(conn) as tx:
            plain = [j for j in new_jobs if j.idempotency_key is None]
            plain_ids = iter(self._insert_plain(tx, plain))
            created_rows = []
            for job in new_jobs:
                if job.idempotency_key is None:
                    result = EnqueueResult(next(plain_ids), True)
                else:
                    result = self._insert_keyed(tx, job)
                results.append(result)
                if result.created:
                    created_rows.append((result.id, job.type, JobStatus.PENDING.value))
                    if job.items:
                        self._insert_items(tx, result.id, job.items)
            self._record_events(tx, created_rows)
            if created_rows:
                self._notify_work(tx)
        return results

    def _row_for(self, job: NewJob) -> dict[str, Any]:
        return {
            "type": job.type,
            "payload": job.payload,
            "status": JobStatus.PENDING.value,
            "priority": job.priority,
            "explicit_run_at": job.run_at,
            "delay_s": float(job.delay_s),
            "max_attempts": job.max_attempts or self.max_attempts_default,
            "timeout_s": job.timeout_s,
            "idempotency_key": job.idempotency_key,
        }

    @staticmethod
    def _insert_values() -> dict[str, Any]:
        return {
            "run_at": sa.func.coalesce(
                sa.bindparam("explicit_run_at", type_=jobs.c.run_at.type),
                db_now(sa.bindparam("delay_s", type_=sa.Float)),
            ),
            "created_at": db_now(),
            "updated_at": db_now(),
        }

    # The enqueue statements are built once per store: built per call, they cost each
    # upload more Python than running them did.

    @functools.cached_property
    def _plain_insert(self) -> sa.Insert:
        return (
            jobs.insert()
            .values(**self._insert_values())
            .returning(jobs.c.id, sort_by_parameter_order=True)
        )

    @functools.cached_property
    def _keyed_insert(self) -> sa.Insert:
        return (
            self._insert(jobs)
            .values(**self._insert_values())
            .on_conflict_do_nothing(index_elements=["idempotency_key"], index_where=LIVE_KEY_WHERE)
            .returning(jobs.c.id)
        )

    _live_holder = sa.select(jobs.c.id).where(
        jobs.c.idempotency_key == sa.bindparam("key"),
        jobs.c.status.in_((JobStatus.PENDING, JobStatus.RUNNING)),
    )

    def _insert_plain(self, conn: sa.Connection, new_jobs: Sequence[NewJob]) -> list[int]:
        if not new_jobs:
            return []
        rows = [self._row_for(j) for j in new_jobs]
        return list(conn.execute(self._plain_insert, rows).scalars())

    def _insert_keyed(self, conn: sa.Connection, job: NewJob) -> EnqueueResult:
        for _ in range(5):  # the live holder may finish between our two statements
            new_id = conn.execute(self._keyed_insert, self._row_for(job)).scalar()
            if new_id is not None:
                return EnqueueResult(new_id, True)
            existing = conn.execute(self._live_holder, {"key": job.idempotency_key}).scalar()
            if existing is not None:
                return EnqueueResult(existing, False)
        raise JobConflict(f"idempotency key {job.idempotency_key!r} kept changing hands")

    def _insert_items(self, conn: sa.Connection, job_id: int, keys: Sequence[str]) -> None:
        conn.execute(
            job_items.insert().values(updated_at=db_now()),
            [{"job_id": job_id, "key": key, "status": ItemStatus.PENDING.value} for key in keys],
        )

    # ---- claim, finish, heartbeat, rescue --------------------------------------------

    def exchange(
        self,
        worker_id: str,
        outcomes: Sequence[Outcome],
        requests: Sequence[ClaimRequest],
        lease_s: float,
    ) -> tuple[list[int], list[list[ClaimedJob]]]:
        """Finish `outcomes` and claim for each request, in one transaction (one commit).

        Returns the ids whose outcome was accepted (the rest had lost their lease) and
        the jobs claimed for each request, in request order. A request that comes back
        short has taken every ready job at its priority floor or above, so later
        requests with the same or a higher floor are not even asked."""
        with self.engine.begin() as conn:
            accepted: list[int] = []
            if outcomes:
                finished = self._finish(conn, outcomes)
                accepted = [row[0] for row in finished]
                if any(row[2] == JobStatus.PENDING for row in finished):
                    self._notify_work(conn)
            claimed: list[list[ClaimedJob]] = []
            drained_from: float | None = None  # lowest priority floor found drained
            for request in requests:
                floor = -math.inf if request.min_priority is None else request.min_priority
                if request.limit <= 0 or (drained_from is not None and floor >= drained_from):
                    claimed.append([])
                    continue
                jobs_claimed = self._claim(conn, worker_id, request, lease_s)
                if len(jobs_claimed) < request.limit:
                    drained_from = floor if drained_from is None else min(drained_from, floor)
                claimed.append(jobs_claimed)
        return accepted, claimed

    def _claim(
        self, conn: sa.Connection, worker_id: str, request: ClaimRequest, lease_s: float
    ) -> list[ClaimedJob]:
        """Lock up to `request.limit` ready jobs, mark them running under a new lease
        token, record their events; highest priority first, then oldest. One prepared
        statement (the backend's `claim_sql`): built per call, it cost the SQLite worker
        more Python than the finish and the claim took in the database."""
        params = {
            "worker": worker_id,
            "lease_s": lease_s,
            "limit": request.limit,
            "min_priority": (
                LOWEST_PRIORITY if request.min_priority is None else request.min_priority
            ),
        }
        claimed = [ClaimedJob(*row) for row in conn.execute(self.claim_sql, params).all()]
        self._record_claimed(conn, claimed, worker_id)
        return in_start_order(claimed)

    def _record_claimed(  # noqa: B027 - optional hook
        self, conn: sa.Connection, claimed: Sequence[ClaimedJob], worker_id: str
    ) -> None:
        """Record the claimed jobs' events, where `claim_sql` did not record them itself."""

    def heartbeat(self, leases: dict[int, int], lease_s: float) -> HeartbeatReply:
        """Extend the leases still held; report lost ones and cancel requests."""
        if not leases:
            return HeartbeatReply()
        stmt = (
            jobs.update()
            .where(
                sa.tuple_(jobs.c.id, jobs.c.lease_token).in_(list(leases.items())),
                jobs.c.status == JobStatus.RUNNING,
            )
            .values(lease_expires_at=db_now(lease_s))
            .returning(jobs.c.id, jobs.c.cancel_requested)
        )
        with self.engine.begin() as conn:
            rows = conn.execute(stmt).all()
        held = {row[0] for row in rows}
        return HeartbeatReply(
            lost=set(leases) - held, cancel_requested={row[0] for row in rows if row[1]}
        )

    def rescue_expired(self, limit: int = 500) -> list[int]:
        """Hand jobs whose lease lapsed (dead or stalled worker) back to the queue, or fail
        them when their attempts are spent, or cancel them when a cancel was asked for.
        A job handed back keeps its `run_at`, so it keeps its place in line."""
        expired = (
            sa.select(jobs.c.id)
            .where(jobs.c.status == JobStatus.RUNNING, jobs.c.lease_expires_at < db_now())
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        spent = jobs.c.attempts >= jobs.c.max_attempts
        new_status = sa.case(
            (jobs.c.cancel_requested, JobStatus.CANCELLED.value),
            (spent, JobStatus.FAILED.value),
            else_=JobStatus.PENDING.value,
        )
        finished = sa.or_(jobs.c.cancel_requested, spent)
        stmt = (
            jobs.update()
            .where(self._one_of(jobs.c.id, expired))
            .values(
                status=new_status,
                error_code=sa.case(
                    (jobs.c.cancel_requested, ErrorCode.CANCELLED.value),
                    else_=ErrorCode.LEASE_EXPIRED.value,
                ),
                last_error=sa.case(
                    (jobs.c.cancel_requested, "cancelled while its worker was gone"),
                    else_="the worker running it stopped renewing its lease (crashed or stalled)",
                ),
                finished_at=sa.case((finished, db_now()), else_=None),
                locked_by=None,
                lease_expires_at=None,
                updated_at=db_now(),
            )
            .returning(jobs.c.id, jobs.c.type, jobs.c.status)
        )
        with self.engine.begin() as conn:
            rows = conn.execute(stmt).all()
            self._record_events(conn, rows, kind="rescued")
            if any(row[2] == JobStatus.PENDING for row in rows):
                self._notify_work(conn)
        return [row[0] for row in rows]

    def hold_lease(self, conn: sa.Connection, job_id: int, lease_token: int) -> None:
        """In the caller's transaction: JobCancelled unless the job still runs under
        `lease_token`, so a handler's own writes commit only while the job is its own (a
        worker thawed after its job was rescued changes nothing). The job's row stays
        locked until the transaction ends: no rescue can take it meanwhile."""
        held = conn.execute(
            sa.select(jobs.c.id)
            .where(
                jobs.c.id == job_id,
                jobs.c.lease_token == lease_token,
                jobs.c.status == JobStatus.RUNNING,
            )
            .with_for_update()
        ).first()
        if held is None:
            raise JobCancelled(f"job {job_id} is no longer this run's: its lease moved on")

    def set_progress(self, job_id: int, lease_token: int, progress: float) -> bool:
        stmt = (
            jobs.update()
            .where(
                jobs.c.id == job_id,
                jobs.c.lease_token == lease_token,
                jobs.c.status == JobStatus.RUNNING,
            )
            .values(progress=progress, updated_at=db_now())
        )
        with self.engine.begin() as conn:
            changed = conn.execute(stmt).rowcount == 1
            if changed:
                self._record_events(
                    conn, [(job_id, None, JobStatus.RUNNING.value)], "progress", progress
                )
        return changed

    def update_item(
        self,
        job_id: int,
        lease_token: int,
        key: str,
        status: ItemStatus,
        *,
        progress: float | None = None,
        error: str | None = None,
        data: Any = None,
    ) -> bool:
        """Set one item's status, fenced by the job's lease token."""
        holds_lease = sa.exists().where(
            jobs.c.id == job_id,
            jobs.c.lease_token == lease_token,
            jobs.c.status == JobStatus.RUNNING,
        )
        values: dict[str, Any] = {"status": status.value, "updated_at": db_now()}
        if progress is not None:
            values["progress"] = progress
        if error is not None:
            values["error"] = error
        if data is not None:
            values["data"] = data
        stmt = (
            job_items.update()
            .where(job_items.c.job_id == job_id, job_items.c.key == key, holds_lease)
            .values(**values)
        )
        with self.engine.begin() as conn:
            changed = conn.execute(stmt).rowcount == 1
            if changed:
                event = {"key": key, "status": status.value, "error": error, "data": data}
                self._record_events(conn, [(job_id, None, None)], "item", event)
        return changed

    # ---- steering -------------------------------------------------------------------

    def cancel(self, job_id: int) -> Job:
        """Cancel a pending job at once; ask the worker of a running one to stop it."""
        with self.engine.begin() as conn:
            job = self._locked_job(conn, job_id)
            if job.status == JobStatus.PENDING:
                conn.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id)
                    .values(
                        status=JobStatus.CANCELLED,
                        error_code=ErrorCode.CANCELLED.value,
                        last_error="cancelled before it ran",
                        finished_at=db_now(),
                        updated_at=db_now(),
                    )
                )
                self._record_events(conn, [(job_id, job.type, JobStatus.CANCELLED.value)])
            elif job.status == JobStatus.RUNNING:
                conn.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id)
                    .values(cancel_requested=True, updated_at=db_now())
                )
                self._record_events(conn, [(job_id, job.type, job.status.value)], "cancel")
            else:
                raise JobConflict(f"job {job_id} is {job.status.value}; only live jobs cancel")
            return self._locked_job(conn, job_id)  # as cancelled, before a worker moves on

    def retry(self, job_id: int) -> Job:
        """Run a failed or cancelled job again, with a fresh set of attempts."""
        with self.engine.begin() as conn:
            job = self._locked_job(conn, job_id)
            if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
                raise JobConflict(
                    f"job {job_id} is {job.status.value}; only failed or "
                    "cancelled jobs can be retried"
                )
            try:
                with conn.begin_nested():
                    conn.execute(
                        jobs.update()
                        .where(jobs.c.id == job_id)
                        .values(
                            status=JobStatus.PENDING,
                            attempts=0,
                            run_at=db_now(),
                            cancel_requested=False,
                            outage_since=None,
                            error_code=None,
                            last_error=None,
                            progress=None,
                            finished_at=None,
                            updated_at=db_now(),
                        )
                    )
            except sa.exc.IntegrityError:
                raise JobConflict(
                    f"another live job holds idempotency key {job.idempotency_key!r}"
                ) from None
            self._record_events(conn, [(job_id, job.type, JobStatus.PENDING.value)], "retry")
            self._notify_work(conn)
            return self._locked_job(conn, job_id)  # as retried, before a worker claims it

    def _locked_job(self, conn: sa.Connection, job_id: int) -> Job:
        row = (
            conn.execute(sa.select(jobs).where(jobs.c.id == job_id).with_for_update())
            .mappings()
            .first()
        )
        if row is None:
            archived = conn.execute(
                sa.select(job_history.c.status).where(job_history.c.id == job_id)
            ).scalar()
            if archived is not None:
                raise JobConflict(f"job {job_id} is archived in history ({archived})")
            raise KeyError(job_id)
        return _job_from_row(row)

    def pause(self, job_type: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                self._insert(job_type_pauses)
                .values(job_type=job_type, paused_at=db_now())
                .on_conflict_do_nothing(index_elements=["job_type"])
            )
            self._record_events(conn, [(None, job_type, None)], "paused")

    def resume(self, job_type: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(job_type_pauses.delete().where(job_type_pauses.c.job_type == job_type))
            self._record_events(conn, [(None, job_type, None)], "resumed")
            self._notify_work(conn)

    def paused_types(self) -> list[str]:
        with read_connection(self.engine) as conn:
            return list(conn.execute(sa.select(job_type_pauses.c.job_type)).scalars())

    # ---- worker telemetry -----------------------------------------------------------

    def schema_behind(self) -> str | None:
        """What is wrong when the database's schema is not the one this version was
        made for (rolled back under running processes, say), else None."""
        current, head = revision.stored_revision(self.engine), revision.head_revision()
        if current == head:
            return None
        return (
            f"the database's schema is at {current or 'base'}, this version needs {head}: "
            "stop the processes of this version, or run `enlarger db upgrade`"
        )

    def save_worker_stats(self, worker_id: str, stats: dict[str, Any]) -> None:
        """Replace a worker's saved counts; forget workers silent for `WORKER_STATS_KEEP_S`."""
        insert = self._insert(worker_stats)
        with self.engine.begin() as conn:
            conn.execute(
                insert.values(
                    worker_id=worker_id, updated_at=db_now(), stats=stats
                ).on_conflict_do_update(
                    index_elements=["worker_id"],
                    set_={"updated_at": db_now(), "stats": insert.excluded.stats},
                )
            )
            conn.execute(
                worker_stats.delete().where(
                    worker_stats.c.updated_at < db_now(-WORKER_STATS_KEEP_S)
                )
            )

    def worker_stats(self) -> list[tuple[str, float, dict[str, Any]]]:
        """(worker id, seconds since it saved, its counts) for every worker remembered."""
        with read_connection(self.engine) as conn:
            now = conn.execute(sa.select(db_now())).scalar_one()
            rows = conn.execute(sa.select(worker_stats).order_by(worker_stats.c.worker_id))
            return [(r.worker_id, (now - r.updated_at).total_seconds(), r.stats) for r in rows]

    # ---- reading --------------------------------------------------------------------

    def get_job(self, job_id: int) -> Job | None:
        with read_connection(self.engine) as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().first()
            if row is not None:
                job = _job_from_row(row)
                job.items_summary = self._items_summary(conn, job_id)
                return job
            row = (
                conn.execute(sa.select(job_history).where(job_history.c.id == job_id))
                .mappings()
                .first()
            )
        if row is None:
            return None
        job = _job_from_row(row)
        job.archived = True
        job.items_summary = row["items_summary"]
        return job

    def jobs_by_id(self, job_ids: Sequence[int]) -> dict[int, Job]:
        """The jobs with these ids, from the hot table or history, in two queries (a
        domain checking on the jobs it started, without one query each)."""
        found: dict[int, Job] = {}
        if not job_ids:
            return found
        with read_connection(self.engine) as conn:
            for table in (jobs, job_history):
                missing = [i for i in job_ids if i not in found]
                if not missing:
                    break
                query = sa.select(table).where(table.c.id.in_(missing))
                for row in conn.execute(query).mappings():
                    job = _job_from_row(row)
                    job.archived = table is job_history
                    found[job.id] = job
        return found

    def list_jobs(
        self,
        *,
        status: str | None = None,
        job_type: str | None = None,
        payload_match: tuple[str, str] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Job], int]:
        """Jobs in the hot table, newest first, and how many match in all;
        `payload_match=(field, value)` keeps those whose payload's field has that value
        (a domain's jobs about one of its objects)."""
        where = []
        if status:
            where.append(jobs.c.status == status)
        if job_type:
            where.append(jobs.c.type == job_type)
        if payload_match is not None:
            field, value = payload_match
            where.append(jobs.c.payload[field].as_string() == value)
        query = sa.select(jobs).where(*where).order_by(jobs.c.id.desc()).limit(limit)
        with read_connection(self.engine) as conn:
            rows = conn.execute(query.offset(offset)).mappings().all()
            total = conn.execute(sa.select(sa.func.count()).where(*where).select_from(jobs))
            return [_job_from_row(r) for r in rows], int(total.scalar_one())

    def live_jobs_by_payload(self, field: str, values: Sequence[str]) -> list[Job]:
        """Pending and running jobs whose payload's `field` is one of `values` (a domain's
        way to find the work about its objects, without the engine knowing them)."""
        if not values:
            return []
        query = (
            sa.select(jobs)
            .where(
                jobs.c.status.in_(("pending", "running")),
                jobs.c.payload[field].as_string().in_(list(values)),
            )
            .order_by(jobs.c.id)
        )
        with read_connection(self.engine) as conn:
            return [_job_from_row(r) for r in conn.execute(query).mappings()]

    def list_items(self, job_id: int) -> list[JobItem]:
        query = sa.select(job_items).where(job_items.c.job_id == job_id).order_by(job_items.c.id)
        with read_connection(self.engine) as conn:
            return [
                JobItem(r.key, ItemStatus(r.status), r.progress, r.error, r.data, r.updated_at)
                for r in conn.execute(query)
            ]

    def _items_summary(self, conn: sa.Connection, job_id: int) -> dict[str, int] | None:
        rows = conn.execute(
            sa.select(job_items.c.status, sa.func.count())
            .where(job_items.c.job_id == job_id)
            .group_by(job_items.c.status)
        ).all()
        if not rows:
            return None
        summary = {status.value: 0 for status in ItemStatus}
        summary.update({status: n for status, n in rows})
        summary["total"] = sum(n for _, n in rows)
        return summary

    def counts(self) -> dict[tuple[str, str], int]:
        """(type, status) → number of jobs: hot table by index plus history's running totals."""
        totals: Counter[tuple[str, str]] = Counter()
        with read_connection(self.engine) as conn:
            for table in (jobs, job_history_counts):
                n = sa.func.count() if table is jobs else sa.func.sum(table.c.n)
                query = sa.select(table.c.type, table.c.status, n).group_by(
                    table.c.type, table.c.status
                )
                for job_type, status, count in conn.execute(query):
                    totals[(job_type, status)] += int(count)
        return dict(totals)

    def live_counts_by_lane(self, priority_threshold: int) -> dict[tuple[str, str], int]:
        """(lane, status) → pending and running jobs; lane is `priority` for jobs at or
        above the threshold (reference 003's priority lane), else `normal`."""
        lane = sa.case((jobs.c.priority >= priority_threshold, "priority"), else_="normal")
        query = (
            sa.select(lane, jobs.c.status, sa.func.count())
            .where(jobs.c.status.in_(LIVE_STATUSES))
            .group_by(lane, jobs.c.status)
        )
        with read_connection(self.engine) as conn:
            return {(str(name), str(status)): int(n) for name, status, n in conn.execute(query)}

    def finished_since(self, seconds: float) -> dict[str, int]:
        """Status → jobs that finished in the last `seconds` (the hot table keeps the
        last `prune_after_seconds`): the throughput a dashboard shows."""
        query = (
            sa.select(jobs.c.status, sa.func.count())
            .where(jobs.c.finished_at.is_not(None), jobs.c.finished_at >= db_now(-seconds))
            .group_by(jobs.c.status)
        )
        with read_connection(self.engine) as conn:
            return {str(status): int(n) for status, n in conn.execute(query)}

    def oldest_ready_age_s(self) -> float | None:
        """Age of the oldest job that is ready to run: the queue's lag."""
        query = sa.select(sa.func.min(jobs.c.run_at)).where(
            jobs.c.status == JobStatus.PENDING, jobs.c.run_at <= db_now()
        )
        with read_connection(self.engine) as conn:
            oldest = conn.execute(query).scalar()
            if oldest is None:
                return None
            now = conn.execute(sa.select(db_now())).scalar_one()
        return max(0.0, (now - oldest).total_seconds())

    def read_events(self, after_id: int = 0, limit: int = 500) -> list[Event]:
        """Events after `after_id`, oldest first, safe to resume from the last one.

        On PostgreSQL ids are taken at insert and transactions commit in any order, so a
        missing id may still arrive. Reading stops at such a gap until the event after it
        is `EVENT_GAP_GRACE_S` old; by then the gap is a rolled-back transaction, unless a
        caller kept an enqueueing transaction open that long."""
        query = (
            sa.select(job_events, db_now().label("now"))
            .where(job_events.c.id > after_id)
            .order_by(job_events.c.id)
            .limit(limit)
        )
        events: list[Event] = []
        expected = after_id + 1 if after_id else None
        with read_connection(self.engine) as conn:
            for r in conn.execute(query):
                settled = (r.now - r.created_at).total_seconds() >= EVENT_GAP_GRACE_S
                if expected is not None and r.id != expected and not settled:
                    break
                events.append(
                    Event(r.id, r.created_at, r.kind, r.job_id, r.job_type, r.status, r.data)
                )
                expected = r.id + 1
        return events

    def can_resume_after(self, after_id: int) -> bool:
        """Whether reading on after `after_id` misses nothing: no event after it has been
        pruned (the oldest kept follows it, or, with none kept, none was ever given after
        it), and it is an id this database has given (not one from another database or
        from after the backup this one was restored from)."""
        with read_connection(self.engine) as conn:
            first, last = conn.execute(
                sa.select(sa.func.min(job_events.c.id), sa.func.max(job_events.c.id))
            ).one()
            # an event inserted with its id named leaves PostgreSQL's sequence behind it
            given = max(conn.execute(self.last_given_event_id_sql).scalar_one(), last or 0)
        if after_id > given:
            return False
        return after_id >= given if first is None else first <= after_id + 1

    def last_event_id(self) -> int:
        with read_connection(self.engine) as conn:
            return conn.execute(sa.select(sa.func.max(job_events.c.id))).scalar() or 0

    # ---- schedules ------------------------------------------------------------------

    def sync_schedules(
        self,
        schedules: Sequence[Schedule],
        conn: sa.Connection | None = None,
        *,
        first_run_after_period: bool = False,
    ) -> None:
        """Make the table know every schedule; an existing one keeps its next run time. A
        new one fires at once, or after its first period with `first_run_after_period`
        (a project's maintenance has nothing to check the moment it is created). Only
        schedules missing or changed are written: workers starting together (each syncs
        the same ones) then take no row lock they would wait on."""
        if not schedules:
            return
        with self.transaction(conn) as conn:
            known = {
                row.name: (row.job_type, row.payload, row.priority, row.interval_s)
                for row in conn.execute(
                    sa.select(
                        job_schedules.c.name,
                        job_schedules.c.job_type,
                        job_schedules.c.payload,
                        job_schedules.c.priority,
                        job_schedules.c.interval_s,
                    ).where(job_schedules.c.name.in_([s.name for s in schedules]))
                )
            }
            for s in schedules:
                if known.get(s.name) == (s.job_type, s.payload, s.priority, s.every_s):
                    continue
                insert = self._insert(job_schedules).values(
                    name=s.name,
                    job_type=s.job_type,
                    payload=s.payload,
                    priority=s.priority,
                    interval_s=s.every_s,
                    next_run_at=db_now(s.every_s if first_run_after_period else 0),
                    updated_at=db_now(),
                )
                conn.execute(
                    insert.on_conflict_do_update(
                        index_elements=["name"],
                        set_={
                            "job_type": s.job_type,
                            "payload": insert.excluded.payload,
                            "priority": s.priority,
                            "interval_s": s.every_s,
                            "updated_at": db_now(),
                        },
                    )
                )

    def fire_due_schedules(self) -> list[int]:
        """Enqueue each due schedule once and move it to its next period (missed periods
        are skipped, not caught up). The due rows stay locked until commit (SKIP LOCKED on
        PostgreSQL, the single writer on SQLite), so one period fires once however many
        workers tick at the same moment; the period's idempotency key guards it again."""
        fired: list[int] = []
        due_query = (
            sa.select(job_schedules)
            .where(job_schedules.c.next_run_at <= db_now())
            .with_for_update(skip_locked=True)
        )
        with self.engine.begin() as conn:
            now = conn.execute(sa.select(db_now())).scalar_one()
            for s in conn.execute(due_query).all():
                behind = (now - s.next_run_at).total_seconds()
                next_run = s.next_run_at + (math.floor(behind / s.interval_s) + 1) * timedelta(
                    seconds=s.interval_s
                )
                period_index = int(s.next_run_at.timestamp() // s.interval_s)
                job = NewJob(
                    s.job_type,
                    s.payload,
                    priority=s.priority,
                    idempotency_key=f"schedule:{s.name}:{period_index}",
                )
                result = self.enqueue(job, conn)
                conn.execute(
                    job_schedules.update()
                    .where(job_schedules.c.name == s.name)
                    .values(next_run_at=next_run, last_job_id=result.id, updated_at=db_now())
                )
                fired.append(result.id)
        return fired

    # ---- pruning --------------------------------------------------------------------

    def prune(
        self, older_than_s: float, *, batch: int = 5000, event_retention_s: float | None = None
    ) -> int:
        """Move finished jobs older than `older_than_s` into history (with their items'
        summary) and keep history's totals; delete events past their retention."""
        picked = (
            sa.select(jobs.c.id)
            .where(
                jobs.c.status.in_(FINISHED_STATUSES),
                jobs.c.finished_at < db_now(-older_than_s),
            )
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        with self.engine.begin() as conn:
            ids = list(conn.execute(picked).scalars())
            if ids:
                self._archive(conn, ids)
            if event_retention_s is not None:
                conn.execute(
                    job_events.delete().where(job_events.c.created_at < db_now(-event_retention_s))
                )
        return len(ids)

    def _archive(self, conn: sa.Connection, ids: list[int]) -> None:
        summaries: dict[int, dict[str, int]] = {}
        item_counts = conn.execute(
            sa.select(job_items.c.job_id, job_items.c.status, sa.func.count())
            .where(job_items.c.job_id.in_(ids))
            .group_by(job_items.c.job_id, job_items.c.status)
        )
        for job_id, status, n in item_counts:
            summary = summaries.setdefault(job_id, {"total": 0})
            summary[status] = n
            summary["total"] += n
        rows = (
            conn.execute(
                sa.select(*(jobs.c[name] for name in HISTORY_COLUMNS)).where(jobs.c.id.in_(ids))
            )
            .mappings()
            .all()
        )
        conn.execute(
            job_history.insert(),
            [{**row, "items_summary": summaries.get(row["id"])} for row in rows],
        )
        conn.execute(job_items.delete().where(job_items.c.job_id.in_(ids)))
        conn.execute(jobs.delete().where(jobs.c.id.in_(ids)))
        totals = Counter((row["type"], row["status"]) for row in rows)
        insert = self._insert(job_history_counts)
        for (job_type, status), n in totals.items():
            conn.execute(
                insert.values(type=job_type, status=status, n=n).on_conflict_do_update(
                    index_elements=["type", "status"],
                    set_={"n": job_history_counts.c.n + insert.excluded.n},
                )
            )


def _job_from_row(row: Any) -> Job:
    known = Job.__dataclass_fields__
    values = {k: v for k, v in dict(row).items() if k in known and k != "items_summary"}
    values["status"] = JobStatus(values["status"])
    return Job(**values)
