"""Runs registered tasks inside each tick's time budget, split between the three regimes.

Why a budget: the daemon shares the database with the workload it watches.  Why regimes:
exploration, optimization and stabilization compete for that budget, and stabilization must never
be starved by an eager advisor.  The split is deficit round robin, work conserving; a failing
task is backed off without stopping the others; periods in seconds become ticks here.

Details (and the balance score): docs/daemon.md, "The scheduler".
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from asymm.daemon.pulse import DEFAULT_PERIOD_S, Tick

log = logging.getLogger("asymm.daemon")

REGIMES = ("exploration", "optimization", "stabilization")
DEFAULT_SPLIT = {"exploration": 0.30, "optimization": 0.20, "stabilization": 0.50}


@dataclass
class Task:
    """Periodic work.  ``run(tick)`` must be bounded in time; it runs only on the leader unless
    ``leader_only`` is False, and only while PostgreSQL is connected unless ``needs_postgres`` is False.

    ``every_s``: seconds between runs (0: every tick); the scheduler sets ``every`` (in ticks) from it."""

    name: str
    run: Callable[[Tick], None]
    every_s: float = 0.0
    regime: str = "stabilization"
    every: int = field(default=1, init=False)  # run on every n-th tick (see Scheduler.add)
    failures: int = 0  # consecutive failures (drives the backoff)
    skip_until_tick: int = 0
    runs: int = 0
    seconds: float = 0.0
    leader_only: bool = True
    needs_postgres: bool = True
    failures_total: int = 0
    last_error: str | None = None
    pending: bool = False  # due and not yet run

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise ValueError(f"unknown regime {self.regime!r}; one of {', '.join(REGIMES)}")
        if not self.every_s >= 0:
            raise ValueError("a task's period (every_s) is a number of seconds >= 0")


def ticks(seconds: float, period: float) -> int:
    """The number of ticks (at least one) closest to ``seconds``."""
    return max(1, round(seconds / period))


def normalise_split(split: Mapping[str, float]) -> dict[str, float]:
    if set(split) != set(REGIMES) or any(v < 0 for v in split.values()) or sum(split.values()) <= 0:
        raise ValueError(f"a regime split needs non-negative shares for exactly {', '.join(REGIMES)}")
    total = sum(split.values())
    return {r: split[r] / total for r in REGIMES}


def balance_score(measured: Mapping[str, float], target: Mapping[str, float]) -> float:
    """100 × (1 − half the L1 distance between two splits); NaN if nothing was measured."""
    total = sum(measured.values())
    if total <= 0:
        return math.nan
    distance = 0.5 * sum(abs(measured[r] / total - target[r]) for r in REGIMES)
    return 100.0 * (1.0 - distance)


class Scheduler:
    def __init__(
        self,
        budget_fraction: float = 0.8,
        clock: Callable[[], float] = time.monotonic,
        split: Mapping[str, float] | None = None,
        backoff_cap_s: float = 60.0,
        period: float = DEFAULT_PERIOD_S,
    ) -> None:
        if not 0 < budget_fraction <= 1:
            raise ValueError("budget_fraction must be in (0, 1]")
        self.tasks: list[Task] = []
        self.budget_fraction = budget_fraction
        self.clock = clock
        self.split = normalise_split(split or DEFAULT_SPLIT)
        self.period = period
        self.backoff_cap_s = backoff_cap_s
        self.backoff_cap_ticks = ticks(backoff_cap_s, period)
        self.overruns = 0
        self.deferred = 0
        self.regime_seconds = {r: 0.0 for r in REGIMES}
        self.credit = {r: 0.0 for r in REGIMES}
        self.on_error: Callable[[Task, Exception], None] | None = None
        self._by_regime: dict[str, list[Task]] = {r: [] for r in REGIMES}
        self._next = {r: 0 for r in REGIMES}

    def add(self, task: Task) -> None:
        task.every = ticks(task.every_s, self.period)
        self.tasks.append(task)
        self._by_regime[task.regime].append(task)

    def set_split(self, split: Mapping[str, float]) -> None:
        self.split = normalise_split(split)

    def set_period(self, period: float, backoff_cap_s: float | None = None) -> None:
        """A new pulse period (a reload): every task keeps its period in seconds, so its ticks change."""
        self.period = period
        if backoff_cap_s is not None:
            self.backoff_cap_s = backoff_cap_s
        self.backoff_cap_ticks = ticks(self.backoff_cap_s, period)
        for task in self.tasks:
            task.every = ticks(task.every_s, period)

    # -- reporting ------------------------------------------------------------------------------

    def measured_split(self) -> dict[str, float]:
        total = sum(self.regime_seconds.values())
        return {r: (self.regime_seconds[r] / total if total > 0 else 0.0) for r in REGIMES}

    def balance_score(self) -> float:
        return balance_score(self.regime_seconds, self.split)

    def reset_backoff(self) -> None:
        """After a reconnect: tasks that failed because the server was gone may run again at once."""
        for task in self.tasks:
            task.skip_until_tick = 0

    # -- the tick -------------------------------------------------------------------------------

    def run_tick(self, tick: Tick, *, leader: bool = True, postgres_up: bool = True) -> None:
        budget = tick.period * self.budget_fraction
        budget_end = tick.due + budget
        for regime in REGIMES:
            slice_s = self.split[regime] * budget
            self.credit[regime] = min(slice_s, self.credit[regime] + slice_s)
        for task in self.tasks:
            if tick.index % task.every == 0:
                task.pending = True

        def eligible(task: Task) -> bool:
            return (
                task.pending
                and tick.index >= task.skip_until_tick
                and (leader or not task.leader_only)
                and (postgres_up or not task.needs_postgres)
            )

        total = sum(self.regime_seconds.values())
        order = sorted(
            REGIMES, key=lambda r: self.split[r] - (self.regime_seconds[r] / total if total else 0.0), reverse=True
        )
        out_of_time = False
        for phase in ("share", "spare"):
            for regime in order:
                tasks = self._by_regime[regime]
                count = len(tasks)
                start = self._next[regime]
                for offset in range(count):
                    position = (start + offset) % count
                    task = tasks[position]
                    if not eligible(task):
                        continue
                    if self.clock() >= budget_end:
                        out_of_time = True
                    if out_of_time or (phase == "share" and self.credit[regime] <= 0):
                        self._next[regime] = position  # resume here
                        break
                    elapsed = self._run(task, tick)
                    if phase == "share":
                        self.credit[regime] -= elapsed
                else:
                    self._next[regime] = 0
                if out_of_time:
                    break
            if out_of_time:
                break
        self.deferred += sum(1 for task in self.tasks if eligible(task))
        elapsed_past_deadline = self.clock() - tick.deadline
        if elapsed_past_deadline > 0:
            self.overruns += 1
            log.warning("tick %d overran its period by %.1f ms", tick.index, elapsed_past_deadline * 1000)

    def _run(self, task: Task, tick: Tick) -> float:
        started = self.clock()
        task.pending = False
        try:
            task.run(tick)
        except Exception as exc:
            task.failures += 1
            task.failures_total += 1
            task.last_error = f"{type(exc).__name__}: {exc}"
            backoff = min(2 ** min(task.failures, 10), self.backoff_cap_ticks)
            task.skip_until_tick = tick.index + backoff
            log.error("task %s failed (%s); retrying in %d ticks", task.name, task.last_error, backoff)
            if self.on_error is not None:
                try:
                    self.on_error(task, exc)
                except Exception:  # the hook must never break the loop
                    log.exception("error hook failed")
        else:
            task.failures = 0
        finally:
            task.runs += 1
        elapsed = self.clock() - started
        task.seconds += elapsed
        self.regime_seconds[task.regime] += elapsed
        return elapsed
