"""Exponential backoff with jitter, shared by reconnects, task retries and webhook deliveries.

Why jitter: when PostgreSQL or Redis restarts, every daemon (and every task inside one) notices
at the same moment; retrying on the same schedule would hit the server in synchronised waves.
"Equal jitter" keeps at least half the delay (so the backoff still grows) and randomises the rest.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable


def jittered_delay(attempt: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Delay before retry number ``attempt`` (1-based): min(cap, base * 2**(attempt-1)), half of it random."""
    if attempt < 1:
        return 0.0
    full = float(min(cap, base * 2.0 ** min(attempt - 1, 62)))
    return full / 2 + float(rng()) * full / 2


class Backoff:
    """Remembers consecutive failures of one thing and says when the next attempt is allowed."""

    def __init__(self, base: float = 0.2, cap: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.base = base
        self.cap = cap
        self.clock = clock
        self.failures = 0
        self.next_attempt = 0.0

    def ready(self) -> bool:
        return self.clock() >= self.next_attempt

    def failure(self) -> float:
        """Record a failure; returns the delay before the next attempt."""
        self.failures += 1
        delay = jittered_delay(self.failures, self.base, self.cap)
        self.next_attempt = self.clock() + delay
        return delay

    def success(self) -> None:
        self.failures = 0
        self.next_attempt = 0.0
