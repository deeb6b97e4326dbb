"""Handler and schedule registration.

A handler is a module-level function `fn(ctx, payload) -> result` (or `async def`). CPU
handlers run in child processes, so they are sent there by reference (pickle by qualified
name): define them at module level.

A handler may also name an `on_failed` hook: the worker calls it, in its own process,
once the job has failed for good, whatever failed it. That includes what the handler's
code never sees: its process killed for memory, its time limit, a crash, or its worker
gone (a lapsed lease).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

HandlerFn = Callable[..., Any]


@dataclass(frozen=True)
class FailedJob:
    """What an `on_failed` hook is told."""

    id: int
    type: str
    payload: Any
    error_code: str | None
    error: str | None
    services: Any  # the worker's services (see JobContext.services)


FailureHook = Callable[[FailedJob], None]


class HandlerKind(StrEnum):
    IO = "io"  # threads, or the worker's event loop for `async def`
    CPU = "cpu"  # supervised child processes: killable, time-limited, recycled


@dataclass(frozen=True)
class Handler:
    name: str
    fn: HandlerFn
    kind: HandlerKind = HandlerKind.IO
    max_attempts: int | None = None
    timeout_s: float | None = None
    permanent_errors: tuple[type[BaseException], ...] = ()
    on_failed: FailureHook | None = None
    # a dependency's outage, not the job's fault: waited out (see queue.retry); the
    # exception's `code` attribute, if any, names the dependency
    passing_errors: tuple[type[BaseException], ...] = ()
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.fn))


@dataclass(frozen=True)
class Schedule:
    """Enqueue `job_type` once every `every_s` seconds across all workers."""

    name: str
    job_type: str
    every_s: float
    payload: Any = None
    priority: int = 0


@dataclass
class Registry:
    handlers: dict[str, Handler] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    passing_errors: tuple[type[BaseException], ...] = ()  # every handler's, registered here

    def register(
        self,
        name: str,
        fn: HandlerFn,
        *,
        kind: HandlerKind | str = HandlerKind.IO,
        max_attempts: int | None = None,
        timeout_s: float | None = None,
        permanent_errors: tuple[type[BaseException], ...] = (),
        on_failed: FailureHook | None = None,
    ) -> Handler:
        if name in self.handlers:
            raise ValueError(f"a handler for job type {name!r} is already registered")
        kind = HandlerKind(kind)
        if kind is HandlerKind.CPU and inspect.iscoroutinefunction(fn):
            raise ValueError(f"CPU handler {name!r} must be a plain function, not async")
        handler = Handler(
            name,
            fn,
            kind,
            max_attempts,
            timeout_s,
            permanent_errors,
            on_failed,
            self.passing_errors,
        )
        self.handlers[name] = handler
        return handler

    def handler(self, name: str, **options: Any) -> Callable[[HandlerFn], HandlerFn]:
        """Decorator form of `register`."""

        def decorate(fn: HandlerFn) -> HandlerFn:
            self.register(name, fn, **options)
            return fn

        return decorate

    def schedule(
        self, name: str, job_type: str, every_s: float, *, payload: Any = None, priority: int = 0
    ) -> Schedule:
        if every_s <= 0:
            raise ValueError("a schedule's period must be positive")
        schedule = Schedule(name, job_type, every_s, payload, priority)
        self.schedules[name] = schedule
        return schedule

    def get(self, name: str) -> Handler | None:
        return self.handlers.get(name)

    def include(self, other: Registry) -> None:
        """Take over another registry's handlers and schedules (one per domain package)."""
        for name, handler in other.handlers.items():
            if name in self.handlers:
                raise ValueError(f"a handler for job type {name!r} is already registered")
            self.handlers[name] = handler
        self.schedules.update(other.schedules)


def load_registry(spec: str) -> Registry:
    """Import `package.module:attribute` and check that it is a Registry."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"handlers must be given as 'module:attribute', not {spec!r}")
    registry = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(registry, Registry):
        raise TypeError(f"{spec} is a {type(registry).__name__}, not a Registry")
    return registry
