"""Backoff: 2 s, 4 s, 8 s… by default, with bounded jitter, never past the cap."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from enlarger.queue.retry import RetryPolicy


def test_default_shape_doubles_from_two_seconds() -> None:
    policy = RetryPolicy(jitter=0.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]


@given(
    attempt=st.integers(min_value=1, max_value=60),
    base=st.floats(min_value=0.01, max_value=30),
    cap=st.floats(min_value=1, max_value=3600),
    seed=st.integers(),
)
def test_delay_within_jitter_band_and_cap(attempt: int, base: float, cap: float, seed: int) -> None:
    policy = RetryPolicy(base_s=base, cap_s=cap, jitter=0.2)
    delay = policy.delay(attempt, random.Random(seed))
    nominal = min(cap, base * 2 ** (attempt - 1))
    assert 0.8 * nominal - 1e-9 <= delay <= min(cap, 1.2 * nominal) + 1e-9


def test_jitter_spreads_a_burst() -> None:
    policy = RetryPolicy()
    rng = random.Random(1)
    assert len({round(policy.delay(3, rng), 6) for _ in range(50)}) > 40


def test_a_wait_for_a_service_grows_with_the_outage_and_stays_short() -> None:
    """Out for 0, 4, 8, 60 s: tried again after 2, 4, 8 and 10 s (the cap), so a service
    that is back is seen back within seconds."""
    policy = RetryPolicy(jitter=0.0)
    assert [policy.outage_delay(waited) for waited in (0, 4, 8, 60)] == [2.0, 4.0, 8.0, 10.0]
