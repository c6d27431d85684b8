"""The regime scheduler on a simulated clock: split under contention, spare time, balance score."""

from __future__ import annotations

import math

import pytest

from asymm.daemon.pulse import Tick
from asymm.daemon.scheduler import Scheduler, Task, balance_score


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def busy(clock: Clock, name: str, regime: str, cost: float, log: list[str] | None = None) -> Task:
    def run(_tick: Tick) -> None:
        if log is not None:
            log.append(name)
        clock.now += cost

    return Task(name, run, regime=regime)


def run_ticks(scheduler: Scheduler, clock: Clock, count: int, period: float = 0.2, **kwargs: bool) -> None:
    for index in range(count):
        clock.now = index * period
        scheduler.run_tick(Tick(index=index, due=clock.now, started=clock.now, period=period), **kwargs)


def test_balance_score_is_one_minus_half_the_l1_distance() -> None:
    target = {"exploration": 0.3, "optimization": 0.2, "stabilization": 0.5}
    assert balance_score({"exploration": 3, "optimization": 2, "stabilization": 5}, target) == pytest.approx(100)
    assert balance_score({"exploration": 0, "optimization": 0, "stabilization": 1}, target) == pytest.approx(50)
    assert balance_score({"exploration": 1, "optimization": 0, "stabilization": 0}, target) == pytest.approx(30)
    assert math.isnan(balance_score({"exploration": 0, "optimization": 0, "stabilization": 0}, target))


@pytest.mark.parametrize("cost", [0.005, 0.03, 0.25])  # fine-grained, coarse, and longer than a whole tick
def test_under_contention_the_measured_split_approaches_the_target(cost: float) -> None:
    clock = Clock()
    scheduler = Scheduler(clock=clock)
    for regime in ("exploration", "optimization", "stabilization"):
        for n in range(math.ceil(0.2 / cost) + 1):  # each regime alone could fill every tick
            scheduler.add(busy(clock, f"{regime}{n}", regime, cost))
    run_ticks(scheduler, clock, 400)
    measured = scheduler.measured_split()
    assert measured["exploration"] == pytest.approx(0.3, abs=0.05)
    assert measured["optimization"] == pytest.approx(0.2, abs=0.05)
    assert measured["stabilization"] == pytest.approx(0.5, abs=0.05)
    assert scheduler.balance_score() > 93


def test_a_configured_split_is_followed() -> None:
    clock = Clock()
    scheduler = Scheduler(clock=clock, split={"exploration": 10, "optimization": 10, "stabilization": 80})
    for regime in ("exploration", "optimization", "stabilization"):
        for n in range(50):
            scheduler.add(busy(clock, f"{regime}{n}", regime, 0.004))
    run_ticks(scheduler, clock, 200)
    assert scheduler.measured_split()["stabilization"] == pytest.approx(0.8, abs=0.03)


def test_spare_budget_goes_to_whoever_has_work() -> None:
    clock = Clock()
    scheduler = Scheduler(clock=clock)
    for n in range(30):
        scheduler.add(busy(clock, f"e{n}", "exploration", 0.01))
    run_ticks(scheduler, clock, 10)
    # Alone, exploration uses the whole 160 ms budget per tick, not just its 30 % slice.
    assert scheduler.regime_seconds["exploration"] == pytest.approx(10 * 0.16, rel=0.07)
    assert scheduler.balance_score() == pytest.approx(30)


def test_standby_runs_only_tasks_that_are_not_leader_only_and_nothing_waits_forever() -> None:
    clock = Clock()
    scheduler = Scheduler(clock=clock)
    ran: list[str] = []
    scheduler.add(busy(clock, "act", "optimization", 0.001, ran))
    scheduler.add(Task("beat", lambda _t: ran.append("beat"), leader_only=False))
    scheduler.add(Task("redis", lambda _t: ran.append("redis"), leader_only=False, needs_postgres=False))
    run_ticks(scheduler, clock, 2, leader=False)
    assert sorted(set(ran)) == ["beat", "redis"]
    ran.clear()
    run_ticks(scheduler, clock, 1, leader=True, postgres_up=False)
    assert ran == ["redis"]
    ran.clear()
    run_ticks(scheduler, clock, 1, leader=True)
    assert sorted(ran) == ["act", "beat", "redis"]


def test_a_task_with_every_n_deferred_on_its_tick_still_runs_later() -> None:
    clock = Clock()
    scheduler = Scheduler(clock=clock, budget_fraction=0.5)
    ran: list[str] = []
    scheduler.add(busy(clock, "hog", "stabilization", 0.2, ran))
    scheduler.add(busy(clock, "rare", "stabilization", 0.001, ran))
    scheduler.tasks[1].every = 5
    run_ticks(scheduler, clock, 3)
    assert "rare" in ran
