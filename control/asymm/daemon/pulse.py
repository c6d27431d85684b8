"""A drift-free fixed-rate clock.

Tick ``n`` is due at ``start + n * period``, computed from the start rather than from the previous
tick, so lateness never accumulates.  When work overruns and a due time has already passed by a
full period or more, the missed ticks are *skipped* (counted, never run back to back): a daemon
that catches up in a burst would hit the database hardest exactly when it is already slow.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

DEFAULT_PERIOD_S = 0.2037  # 4.909 Hz


@dataclass(frozen=True)
class Tick:
    index: int
    due: float
    started: float
    period: float

    @property
    def lateness(self) -> float:
        """How long after its due time the tick started (the jitter sample)."""
        return self.started - self.due

    @property
    def deadline(self) -> float:
        """When the next tick is due: work should be done by then."""
        return self.due + self.period


@dataclass
class PulseStats:
    """Counters for the pulse-quality metrics; quantiles come from the most recent samples."""

    ticks: int = 0
    skipped: int = 0
    lateness_samples: list[float] = field(default_factory=list)
    lateness_sum: float = 0.0
    lateness_max: float = 0.0

    def record(self, tick: Tick, keep: int = 4096) -> None:
        self.ticks += 1
        self.lateness_sum += tick.lateness
        self.lateness_max = max(self.lateness_max, tick.lateness)
        self.lateness_samples.append(tick.lateness)
        if len(self.lateness_samples) > keep:
            del self.lateness_samples[: len(self.lateness_samples) - keep]

    def lateness_quantile(self, q: float) -> float:
        """Nearest-rank quantile of the recent lateness samples (0 before the first tick)."""
        samples = sorted(self.lateness_samples)  # a copy: the HTTP thread may call this mid-tick
        if not samples:
            return 0.0
        rank = min(len(samples) - 1, max(0, math.ceil(q * len(samples)) - 1))
        return samples[rank]


class Pulse:
    """Yields ticks at a fixed rate until stopped; ``clock`` and ``wait`` are injectable for tests."""

    def __init__(
        self,
        period: float = DEFAULT_PERIOD_S,
        *,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        if not period > 0:
            raise ValueError("the pulse period must be positive")
        self.period = period
        self.stop = stop or threading.Event()
        self.clock = clock
        self.wait = wait or self.stop.wait
        self.stats = PulseStats()

    def change_period(self, period: float) -> None:
        """Switch to another period from the next tick on (SIGHUP reload); the schedule restarts there."""
        if not period > 0:
            raise ValueError("the pulse period must be positive")
        self.period = period

    def ticks(self) -> Iterator[Tick]:
        start = self.clock()
        index = 0
        period = self.period
        while not self.stop.is_set():
            if self.period != period:  # changed by a reload: the new schedule starts at the next due time
                start, index, period = start + index * period, 0, self.period
            due = start + index * period
            now = self.clock()
            if now < due:
                if self.wait(due - now):
                    return  # stopped while waiting
                now = self.clock()
            missed = int((now - due) // period)
            if missed > 0:
                self.stats.skipped += missed
                index += missed
                due = start + index * period
            tick = Tick(index=index, due=due, started=now, period=period)
            self.stats.record(tick)
            yield tick
            index += 1
