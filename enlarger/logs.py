"""Logging for `serve` and `worker`: readable text, or one JSON object per line
(`--log-format json`) for log collectors. Every record made while an HTTP request is
handled carries that request's id."""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# attributes every LogRecord has; anything else was passed with `extra=` and is kept
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", None):
            entry["request_id"] = record.request_id
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{line} [request {rid}]" if rid else line


def configure(level: str, log_format: str = "text") -> None:
    """Send every logger's records (uvicorn's too) to stderr in the chosen format, unless
    logging was set up already (by a program embedding enlarger, or a test runner)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # alembic names each plugin it sets up as it is imported: seven lines per process
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


@dataclass
class _Outage:
    since: float
    seen: float
    said: float | None = None  # when a line last told of it; None: not told (a flap)


class OutageLog:
    """One line when a dependency (the database, storage) goes, a reminder at most every
    `remind_every_s` while it stays out, and one line when it is back: an outage of a
    minute is three lines in the log, not a traceback per attempt. A dependency that
    flaps (out again within `remind_every_s` of being back) is told of by the reminder,
    or, when it is back before that, by one line for all such short outages, once
    `remind_every_s` has passed since the last line. An outage nothing has reported for
    twice that long is over. Thread-safe."""

    def __init__(
        self,
        logger: logging.Logger,
        remind_every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.remind_every_s = remind_every_s
        self.clock = clock
        self._lock = threading.Lock()
        self._down: dict[str, _Outage] = {}
        self._back: dict[str, float] = {}  # name: when a line last told it was back
        self._untold: dict[str, list[float]] = {}  # name: how long each flap not told lasted

    def down(self, name: str, reason: str) -> None:
        now = self.clock()
        with self._lock:
            outage = self._down.get(name)
            if outage is None or now - outage.seen > 2 * self.remind_every_s:
                outage = self._down[name] = _Outage(since=now, seen=now)
                flapping = now - self._back.get(name, -math.inf) < self.remind_every_s
                first = not flapping
            else:
                first = False
            outage.seen = now
            reminder = not first and now - (outage.said or outage.since) >= self.remind_every_s
            if first or reminder:
                outage.said = now
        if reminder:
            self.logger.warning(
                "%s still unreachable after %.0f s: %s", name, now - outage.since, reason
            )
        elif first:
            self.logger.warning(
                "%s unreachable: %s (retrying; the next errors are not logged)", name, reason
            )

    def up(self, name: str) -> None:
        """`name` answered: a line if it had been out and that was told, or for the flaps
        not told, once a while has passed since the last line. Cheap when nothing was
        out."""
        if name not in self._down and name not in self._untold:
            return
        now = self.clock()
        untold: list[float] = []
        with self._lock:
            outage = self._down.pop(name, None)
            told = outage is not None and outage.said is not None
            if outage is not None and not told:
                self._untold.setdefault(name, []).append(now - outage.since)
            if told:
                self._back[name] = now
            elif now - self._back.get(name, -math.inf) >= self.remind_every_s:
                untold = self._untold.pop(name, [])
                if untold:
                    self._back[name] = now
        if told and outage is not None:
            self.logger.warning("%s reachable again after %.0f s", name, now - outage.since)
        elif untold:
            self.logger.warning(
                "%s was unreachable %d more time%s since, for at most %.0f s (flapping)",
                name,
                len(untold),
                "" if len(untold) == 1 else "s",
                max(untold),
            )

    def is_down(self, name: str) -> bool:
        return name in self._down
