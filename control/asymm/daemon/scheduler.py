"""Runs registered tasks inside each tick's time budget.

Why a budget: the daemon shares the database with the workload it watches, so its work per tick
is bounded.  Tasks that do not fit are deferred to the next tick, starting where the last tick
stopped so that no task starves; a task that raises is logged and backed off without stopping
the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from asymm.daemon.pulse import Tick

log = logging.getLogger("asymm.daemon")

REGIMES = ("exploration", "optimization", "stabilization")


@dataclass
class Task:
    name: str
    run: Callable[[Tick], None]
    every: int = 1  # run on every n-th tick
    regime: str = "stabilization"
    failures: int = 0
    skip_until_tick: int = 0
    runs: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise ValueError(f"unknown regime {self.regime!r}; one of {', '.join(REGIMES)}")
        if self.every < 1:
            raise ValueError("a task runs at most every tick (every >= 1)")


class Scheduler:
    def __init__(self, budget_fraction: float = 0.8, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < budget_fraction <= 1:
            raise ValueError("budget_fraction must be in (0, 1]")
        self.tasks: list[Task] = []
        self.budget_fraction = budget_fraction
        self.clock = clock
        self.overruns = 0
        self.deferred = 0
        self._next = 0

    def add(self, task: Task) -> None:
        self.tasks.append(task)

    def run_tick(self, tick: Tick) -> None:
        budget_end = tick.due + tick.period * self.budget_fraction
        count = len(self.tasks)
        for offset in range(count):
            position = (self._next + offset) % count
            task = self.tasks[position]
            if tick.index % task.every or tick.index < task.skip_until_tick:
                continue
            if self.clock() >= budget_end:
                self.deferred += 1
                self._next = position  # resume here next tick
                break
            self._run(task, tick)
        else:
            self._next = 0
        elapsed_past_deadline = self.clock() - tick.deadline
        if elapsed_past_deadline > 0:
            self.overruns += 1
            log.warning("tick %d overran its period by %.1f ms", tick.index, elapsed_past_deadline * 1000)

    def _run(self, task: Task, tick: Tick) -> None:
        started = self.clock()
        try:
            task.run(tick)
        except Exception as exc:
            task.failures += 1
            backoff = min(2 ** min(task.failures, 10), 300)
            task.skip_until_tick = tick.index + backoff
            log.error("task %s failed (%s: %s); retrying in %d ticks", task.name, type(exc).__name__, exc, backoff)
        else:
            task.failures = 0
        finally:
            task.runs += 1
            task.seconds += self.clock() - started
