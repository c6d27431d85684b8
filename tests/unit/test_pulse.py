"""The pulse loop's timing rules, on a simulated clock (deterministic, no sleeping)."""

from __future__ import annotations

import threading

import pytest

from asymm.daemon.pulse import Pulse, Tick
from asymm.daemon.scheduler import Scheduler, Task


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        return False

    def work(self, seconds: float) -> None:
        self.now += seconds


def make_pulse(period: float = 0.2) -> tuple[Pulse, FakeClock]:
    clock = FakeClock()
    return Pulse(period, stop=threading.Event(), clock=clock, wait=clock.wait), clock


def test_due_times_do_not_drift_with_work() -> None:
    pulse, clock = make_pulse()
    ticks = []
    for tick in pulse.ticks():
        ticks.append(tick)
        clock.work(0.013)  # work shorter than a period, never rounds into the schedule
        if len(ticks) == 50:
            break
    assert [round(t.due - 1000.0, 9) for t in ticks] == [round(n * 0.2, 9) for n in range(50)]
    assert all(t.lateness == 0 for t in ticks)
    assert pulse.stats.skipped == 0


def test_missed_ticks_are_skipped_not_burst() -> None:
    pulse, clock = make_pulse()
    seen: list[Tick] = []
    for tick in pulse.ticks():
        seen.append(tick)
        if tick.index == 2:
            clock.work(0.75)  # overrun to 1.15: ticks due at 0.6 and 0.8 are skipped, 1.0 runs late
        if len(seen) == 6:
            break
    assert [t.index for t in seen] == [0, 1, 2, 5, 6, 7]
    assert pulse.stats.skipped == 2
    assert seen[3].lateness == pytest.approx(0.15)
    assert seen[3].started - seen[2].started == pytest.approx(0.75)
    # after the overrun the schedule is the original one again
    assert seen[4].due - 1000.0 == pytest.approx(1.2)


def test_stop_ends_the_loop_while_waiting() -> None:
    stop = threading.Event()
    clock = FakeClock()

    def wait(seconds: float) -> bool:
        stop.set()
        return True

    pulse = Pulse(0.2, stop=stop, clock=clock, wait=wait)
    assert [t.index for t in pulse.ticks()] == [0]


def test_period_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Pulse(0)


def test_scheduler_defers_what_does_not_fit_and_resumes_there() -> None:
    clock = FakeClock()
    scheduler = Scheduler(budget_fraction=0.5, clock=clock)
    runs: list[str] = []

    def task(name: str, cost: float) -> Task:
        def run(_tick: Tick) -> None:
            runs.append(name)
            clock.work(cost)

        return Task(name, run)

    for name in ("a", "b", "c"):
        scheduler.add(task(name, 0.06))
    tick0 = Tick(index=0, due=clock.now, started=clock.now, period=0.2)
    scheduler.run_tick(tick0)  # budget 0.1 s: a (0.06) and b start, c is deferred
    assert runs == ["a", "b"]
    assert scheduler.deferred == 1
    clock.now = tick0.due + 0.2
    scheduler.run_tick(Tick(index=1, due=clock.now, started=clock.now, period=0.2))
    assert runs == ["a", "b", "c", "a"]


def test_a_failing_task_backs_off_and_does_not_stop_the_others() -> None:
    clock = FakeClock()
    scheduler = Scheduler(clock=clock)
    runs: list[str] = []

    def broken(_tick: Tick) -> None:
        runs.append("broken")
        raise RuntimeError("boom")

    scheduler.add(Task("broken", broken))
    scheduler.add(Task("healthy", lambda _tick: runs.append("healthy")))
    for index in range(4):
        scheduler.run_tick(Tick(index=index, due=clock.now, started=clock.now, period=0.2))
        clock.now += 0.2
    assert runs.count("healthy") == 4
    assert runs.count("broken") == 2  # tick 0 fails, backs off 2 ticks, tick 2 fails again
    assert scheduler.tasks[0].failures == 2


def test_overruns_are_counted() -> None:
    clock = FakeClock()
    scheduler = Scheduler(clock=clock)
    scheduler.add(Task("slow", lambda _tick: clock.work(0.3)))
    scheduler.run_tick(Tick(index=0, due=clock.now, started=clock.now, period=0.2))
    assert scheduler.overruns == 1


def test_task_validation() -> None:
    with pytest.raises(ValueError, match="regime"):
        Task("x", lambda _t: None, regime="chaos")
    with pytest.raises(ValueError):
        Task("x", lambda _t: None, every_s=-1.0)


def test_task_periods_are_seconds_turned_into_ticks_by_the_scheduler() -> None:
    scheduler = Scheduler(period=0.2, backoff_cap_s=30.0)
    every_tick = Task("every-tick", lambda _t: None)
    each_second = Task("each-second", lambda _t: None, every_s=1.0)
    tiny = Task("tiny", lambda _t: None, every_s=0.01)  # shorter than a period: still once a tick
    for task in (every_tick, each_second, tiny):
        scheduler.add(task)
    assert (every_tick.every, each_second.every, tiny.every) == (1, 5, 1)
    assert scheduler.backoff_cap_ticks == 150
    scheduler.set_period(0.1)  # a reload: the seconds stay, the ticks follow
    assert (every_tick.every, each_second.every, tiny.every) == (1, 10, 1)
    assert scheduler.backoff_cap_ticks == 300
