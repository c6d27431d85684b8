"""``/metrics``: the daemon's state in the Prometheus text format (version 0.0.4).

Conventions followed: base units in the name (``_seconds``, ``_bytes``, ``_ratio``), ``_total``
on counters, few labels with small fixed value sets (``regime``, ``quantile``, ``task``,
``target``), one ``# HELP`` and ``# TYPE`` per family.  Rendering reads plain counters that the
pulse thread updates; a scrape may see a tick half-counted, which Prometheus tolerates.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Protocol

from asymm import __version__
from asymm.daemon.config import DaemonConfig
from asymm.daemon.leader import LeaderElection
from asymm.daemon.notify import WebhookNotifier
from asymm.daemon.pulse import Pulse
from asymm.daemon.scheduler import REGIMES, Scheduler

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUANTILES = (0.5, 0.9, 0.99)


def _value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape(label_value: str) -> str:
    return label_value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Sequence[tuple[dict[str, str], float]] | float
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        if isinstance(samples, int | float):
            samples = [({}, samples)]
        for labels, value in samples:
            self.sample(name, labels, value)

    def sample(self, name: str, labels: dict[str, str], value: float) -> None:
        if labels:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{inner}}} {_value(value)}")
        else:
            self.lines.append(f"{name} {_value(value)}")


def _process_figures() -> tuple[float, float]:
    """CPU seconds (user + system) and resident memory bytes of this process."""
    times = os.times()
    rss = 0.0
    try:
        with open("/proc/self/statm") as handle:
            rss = float(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    return times.user + times.system, rss


class Measured(Protocol):
    """What :func:`render` reads (the daemon service; a protocol so that this module need not import it)."""

    config: DaemonConfig
    pulse: Pulse
    scheduler: Scheduler
    leader: LeaderElection
    notifier: WebhookNotifier
    started_at: float
    postgres_up: bool
    redis_up: bool
    reconnects: int
    reloads: int


def render(daemon: Measured) -> str:
    w = _Writer()
    stats = daemon.pulse.stats
    sched = daemon.scheduler
    w.family("asymm_info", "gauge", "Build information (always 1).", [({"version": __version__}, 1)])
    w.family("asymm_start_time_seconds", "gauge", "When the daemon started, Unix time in seconds.", daemon.started_at)
    w.family("asymm_pulse_period_seconds", "gauge", "Configured pulse period.", daemon.pulse.period)
    w.family("asymm_pulse_ticks_total", "counter", "Ticks run since start.", stats.ticks)
    w.family(
        "asymm_pulse_skipped_ticks_total",
        "counter",
        "Ticks skipped because the loop fell a full period or more behind.",
        stats.skipped,
    )
    w.family(
        "asymm_pulse_overruns_total", "counter", "Ticks whose work ran past the next tick's due time.", sched.overruns
    )
    w.family(
        "asymm_pulse_deferred_tasks_total",
        "counter",
        "Due task runs postponed to a later tick because the budget was spent.",
        sched.deferred,
    )
    w.lines.append(
        "# HELP asymm_pulse_lateness_seconds How late each tick started after its due time "
        "(jitter), quantiles over the last 4096 ticks."
    )
    w.lines.append("# TYPE asymm_pulse_lateness_seconds summary")
    for q in QUANTILES:
        w.sample("asymm_pulse_lateness_seconds", {"quantile": str(q)}, stats.lateness_quantile(q))
    w.sample("asymm_pulse_lateness_seconds_sum", {}, stats.lateness_sum)
    w.sample("asymm_pulse_lateness_seconds_count", {}, stats.ticks)
    w.family("asymm_pulse_lateness_max_seconds", "gauge", "Largest tick lateness seen since start.", stats.lateness_max)
    w.family(
        "asymm_regime_seconds_total",
        "counter",
        "Time spent running each regime's tasks.",
        [({"regime": r}, sched.regime_seconds[r]) for r in REGIMES],
    )
    w.family(
        "asymm_regime_target_ratio",
        "gauge",
        "Configured share of the tick budget per regime.",
        [({"regime": r}, sched.split[r]) for r in REGIMES],
    )
    measured = sched.measured_split()
    w.family(
        "asymm_regime_measured_ratio",
        "gauge",
        "Measured share of task time per regime since start.",
        [({"regime": r}, measured[r]) for r in REGIMES],
    )
    w.family(
        "asymm_regime_balance_score",
        "gauge",
        "100 x (1 - half the L1 distance between measured and target split); NaN before any work.",
        sched.balance_score(),
    )
    w.family(
        "asymm_leader", "gauge", "1 if this daemon holds the leader lock, else 0.", 1 if daemon.leader.is_leader else 0
    )
    w.family(
        "asymm_leader_transitions_total", "counter", "Times this daemon became the leader.", daemon.leader.transitions
    )
    w.family(
        "asymm_up",
        "gauge",
        "1 if the connection to the target is up.",
        [
            ({"target": "postgres"}, 1 if daemon.postgres_up else 0),
            ({"target": "lock_session"}, 1 if daemon.leader.connected else 0),
        ]
        + ([({"target": "redis"}, 1 if daemon.redis_up else 0)] if daemon.config.redis_url else []),
    )
    w.family(
        "asymm_reconnects_total",
        "counter",
        "Successful reconnections after a connection was lost.",
        [
            ({"target": "postgres"}, daemon.reconnects),
            ({"target": "lock_session"}, max(0, daemon.leader.reconnects - 1)),
        ],
    )
    w.family("asymm_task_runs_total", "counter", "Task runs.", [({"task": t.name}, t.runs) for t in sched.tasks])
    w.family(
        "asymm_task_failures_total",
        "counter",
        "Task runs that raised.",
        [({"task": t.name}, t.failures_total) for t in sched.tasks],
    )
    w.family(
        "asymm_task_seconds_total",
        "counter",
        "Time spent in each task.",
        [({"task": t.name}, t.seconds) for t in sched.tasks],
    )
    n = daemon.notifier.stats
    w.family(
        "asymm_notifications_total",
        "counter",
        "Webhook deliveries by outcome.",
        [
            ({"outcome": "sent"}, n.sent),
            ({"outcome": "failed"}, n.failed),
            ({"outcome": "dropped"}, n.dropped),
            ({"outcome": "retried"}, n.retries),
        ],
    )
    w.family("asymm_config_reloads_total", "counter", "SIGHUP configuration reloads applied.", daemon.reloads)
    cpu, rss = _process_figures()
    w.family("process_cpu_seconds_total", "counter", "User and system CPU time of the daemon process.", cpu)
    w.family("process_resident_memory_bytes", "gauge", "Resident memory of the daemon process.", rss)
    return "\n".join(w.lines) + "\n"
