"""The worker: one supervisor thread that owns every database conversation of a worker
process, and executors that run handlers.

The supervisor loop, in order of what it does each turn:
1. collect outcomes of finished handlers (sent through `inbox`);
2. in one transaction, record those outcomes and claim jobs for the free slots of each
   lane (the normal lane takes any job, highest priority first; the priority lane only
   `priority >= priority_threshold`, so urgent jobs start even when the normal lane is full);
3. every heartbeat, renew the leases of running jobs; a lost lease or a cancel request
   stops the execution (a CPU child is killed);
4. every second, rescue expired leases (any worker's), fire due schedules, and now and
   then prune finished jobs into history.

Handlers never touch leases, so a CPU-bound handler cannot starve its heartbeat.

One module, though long: the supervisor is one state machine whose turn order above is
the contract; its executors are small classes beside it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from enlarger.config import Settings
from enlarger.logs import OutageLog
from enlarger.queue.context import JobCancelled, JobContext
from enlarger.queue.cpu import ChildCrashed, ChildKilled, ChildTask, CpuPool
from enlarger.queue.model import (
    ClaimedJob,
    ClaimRequest,
    DependencyDown,
    ErrorCode,
    JobError,
    JobStatus,
    Outcome,
    OutcomeKind,
    RetryableError,
)
from enlarger.queue.registry import FailedJob, Handler, HandlerKind, Registry
from enlarger.queue.retry import RetryPolicy, as_dependency_down
from enlarger.queue.store import Store
from enlarger.queue.telemetry import Telemetry

log = logging.getLogger(__name__)
FAILED_AGAIN_EVERY_S = 60.0  # a failure that is no outage is logged again this often

WAKE = object()
MAINTENANCE_EVERY_S = 1.0
PRUNE_EVERY_S = 30.0
IDLE_POLL_S = 0.5
TELEMETRY_EVERY_S = 5.0
LINGER_S = 0.002  # how long a finished outcome may wait to share a transaction
DATABASE = "database"  # the dependency named in outage log lines
START_PAUSE_MAX_S = 5.0  # the longest wait between tries to start during an outage


def settle_heap() -> None:
    """For a process that is about to become a worker: move everything allocated so far
    (modules, SQLAlchemy's caches…) out of the garbage collector's reach. The supervisor
    allocates a few objects per job, and each full collection would otherwise rescan that
    whole startup heap: a quarter of a worker's CPU on short jobs, measured."""
    gc.collect()
    gc.freeze()


class _HandlerThreads:
    """Daemon threads running handlers, started on demand up to `size`. Unlike
    ThreadPoolExecutor's, they never hold up process exit: after a stop, a handler that
    ignores cancellation must not keep the worker alive (its job was handed back)."""

    def __init__(self, size: int) -> None:
        self._tasks: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._size = size
        self._started = 0
        self._idle = 0  # threads waiting for a task
        self._queued = 0  # tasks not yet taken by a thread
        self._lock = threading.Lock()

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            task = self._tasks.get()
            with self._lock:
                self._idle -= 1
            if task is None:
                return
            with self._lock:
                self._queued -= 1
            fn, args = task
            fn(*args)

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            self._queued += 1
            grow = self._queued > self._idle and self._started < self._size
            if grow:
                self._started += 1
        if grow:
            threading.Thread(target=self._serve, name="enlarger-job", daemon=True).start()
        self._tasks.put((fn, args))

    def shutdown(self) -> None:
        for _ in range(self._started):
            self._tasks.put(None)


@dataclass
class _Running:
    job: ClaimedJob
    lane: int
    ctx: JobContext
    deadline: float | None
    started: float = field(default_factory=time.monotonic)


@dataclass
class WorkerStats:
    completed: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    rescued: int = 0
    lost_leases: int = 0
    claims: int = 0
    outcomes_rejected: int = 0


class Worker:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        settings: Settings,
        *,
        services: Any = None,
        build_services: Callable[[Settings], Any] | None = None,
        worker_id: str | None = None,
    ) -> None:
        """`services` reach handlers as `ctx.services`; CPU children build their own with
        `build_services(settings)` (a module-level function), once each."""
        self.store = store
        self.registry = registry
        self.settings = settings
        self.services = services
        self.build_services = build_services
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.retry_policy = RetryPolicy(settings.retry_base_seconds, settings.retry_cap_seconds)
        self.stats = WorkerStats()
        self.outages = OutageLog(log)
        self._cut_off_at = -math.inf  # when this worker last found the database out
        self._waited_on: dict[str, set[str]] = {}  # a service that was out: job types that waited
        self.telemetry = Telemetry()
        self._telemetry_saved_at = 0.0
        self.lease_s = settings.stale_seconds
        normal_slots = settings.max_parallel_jobs - settings.priority_lane_slots
        # lane 0: everything, highest priority first; lane 1: the priority lane, which
        # only takes `priority >= priority_threshold` (claimed second: when lane 0 came
        # back short there is nothing left for it either)
        self._lane_slots = (normal_slots, settings.priority_lane_slots)
        self._lane_min_priority = (None, settings.priority_threshold)
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._running: dict[int, _Running] = {}
        self._busy = [0, 0]  # running jobs per lane
        self._hungry = [True, True]  # per lane: may there be ready jobs for it?
        self._outcomes: list[Outcome] = []
        self._failing: dict[int, ClaimedJob] = {}  # failed for good, hook waiting on the record
        # "what: error type" of a failure that is no outage: when last logged, times since
        self._failed_again_at: dict[str, tuple[float, int]] = {}
        self._first_outcome_at = 0.0
        self._min_claim = max(1, min(settings.claim_batch, settings.max_parallel_jobs) // 4)
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        # a few spare threads: a timed-out sync handler keeps its thread until it returns
        self._threads = _HandlerThreads(settings.max_parallel_jobs + 4)
        cpu_modules = {
            h.fn.__module__ for h in registry.handlers.values() if h.kind is HandlerKind.CPU
        }
        self._cpu = CpuPool(
            settings.cpu_max_tasks_per_child,
            settings.cpu_max_rss_mb,
            settings.cpu_kill_rss_mb,
            cpu_modules,
        )
        self._has_cpu_handlers = bool(cpu_modules)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: dict[int, asyncio.Future[None]] = {}  # async executions, on the loop
        self._loop_outcomes: list[Outcome] = []  # finished on the loop, not yet handed over
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> threading.Thread:
        """Run the supervisor in a background thread (for embedding and tests)."""
        self._thread = threading.Thread(target=self.run, name="enlarger-worker", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop claiming; running jobs get `shutdown_grace_seconds` to finish, then are
        handed back to the queue (their attempt not counted)."""
        self._stopping.set()
        self._inbox.put(WAKE)
        if wait:
            self._stopped.wait(timeout)

    def run(self) -> None:
        if not self._sync_schedules():
            self._stopped.set()
            return
        listener = self.store.listen(
            self.wake, self.settings.poll_interval_ms / 1000, outages=self.outages
        )
        if self._has_cpu_handlers:
            self._cpu.warm()
        log.info(
            "worker %s started (%s slots, %s in the priority lane)",
            self.worker_id,
            self.settings.max_parallel_jobs,
            self.settings.priority_lane_slots,
        )
        try:
            self._supervise()
            self._save_telemetry(force=True)
        finally:
            listener.close()
            self._threads.shutdown()
            self._cpu.close()
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._stopped.set()
            log.info("worker %s stopped: %s", self.worker_id, self.stats)

    def wake(self) -> None:
        self._inbox.put(WAKE)

    # ---- the supervisor loop ----------------------------------------------------------

    def _supervise(self) -> None:
        now = time.monotonic()
        next_heartbeat = now + self.settings.heartbeat_ms / 1000
        next_maintenance = now
        next_prune = now + PRUNE_EVERY_S
        next_poll = now
        grace_until: float | None = None
        while True:
            self._drain_inbox(block_until=None)
            now = time.monotonic()
            if now >= next_poll:
                self._hungry, next_poll = [True, True], now + IDLE_POLL_S
            stopping = self._stopping.is_set()
            requests = [] if stopping else self._claim_requests()
            if self._exchange_due(now, sum(r.limit for r in requests)):
                self._exchange(requests)
                now = time.monotonic()
            if now >= next_heartbeat:
                self._heartbeat(now)
                self._enforce_deadlines(now)
                next_heartbeat = now + self.settings.heartbeat_ms / 1000
            if now >= next_maintenance and not stopping:
                self._maintenance(prune=now >= next_prune)
                next_maintenance = now + MAINTENANCE_EVERY_S
                if now >= next_prune:
                    next_prune = now + PRUNE_EVERY_S
            if stopping:
                grace_until = grace_until or now + self.settings.shutdown_grace_seconds
                if now >= grace_until:
                    self._hand_back_running()
                if not self._running and not self._outcomes:
                    return
            elif sum(r.limit for r in self._claim_requests()) >= self._min_claim:
                continue
            deadline = min(next_heartbeat, next_poll, next_maintenance)
            if self._outcomes:
                deadline = min(deadline, self._first_outcome_at + LINGER_S)
            if stopping and grace_until is not None:
                deadline = min(deadline, grace_until)
            self._drain_inbox(block_until=deadline)

    def _exchange_due(self, now: float, asked: int) -> bool:
        """Batch the database work: go when enough slots are free to claim a good batch,
        when the oldest finished outcome has lingered long enough, or when idle."""
        if asked >= self._min_claim or (asked and not self._running):
            return True
        if not self._outcomes:
            return False
        return not self._running or now - self._first_outcome_at >= LINGER_S

    def _drain_inbox(self, block_until: float | None) -> None:
        """Move finished outcomes out of the inbox; a wake-up makes every lane hungry
        again. With `block_until`, wait for the first message until then."""
        block = block_until is not None
        while True:
            try:
                if block:
                    timeout = max(0.0, block_until - time.monotonic())  # type: ignore[operator]
                    message = self._inbox.get(timeout=timeout)
                    block = False
                else:
                    message = self._inbox.get_nowait()
            except queue.Empty:
                return
            if message is WAKE:
                self._hungry = [True, True]
            elif isinstance(message, list):
                for outcome in message:
                    self._collect(outcome)
            else:
                self._collect(message)

    def _collect(self, outcome: Outcome) -> None:
        running = self._running.get(outcome.job_id)
        if running is None or running.job.lease_token != outcome.lease_token:
            return
        self._finish(running, outcome)

    def _finish(self, running: _Running, outcome: Outcome) -> None:
        """Free the job's slot, count its execution and queue its outcome for recording."""
        self._release(running.job.id)
        seconds = time.monotonic() - running.started
        self.telemetry.finished(running.job.type, outcome.kind.value, seconds)
        if outcome.kind is OutcomeKind.FAILED and self._wants_failures(running.job.type):
            self._failing[running.job.id] = running.job
        self._add_outcome(outcome)

    def _add_outcome(self, outcome: Outcome) -> None:
        if not self._outcomes:
            self._first_outcome_at = time.monotonic()
        self._outcomes.append(outcome)

    def _release(self, job_id: int) -> _Running | None:
        """Free a job's slot (it finished, timed out, lost its lease or was handed back)."""
        running = self._running.pop(job_id, None)
        if running is not None:
            self._busy[running.lane] -= 1
        return running

    def _claim_requests(self) -> list[ClaimRequest]:
        """Per lane: its free slots (capped at `claim_batch`) if it may find ready jobs."""
        cap = self.settings.claim_batch
        return [
            ClaimRequest(min(cap, slots - busy) if hungry else 0, min_priority)
            for slots, busy, hungry, min_priority in zip(
                self._lane_slots, self._busy, self._hungry, self._lane_min_priority, strict=True
            )
        ]

    def _exchange(self, requests: list[ClaimRequest]) -> None:
        """Record outcomes and claim. A lane that got all it asked for may find more; one
        that came back short has drained what is ready for it, until a wake-up."""
        outcomes, self._outcomes = self._outcomes, []
        try:
            accepted, claimed = self.store.exchange(
                self.worker_id, outcomes, requests, self.lease_s
            )
        except Exception as exc:
            self._database_trouble("exchange", exc)
            self._outcomes = outcomes + self._outcomes
            time.sleep(0.5)
            return
        self.outages.up(DATABASE)
        if self._failed_again_at:
            self._failed_again_at = {
                k: v for k, v in self._failed_again_at.items() if not k.startswith("exchange:")
            }
        self._count(outcomes, set(accepted))
        self._tell_failures(outcomes, set(accepted))
        self._dispatch_all(claimed)
        self.stats.claims += sum(len(jobs) for jobs in claimed)
        for lane, (request, jobs) in enumerate(zip(requests, claimed, strict=True)):
            if request.limit:
                self._hungry[lane] = len(jobs) == request.limit

    def _wants_failures(self, job_type: str) -> bool:
        handler = self.registry.get(job_type)
        return handler is not None and handler.on_failed is not None

    def _tell_failures(self, outcomes: list[Outcome], accepted: set[int]) -> None:
        """Call the `on_failed` hook of each job whose failure for good was just recorded
        (one whose lease had moved on failed nothing)."""
        if not self._failing:
            return
        for outcome in outcomes:
            job = self._failing.pop(outcome.job_id, None)
            if job is not None and outcome.job_id in accepted:
                self._tell_failed(job.id, job.type, job.payload, outcome.error_code, outcome.error)

    def _tell_failed(
        self, job_id: int, job_type: str, payload: Any, code: str | None, error: str | None
    ) -> None:
        handler = self.registry.get(job_type)
        if handler is None or handler.on_failed is None:
            return
        try:
            handler.on_failed(FailedJob(job_id, job_type, payload, code, error, self.services))
        except Exception:
            log.exception("job %s (%s): its on_failed hook failed", job_id, job_type)

    def _count(self, outcomes: list[Outcome], accepted: set[int]) -> None:
        for outcome in outcomes:
            if outcome.job_id not in accepted:
                self.stats.outcomes_rejected += 1
            elif outcome.kind is OutcomeKind.COMPLETED:
                self.stats.completed += 1
            elif outcome.kind is OutcomeKind.FAILED:
                self.stats.failed += 1
            elif outcome.kind is OutcomeKind.RETRY:
                self.stats.retried += 1
            elif outcome.kind is OutcomeKind.CANCELLED:
                self.stats.cancelled += 1

    def _heartbeat(self, now: float) -> None:
        """Renew the leases of jobs that have run half a heartbeat or longer (a claim has
        just granted the others a whole lease), and hear of lost leases and cancel requests.
        Short jobs then finish without a heartbeat ever writing to their rows."""
        started_by = now - self.settings.heartbeat_ms / 2000
        leases = {
            job_id: r.job.lease_token
            for job_id, r in self._running.items()
            if r.started <= started_by
        }
        if not leases:
            return
        try:
            reply = self.store.heartbeat(leases, self.lease_s)
        except Exception as exc:
            self._database_trouble("heartbeat", exc)
            return
        for job_id in reply.lost:
            running = self._release(job_id)
            if running is not None:
                log.warning("job %s: lease lost; stopping its execution", job_id)
                self.stats.lost_leases += 1
                self._stop_execution(running)
        for job_id in reply.cancel_requested:
            running = self._running.get(job_id)
            if running is not None:
                self._stop_execution(running)

    def _enforce_deadlines(self, now: float) -> None:
        """Past an I/O handler's deadline the supervisor records the timeout itself, frees
        the slot, cancels the execution (an async task is cancelled, a sync handler sees
        `ctx.cancelled`) and ignores whatever it returns. CPU children are killed by their
        runner thread."""
        for running in list(self._running.values()):
            if running.deadline is None or running.deadline > now:
                continue
            handler = self.registry.get(running.job.type)
            if handler is None or handler.kind is HandlerKind.CPU:
                continue
            self._stop_execution(running)
            timeout = self._failure(
                running.job,
                ErrorCode.TIMEOUT,
                "the handler ran past its time limit",
                retryable=True,
            )
            self._finish(running, timeout)

    def _maintenance(self, prune: bool) -> None:
        try:
            # back from a database outage, every worker's leases look lapsed: let them
            # (this one's too) renew theirs for a lease period before rescuing any
            just_back = time.monotonic() - self._cut_off_at < self.lease_s
            rescued = [] if just_back else self.store.rescue_expired()
            if rescued:
                self.stats.rescued += len(rescued)
                self.telemetry.add("jobs_rescued", len(rescued))
                self._save_telemetry(force=True)  # counted even if this worker dies next
                log.warning("rescued %d job(s) with expired leases: %s", len(rescued), rescued)
            for job_id in rescued:  # those whose attempts were spent failed for good
                job = self.store.get_job(job_id)
                if job is not None and job.status == JobStatus.FAILED:
                    self._tell_failed(job.id, job.type, job.payload, job.error_code, job.last_error)
            self.store.fire_due_schedules()
            self._save_telemetry()
            if prune:
                self.store.prune(
                    self.settings.prune_after_seconds,
                    event_retention_s=self.settings.event_retention_seconds,
                )
        except Exception as exc:
            self._database_trouble("maintenance", exc)

    def _sync_schedules(self) -> bool:
        """Make the table know this worker's schedules, waiting out an outage or a lock
        held elsewhere; False if asked to stop meanwhile."""
        pause = 0.5
        while not self._stopping.is_set():
            try:
                self.store.sync_schedules(list(self.registry.schedules.values()))
            except Exception as exc:
                if as_dependency_down(exc) is None:
                    raise
                self._database_trouble("starting", exc)
                self._stopping.wait(pause)
                pause = min(2 * pause, START_PAUSE_MAX_S)
                continue
            self.outages.up(DATABASE)
            return True
        return False

    def _database_trouble(self, what: str, exc: Exception) -> None:
        """An outage is one line when it starts and a reminder now and then; anything
        else is a bug, logged with its traceback."""
        down = as_dependency_down(exc)
        if down is not None and not down.is_outage:
            log.warning(
                "worker %s: %s waited too long on a lock: %s", self.worker_id, what, down.message
            )
        elif down is not None:
            self._cut_off_at = time.monotonic()
            self.outages.down(DATABASE, f"{down.message} (worker {self.worker_id}, {what})")
        else:
            self._failed_again(what, exc)

    def _failed_again(self, what: str, exc: Exception) -> None:
        """A failure that is no outage: a bug, or a schema this version does not know (the
        database rolled back under it). The first is logged with its traceback and what
        is wrong with the schema, if anything; the same again once a minute, counted."""
        now = time.monotonic()
        key = f"{what}: {type(exc).__name__}"
        since, times = self._failed_again_at.get(key, (None, 0))
        if since is not None and now - since < FAILED_AGAIN_EVERY_S:
            self._failed_again_at[key] = (since, times + 1)
            return
        self._failed_again_at[key] = (now, 0)
        try:
            schema = self.store.schema_behind()
        except Exception:  # the database cannot say: the failure is told as it is
            schema = None
        note = f" ({schema})" if schema else ""
        if since is None:
            log.exception("worker %s: %s failed%s", self.worker_id, what, note)
        else:
            log.error(
                "worker %s: %s still failing, %d times in %.0f s: %s%s",
                self.worker_id,
                what,
                times + 1,
                now - since,
                _first_line(exc),
                note,
            )

    def _save_telemetry(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._telemetry_saved_at >= TELEMETRY_EVERY_S:
            self.store.save_worker_stats(self.worker_id, self.telemetry.snapshot())
            self._telemetry_saved_at = now

    def _hand_back_running(self) -> None:
        for running in list(self._running.values()):
            self._stop_execution(running)
            job = running.job
            self._finish(running, Outcome(job.id, job.lease_token, OutcomeKind.RELEASED))
        if self._outcomes:
            self._exchange([])

    # ---- executing jobs ---------------------------------------------------------------

    def _dispatch_all(self, claimed: list[list[ClaimedJob]]) -> None:
        """Start every claimed job: sync and CPU handlers on handler threads, `async def`
        handlers on the worker's event loop in one hand-off for the whole batch."""
        on_loop: list[tuple[Handler, _Running]] = []
        for lane, jobs in enumerate(claimed):
            for job in jobs:
                handler = self.registry.get(job.type)
                running = self._start(job, lane, handler)
                if handler is None:
                    known = ", ".join(sorted(self.registry.handlers)) or "none"
                    message = f"no handler for job type {job.type!r} (known: {known})"
                    self._inbox.put(
                        self._failure(job, ErrorCode.UNKNOWN_JOB_TYPE, message, retryable=False)
                    )
                elif handler.is_async:
                    on_loop.append((handler, running))
                else:
                    self._threads.submit(self._execute, handler, running)
        if on_loop:
            self._event_loop().call_soon_threadsafe(self._start_on_loop, on_loop)

    def _start(self, job: ClaimedJob, lane: int, handler: Handler | None) -> _Running:
        ctx = JobContext(
            job.id,
            job.type,
            job.attempts,
            job.max_attempts,
            job.lease_token,
            reporter=lambda kind, args, job=job: self._report(job, kind, args),
            services=self.services,
        )
        timeout = job.timeout_s or (handler.timeout_s if handler else None)
        timeout = timeout or self.settings.job_timeout_seconds
        running = _Running(job, lane, ctx, time.monotonic() + timeout)
        self._running[job.id] = running
        self._busy[lane] += 1
        return running

    def _stop_execution(self, running: _Running) -> None:
        """Cancel a job's execution: CPU children are killed by their runner thread, async
        tasks are cancelled, sync handlers see `ctx.cancelled`."""
        running.ctx.cancel_flag.set()
        if self._loop is not None and running.job.id in self._tasks:
            self._loop.call_soon_threadsafe(self._cancel_task, running.job.id)

    def _execute(self, handler: Handler, running: _Running) -> None:
        job, ctx = running.job, running.ctx
        try:
            if handler.kind is HandlerKind.CPU:
                result = self._run_in_child(handler, running)
            else:
                result = handler.fn(ctx, job.payload)
            outcome = self._settled(job, ctx, result)
        except BaseException as exc:  # even SystemExit: the slot must come back
            outcome = self._from_exception(handler, job, exc)
        self._inbox.put(outcome)

    def _start_on_loop(self, batch: list[tuple[Handler, _Running]]) -> None:
        loop = asyncio.get_running_loop()
        for handler, running in batch:
            task = loop.create_task(self._execute_async(handler, running))
            self._tasks[running.job.id] = task

    async def _execute_async(self, handler: Handler, running: _Running) -> None:
        """Deadlines and cancellation arrive as `task.cancel()` from the supervisor."""
        job, ctx = running.job, running.ctx
        try:
            ctx.check_cancelled()
            outcome = self._settled(job, ctx, await handler.fn(ctx, job.payload))
        except BaseException as exc:
            outcome = self._from_exception(handler, job, exc)
        finally:
            self._tasks.pop(job.id, None)
        if not self._loop_outcomes:
            asyncio.get_running_loop().call_soon(self._hand_over_loop_outcomes)
        self._loop_outcomes.append(outcome)

    def _hand_over_loop_outcomes(self) -> None:
        """One inbox message per event-loop turn, however many async jobs finished in it."""
        outcomes, self._loop_outcomes = self._loop_outcomes, []
        self._inbox.put(outcomes)

    def _cancel_task(self, job_id: int) -> None:
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()

    def _run_in_child(self, handler: Handler, running: _Running) -> Any:
        job = running.job
        child = self._cpu.acquire()
        task = ChildTask(
            handler.fn,
            job.payload,
            job.id,
            job.type,
            job.attempts,
            job.max_attempts,
            job.lease_token,
            self.settings,
            self.build_services,
        )
        try:
            return child.run(
                task,
                running.ctx.reporter,
                running.deadline,
                running.ctx.cancel_flag,
                kill_rss=self._cpu.kill_rss,
            )
        finally:
            self._cpu.release(child)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="enlarger-async", daemon=True).start()
            self._loop = loop
        return self._loop

    def _report(self, job: ClaimedJob, kind: str, args: tuple[Any, ...]) -> None:
        """Progress and item updates from a handler (any thread), fenced by its token."""
        try:
            if kind == "progress":
                self.store.set_progress(job.id, job.lease_token, args[0])
            elif kind == "item":
                key, status, progress, error, data = args
                self.store.update_item(
                    job.id, job.lease_token, key, status, progress=progress, error=error, data=data
                )
            elif kind == "count":
                self.telemetry.add(*args)
        except Exception:
            log.exception("job %s: could not record %s", job.id, kind)

    # ---- outcomes -------------------------------------------------------------------

    def _settled(self, job: ClaimedJob, ctx: JobContext, result: Any) -> Outcome:
        if ctx.cancelled:
            return self._cancelled(job)
        for name, job_types in list(self._waited_on.items()):  # a job that had waited ran
            if job.type in job_types and self._waited_on.pop(name, None) is not None:
                self.outages.up(name)
        return Outcome(job.id, job.lease_token, OutcomeKind.COMPLETED, result=result)

    def _from_exception(self, handler: Handler, job: ClaimedJob, exc: BaseException) -> Outcome:
        """Map what a handler raised to its job's outcome."""
        if isinstance(exc, JobCancelled | asyncio.CancelledError):
            return self._cancelled(job)
        if isinstance(exc, ChildKilled) and exc.reason == "memory":
            limit_mb = self.settings.cpu_kill_rss_mb
            message = f"the handler's process passed {limit_mb} MB of memory and was killed"
            return self._failure(job, ErrorCode.MEMORY_LIMIT, message, retryable=False)
        if isinstance(exc, ChildKilled) and exc.reason != "timeout":
            return self._cancelled(job)
        if isinstance(exc, ChildKilled | TimeoutError):
            message = "the handler ran past its time limit" + (
                " and its process was killed" if isinstance(exc, ChildKilled) else ""
            )
            return self._failure(job, ErrorCode.TIMEOUT, message, retryable=True)
        if isinstance(exc, ChildCrashed):
            return self._failure(job, ErrorCode.WORKER_CRASHED, str(exc), retryable=True)
        if isinstance(exc, JobError):  # declared: its code says what kind, its words why
            message = str(exc)
        elif isinstance(exc, OSError) and exc.filename is not None:  # no server path shown
            message = f"{type(exc).__name__}: {exc.strerror or 'error'}"
        else:
            message = f"{type(exc).__name__}: {exc}"
        passing = as_dependency_down(exc) or (
            DependencyDown(getattr(exc, "code", ErrorCode.DEPENDENCY_UNAVAILABLE), str(exc))
            if isinstance(exc, handler.passing_errors)
            else None
        )
        if passing is not None:
            return self._outage(job, passing)
        if isinstance(exc, JobError):
            code, retryable = exc.code, exc.retryable
        else:
            code = ErrorCode.HANDLER_ERROR.value
            retryable = not isinstance(exc, handler.permanent_errors)
        delay = exc.delay_s if isinstance(exc, RetryableError) else None
        return self._failure(job, code, message, retryable=retryable, delay_s=delay)

    def _outage(self, job: ClaimedJob, down: DependencyDown) -> Outcome:
        """A service the job needs is out: the job waits for it, its attempt not spent,
        until the outage budget (counted from its first such failure) is used up."""
        waited = job.outage_waited_s or 0.0
        if job.outage_waited_s is None or waited < self.settings.outage_budget_seconds:
            self._waited_on.setdefault(down.service, set()).add(job.type)
            if down.is_outage:
                self.outages.down(down.service, f"{down.message} (job {job.id}, {job.type})")
                log.debug("job %s (%s) waits for a service: %s", job.id, job.type, down.message)
            else:
                log.info(
                    "job %s (%s) waits: the %s is busy: %s",
                    job.id,
                    job.type,
                    down.service,
                    down.message,
                )
            return Outcome(
                job.id,
                job.lease_token,
                OutcomeKind.WAIT,
                error_code=down.code,
                error=down.message,
                retry_delay_s=self.retry_policy.outage_delay(waited),
            )
        return self._failure(job, down.code, down.message, retryable=True)

    def _failure(
        self,
        job: ClaimedJob,
        code: str,
        message: str,
        *,
        retryable: bool,
        delay_s: float | None = None,
    ) -> Outcome:
        again = retryable and job.attempts < job.max_attempts
        log.info(
            "job %s (%s) attempt %d of %d failed%s: %s",
            job.id,
            job.type,
            job.attempts,
            job.max_attempts,
            ", to be retried" if again else " for good",
            message,
        )
        if again:
            delay = self.retry_policy.delay(job.attempts) if delay_s is None else delay_s
            return Outcome(
                job.id,
                job.lease_token,
                OutcomeKind.RETRY,
                error_code=code,
                error=message,
                retry_delay_s=delay,
            )
        return Outcome(job.id, job.lease_token, OutcomeKind.FAILED, error_code=code, error=message)

    @staticmethod
    def _cancelled(job: ClaimedJob) -> Outcome:
        return Outcome(
            job.id,
            job.lease_token,
            OutcomeKind.CANCELLED,
            error_code=ErrorCode.CANCELLED.value,
            error="cancelled while running",
        )


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
