"""The durable job engine. Knows nothing about images.

registry = Registry()

@registry.handler("resize", kind="cpu", max_attempts=5, timeout_s=120)
def resize(ctx: JobContext, payload: dict) -> dict: ...

queue = JobQueue(open_store(url), registry)
queue.enqueue("resize", {"path": "a.jpg"}, priority=10, conn=connection)
settle_heap()  # in a process that is only a worker
Worker(queue.store, registry, settings).run()
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from enlarger.queue.backends import open_store, store_for_engine
from enlarger.queue.context import JobCancelled, JobContext
from enlarger.queue.cpu import start_deaf_to_ctrl_c
from enlarger.queue.model import (
    DependencyDown,
    EnqueueResult,
    ErrorCode,
    ItemStatus,
    Job,
    JobError,
    JobStatus,
    NewJob,
    PermanentError,
    RetryableError,
)
from enlarger.queue.registry import (
    FailedJob,
    Handler,
    HandlerKind,
    Registry,
    Schedule,
    load_registry,
)
from enlarger.queue.retry import as_dependency_down, is_schema_error
from enlarger.queue.store import JobConflict, Store
from enlarger.queue.worker import Worker, settle_heap


class JobQueue:
    """Enqueueing with the registered handler's defaults (attempts, time limit)."""

    def __init__(self, store: Store, registry: Registry | None = None) -> None:
        self.store = store
        self.registry = registry or Registry()

    def new_job(
        self,
        job_type: str,
        payload: Any = None,
        *,
        priority: int = 0,
        run_at: datetime | None = None,
        delay_s: float = 0.0,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
        timeout_s: float | None = None,
        items: list[str] | None = None,
    ) -> NewJob:
        handler = self.registry.get(job_type)
        if handler is not None:
            max_attempts = max_attempts or handler.max_attempts
            timeout_s = timeout_s or handler.timeout_s
        return NewJob(
            job_type,
            payload,
            priority,
            run_at,
            delay_s,
            idempotency_key,
            max_attempts,
            timeout_s,
            items,
        )

    def enqueue(
        self,
        job_type: str,
        payload: Any = None,
        *,
        conn: sa.Connection | None = None,
        **options: Any,
    ) -> EnqueueResult:
        return self.store.enqueue(self.new_job(job_type, payload, **options), conn)


__all__ = [
    "DependencyDown",
    "EnqueueResult",
    "ErrorCode",
    "FailedJob",
    "Handler",
    "HandlerKind",
    "ItemStatus",
    "Job",
    "JobCancelled",
    "JobConflict",
    "JobContext",
    "JobError",
    "JobQueue",
    "JobStatus",
    "NewJob",
    "PermanentError",
    "Registry",
    "RetryableError",
    "Schedule",
    "Store",
    "Worker",
    "as_dependency_down",
    "is_schema_error",
    "load_registry",
    "open_store",
    "settle_heap",
    "start_deaf_to_ctrl_c",
    "store_for_engine",
]
