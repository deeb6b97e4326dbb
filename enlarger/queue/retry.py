"""Retry backoff: base · 2^(attempt-1) (2 s, 4 s, 8 s… by default), capped, with jitter so a
burst of failures does not come back as a burst."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 2.0
    cap_s: float = 600.0
    jitter: float = 0.2

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        nominal = min(self.cap_s, self.base_s * 2 ** max(0, attempt - 1))
        spread = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return min(self.cap_s, nominal * spread)
