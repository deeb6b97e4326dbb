"""What a worker has done, counted as it happens and saved with its maintenance: job
outcomes and run times per type, rescues, and the counters handlers add
(`ctx.count`). Saved per worker in `worker_stats`, so `/metrics` on any host sums every
worker on every host, and no job's own transaction pays for it."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import Counter
from typing import Any

# run-time histogram bounds in seconds (Prometheus' `le`), the last bucket is +Inf
RUN_SECONDS_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


class Telemetry:
    """Cumulative counts for one worker's lifetime; safe to update from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outcomes: Counter[tuple[str, str]] = Counter()  # (type, outcome) → n
        self._runs: dict[str, list[float]] = {}  # type → bucket counts, then the sum
        self._counters: Counter[str] = Counter()  # rescued, and what handlers count

    def finished(self, job_type: str, outcome: str, seconds: float) -> None:
        with self._lock:
            self._outcomes[(job_type, outcome)] += 1
            runs = self._runs.get(job_type)
            if runs is None:
                runs = self._runs[job_type] = [0.0] * (len(RUN_SECONDS_BUCKETS) + 2)
            runs[bisect_left(RUN_SECONDS_BUCKETS, seconds)] += 1  # first bound >= seconds
            runs[-1] += seconds

    def add(self, name: str, n: float = 1) -> None:
        with self._lock:
            self._counters[name] += n

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready: `outcomes` [[type, outcome, n]…], `runs` {type: [per-bucket counts…,
        sum]}, `counters` {name: n}."""
        with self._lock:
            return {
                "outcomes": [[t, o, n] for (t, o), n in sorted(self._outcomes.items())],
                "runs": {t: list(r) for t, r in self._runs.items()},
                "counters": dict(self._counters),
            }
