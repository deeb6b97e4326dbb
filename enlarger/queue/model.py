"""The data the engine passes around: jobs as stored, claims, outcomes and job errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ItemStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class ErrorCode(StrEnum):
    """Error codes the engine itself assigns; handlers add their own (e.g. CORRUPT_IMAGE)."""

    HANDLER_ERROR = "HANDLER_ERROR"
    UNKNOWN_JOB_TYPE = "UNKNOWN_JOB_TYPE"
    TIMEOUT = "TIMEOUT"
    LEASE_EXPIRED = "LEASE_EXPIRED"
    CANCELLED = "CANCELLED"
    WORKER_CRASHED = "WORKER_CRASHED"
    MEMORY_LIMIT = "MEMORY_LIMIT"
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    DATABASE_BUSY = "DATABASE_BUSY"  # up, but a lock was not had in time
    DEPENDENCY_UNAVAILABLE = "DEPENDENCY_UNAVAILABLE"  # a handler's `passing_errors`


class JobError(Exception):
    """Raised by a handler to fail its job with a code and a message for people."""

    retryable = True

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message or code

    def __reduce__(self) -> tuple[Any, ...]:  # survive the pipe from a CPU child
        return (type(self), (self.code, self.message))


class PermanentError(JobError):
    """The input can never succeed (a corrupt image, say): fail at once, no retries."""

    retryable = False


class RetryableError(JobError):
    """A passing failure: retry after the backoff, or after `delay_s` when given."""

    def __init__(self, code: str, message: str = "", delay_s: float | None = None) -> None:
        super().__init__(code, message)
        self.delay_s = delay_s

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.message, self.delay_s))


class DependencyDown(RetryableError):
    """A service the job needs (its database, its storage) did not answer or said "later":
    retried with backoff, its attempt not spent, for as long as the outage budget lasts;
    counted as an ordinary failure after that."""

    @property
    def service(self) -> str:
        """The service that is out, as log lines and answers name it: "database" for
        DATABASE_UNAVAILABLE, "storage" for STORAGE_UNAVAILABLE."""
        return self.code.split("_")[0].lower()

    @property
    def is_outage(self) -> bool:
        """False when the service answers but was busy (a lock held too long elsewhere):
        waited out the same way, but no outage to log or to report as one."""
        return self.code != ErrorCode.DATABASE_BUSY


@dataclass(frozen=True)
class NewJob:
    type: str
    payload: Any = None
    priority: int = 0
    run_at: datetime | None = None
    delay_s: float = 0.0
    idempotency_key: str | None = None
    max_attempts: int | None = None
    timeout_s: float | None = None
    items: list[str] | None = None


@dataclass(frozen=True)
class EnqueueResult:
    id: int
    created: bool


@dataclass(frozen=True)
class ClaimRequest:
    """Ask for up to `limit` ready jobs with at least `min_priority` (one lane's free slots)."""

    limit: int
    min_priority: int | None = None


# ClaimedJob and Outcome are made once per job execution: plain slotted dataclasses, as a
# frozen one costs five times as much to build. Neither is changed once made.
@dataclass(slots=True)
class ClaimedJob:
    id: int
    type: str
    payload: Any
    lease_token: int
    attempts: int
    max_attempts: int
    priority: int
    timeout_s: float | None
    outage_waited_s: float | None = None  # since its first outage failure, if any


class OutcomeKind(StrEnum):
    COMPLETED = "completed"
    RETRY = "retry"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RELEASED = "released"  # handed back at shutdown: not the job's fault, attempt not counted
    WAIT = "wait"  # a dependency was out: retried after a delay, attempt not counted


@dataclass(slots=True)
class Outcome:
    job_id: int
    lease_token: int
    kind: OutcomeKind
    result: Any = None
    error_code: str | None = None
    error: str | None = None
    retry_delay_s: float = 0.0

    @property
    def status(self) -> JobStatus:
        """The job's status once this outcome is recorded."""
        return STATUS_AFTER[self.kind]


STATUS_AFTER = {
    OutcomeKind.COMPLETED: JobStatus.COMPLETED,
    OutcomeKind.RETRY: JobStatus.PENDING,
    OutcomeKind.FAILED: JobStatus.FAILED,
    OutcomeKind.CANCELLED: JobStatus.CANCELLED,
    OutcomeKind.RELEASED: JobStatus.PENDING,  # back in line
    OutcomeKind.WAIT: JobStatus.PENDING,
}


@dataclass(frozen=True)
class HeartbeatReply:
    lost: set[int] = field(default_factory=set)
    cancel_requested: set[int] = field(default_factory=set)


@dataclass
class Job:
    id: int
    type: str
    payload: Any
    status: JobStatus
    priority: int
    attempts: int
    max_attempts: int
    created_at: datetime
    run_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    lease_token: int = 0
    locked_by: str | None = None
    locked_at: datetime | None = None
    lease_expires_at: datetime | None = None
    cancel_requested: bool = False
    idempotency_key: str | None = None
    progress: float | None = None
    result: Any = None
    error_code: str | None = None
    last_error: str | None = None
    timeout_s: float | None = None
    archived: bool = False
    items_summary: dict[str, int] | None = None


@dataclass(frozen=True)
class JobItem:
    key: str
    status: ItemStatus
    progress: float | None
    error: str | None
    data: Any
    updated_at: datetime


@dataclass(frozen=True)
class Event:
    id: int
    created_at: datetime
    kind: str
    job_id: int | None
    job_type: str | None
    status: str | None
    data: Any
