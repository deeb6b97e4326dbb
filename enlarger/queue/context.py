"""What a handler receives: who its job is, and ways to report progress and item status.

Reports go through a `Reporter`: straight to the store when the handler runs in a thread,
over a pipe to the supervisor when it runs in a child process. Either way they carry the
lease token, so a job that lost its lease cannot write anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from enlarger.queue.model import ItemStatus

Reporter = Callable[[str, tuple[Any, ...]], None]


class CancelFlag:
    """Set once, read often, from any thread. A plain attribute needs no lock; a
    threading.Event would allocate a lock and a condition for every job."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


class JobCancelled(Exception):
    """Raised by `JobContext.check_cancelled()` once the job was cancelled or lost."""


@dataclass
class JobContext:
    job_id: int
    job_type: str
    attempt: int
    max_attempts: int
    lease_token: int
    reporter: Reporter = field(repr=False)
    cancel_flag: CancelFlag = field(default_factory=CancelFlag, repr=False)
    # what the application built for this process (its database, queue, storage…), so a
    # handler uses what the worker was set up with; each domain declares what it reads
    services: Any = field(default=None, repr=False)

    @property
    def cancelled(self) -> bool:
        return self.cancel_flag.is_set()

    def check_cancelled(self) -> None:
        """Long-running I/O handlers call this between steps to stop when cancelled."""
        if self.cancel_flag.is_set():
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def progress(self, fraction: float) -> None:
        self.reporter("progress", (max(0.0, min(1.0, float(fraction))),))

    def item(
        self,
        key: str,
        status: ItemStatus | str,
        *,
        progress: float | None = None,
        error: str | None = None,
        data: Any = None,
    ) -> None:
        self.reporter("item", (key, ItemStatus(status), progress, error, data))

    def count(self, name: str, n: int = 1) -> None:
        """Add `n` to the worker's counter `name` (exported by `/metrics` as
        `enlarger_<name>_total`): what a handler made, beyond its job's outcome."""
        self.reporter("count", (name, n))
