"""Supervised child processes for CPU handlers.

Each child runs one job at a time, sent over a pipe; the supervisor side (`CpuChild.run`)
relays the child's progress reports, enforces the time limit, cancellation and a memory
ceiling by killing the process, and recycles children that ran many jobs or grew large.
Children come from a forkserver, never from forking the multi-threaded worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing import resource_tracker
from typing import Any

import psutil

from enlarger.config import Settings
from enlarger.queue.context import CancelFlag, JobContext, Reporter
from enlarger.queue.retry import as_dependency_down

_MP = multiprocessing.get_context("forkserver")
KILL_WAIT_S = 5.0
MEMORY_CHECK_S = 0.2  # how often a running child's resident memory is read
M_ARENA_MAX = -8  # glibc's mallopt parameter number
MALLOC_ARENAS = 2


@dataclass(frozen=True)
class ChildTask:
    fn: Callable[..., Any]
    payload: Any
    job_id: int
    job_type: str
    attempt: int
    max_attempts: int
    lease_token: int
    settings: Settings | None = None
    # builds the child's services from `settings` (a module-level function, sent by
    # reference): engines and clients cannot cross a process boundary, so each child
    # builds its own, once
    build_services: Callable[[Settings], Any] | None = None


class ChildKilled(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChildCrashed(Exception):
    """The child died on its own (a segfault, the OOM killer, `os._exit`)."""


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Cap glibc's per-thread malloc arenas in this process. Image libraries run their
    work on short-lived threads; each may get an arena of its own, which freed memory
    never leaves (a 24 MP decode loop grew from 110 to 170 MB of RSS). No-op off glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, arenas)


def _child_main(conn: multiprocessing.connection.Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    limit_malloc_arenas()
    process = psutil.Process()
    services: Any = None
    built_from: tuple[Any, ...] = ()
    while True:
        try:
            task: ChildTask | None = conn.recv()
        except (EOFError, OSError):  # the worker is gone (killed): so is its child, quietly
            return
        if task is None:
            return

        def report(kind: str, args: tuple[Any, ...]) -> None:
            conn.send(("report", kind, args))

        try:
            wanted = (task.build_services, task.settings)
            if task.build_services is not None and built_from != wanted:
                services = task.build_services(task.settings)
                built_from = wanted
            ctx = JobContext(
                task.job_id,
                task.job_type,
                task.attempt,
                task.max_attempts,
                task.lease_token,
                report,
                services=services,
            )
            result = task.fn(ctx, task.payload)
            message: tuple[Any, ...] = ("ok", result)
        except BaseException as exc:  # a database outage is named here: its error may not pickle
            message = ("error", _portable(as_dependency_down(exc) or exc))
        try:
            conn.send((*message, process.memory_info().rss))
        except OSError:  # the worker is gone
            return


def _portable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a RuntimeError describing it."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def start_deaf_to_ctrl_c(process: multiprocessing.process.BaseProcess) -> None:
    """Start `process` with SIGINT blocked, which it inherits, and so do its children.
    Ctrl-C signals the terminal's whole process group; a process whose parent decides when
    it stops must not die of it, least of all half-started: `serve`'s worker died in its
    imports, and a forkserver still importing the handlers' modules took every CPU job of
    the stopping worker with it. (The resource tracker, which both need, unblocks SIGINT
    once it has started: it starts first.)"""
    resource_tracker.ensure_running()
    unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)


class CpuChild:
    def __init__(self) -> None:
        self._conn, child_conn = _MP.Pipe()
        self.process = _MP.Process(target=_child_main, args=(child_conn,), daemon=True)
        start_deaf_to_ctrl_c(self.process)
        child_conn.close()
        self._usage = psutil.Process(self.process.pid)
        self.tasks_done = 0
        self.last_rss = 0

    def run(
        self,
        task: ChildTask,
        reporter: Reporter,
        deadline: float | None,
        cancel_flag: CancelFlag,
        kill_rss: int | None = None,
    ) -> Any:
        """Run one task; raise the handler's exception, ChildKilled or ChildCrashed. A
        child whose resident memory passes `kill_rss` bytes is killed ("memory"): one
        hostile file must not take the host's memory."""
        self._conn.send(task)
        next_check = time.monotonic() + MEMORY_CHECK_S
        while True:
            if cancel_flag.is_set():
                self.kill()
                raise ChildKilled("cancelled")
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                self.kill()
                raise ChildKilled("timeout")
            if kill_rss is not None and now >= next_check:
                next_check = now + MEMORY_CHECK_S
                if self._rss() > kill_rss:
                    self.kill()
                    raise ChildKilled("memory")
            try:
                ready = self._conn.poll(0.05)
            except (EOFError, OSError):
                ready = True
            if not ready:
                continue
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                self.kill()
                raise ChildCrashed(f"CPU child exited with code {self.process.exitcode}") from None
            if message[0] == "report":
                reporter(message[1], message[2])
                continue
            self.tasks_done += 1
            self.last_rss = message[2]
            if message[0] == "ok":
                return message[1]
            raise message[1]

    def _rss(self) -> int:
        try:
            return int(self._usage.memory_info().rss)
        except psutil.Error:  # it exited: the pipe says how
            return 0

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        self.process.kill()  # SIGKILL, unless already reaped (never a recycled pid)
        self.process.join(KILL_WAIT_S)
        self._conn.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self.process.join(1.0)
        self.kill()


class CpuPool:
    """Idle children kept for reuse; a child is recycled after `max_tasks` jobs or once its
    resident memory passes `max_rss_mb`, so leaks and fragmentation do not accumulate. A
    child that passes `kill_rss_mb` while it runs is killed.

    The forkserver imports `preload` (the CPU handlers' modules) before it forks, so a new
    child starts with them loaded instead of importing them on its first job (a quarter
    of a second of CPU for the photo handlers). The forkserver is one per process and
    started by the first child: modules named by later pools are imported by children."""

    def __init__(
        self, max_tasks: int, max_rss_mb: int, kill_rss_mb: int, preload: Iterable[str] = ()
    ) -> None:
        _MP.set_forkserver_preload(sorted({"enlarger.queue.cpu", *preload}))
        self._idle: list[CpuChild] = []
        self._lock = threading.Lock()
        self._max_tasks = max_tasks
        self._max_rss = max_rss_mb * 1024 * 1024
        self.kill_rss = kill_rss_mb * 1024 * 1024
        self.recycled = 0
        self._closed = False

    def acquire(self) -> CpuChild:
        with self._lock:
            while self._idle:
                child = self._idle.pop()
                if child.alive:
                    return child
        return CpuChild()

    @property
    def idle_children(self) -> int:
        with self._lock:
            return len(self._idle)

    def warm(self) -> None:
        """Start the forkserver, which imports the handlers' modules (1.2 s of one core on
        a slow machine), with one idle child from it, in the background: the first CPU
        job after a start then waits for neither (a first upload's photo took 2-4 s
        longer to appear than the next)."""

        def start_one() -> None:
            with contextlib.suppress(Exception):  # the first job starts one as ever
                self.release(CpuChild())

        threading.Thread(target=start_one, name="enlarger-cpu-warm", daemon=True).start()

    def release(self, child: CpuChild) -> None:
        if not child.alive:
            return
        if child.tasks_done >= self._max_tasks or child.last_rss > self._max_rss:
            self.recycled += 1
            child.stop()
            return
        with self._lock:
            if not self._closed:
                self._idle.append(child)
                return
        child.stop()  # the pool closed meanwhile (a warm-up that ended after it)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for child in idle:
            child.stop()
