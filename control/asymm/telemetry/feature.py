"""Telemetry in the daemon: the snapshot every pulse, the retention every ~30 s, slow-query webhooks.

Why here and not in :mod:`asymm.telemetry.api`: the API is what the CLI and the dashboard call
too; this module is only the daemon's schedule around it (:class:`asymm.daemon.feature.Feature`).
"""

from __future__ import annotations

import logging
from typing import Any

from asymm.daemon.feature import FeatureBase, TaskContext
from asymm.daemon.pulse import Tick
from asymm.daemon.scheduler import Task
from asymm.telemetry.api import recent_slow, retention, snapshot

log = logging.getLogger("asymm.telemetry")

SLOW_ALERT_EVERY_S = 5.0
SLOW_ALERT_WINDOW = "1 minute"
"""Slow-query webhooks: checked every few seconds over the last minute of history."""

RETENTION_EVERY_S = 30.0
"""How often the daemon rolls up and drops partitions: rarely, since each call may roll up
several minutes of raw samples (bounded by ``telemetry.rollup_batch_minutes``)."""


class SlowQueryAlerts:
    """Tell webhooks about statements that turned slow: once per statement, again only after it
    has been fast for a whole window (so a statement that stays slow does not flood the hook)."""

    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.alerted: set[int] = set()

    def run(self, _tick: Tick) -> None:
        if not self.ctx.notifying():
            return
        conn = self.ctx.conn()
        slow = recent_slow(conn, SLOW_ALERT_WINDOW)
        current = {int(row["queryid"]) for row in slow}
        for row in slow:
            if int(row["queryid"]) not in self.alerted:
                self.ctx.notify("slow_query", {"database": conn.info.dbname, **row})
        self.alerted = current


class TelemetryFeature(FeatureBase):
    """Snapshot on every pulse (stabilization work), retention every ~30 s, slow-query alerts."""

    name = "telemetry"

    def __init__(self) -> None:
        self.alerts: SlowQueryAlerts | None = None

    def tasks(self, ctx: TaskContext) -> list[Task]:
        def run_snapshot(_tick: Tick) -> None:
            result = snapshot(ctx.conn())
            if result.get("reset") or result.get("dealloc"):
                log.info(
                    "pg_stat_statements reset=%s dealloc=%s since the last snapshot",
                    result.get("reset"),
                    result.get("dealloc"),
                )

        def run_retention(_tick: Tick) -> None:
            result = retention(ctx.conn())
            if result.get("dropped_partitions"):
                log.info("telemetry retention dropped %s", ", ".join(result["dropped_partitions"]))

        self.alerts = SlowQueryAlerts(ctx)
        return [
            Task("telemetry-snapshot", run_snapshot, regime="stabilization"),
            Task("telemetry-retention", run_retention, every_s=RETENTION_EVERY_S, regime="stabilization"),
            Task("telemetry-slow-alerts", self.alerts.run, every_s=SLOW_ALERT_EVERY_S, regime="stabilization"),
        ]

    def status(self) -> dict[str, Any] | None:
        return {"slow_alerted": len(self.alerts.alerted) if self.alerts else 0}
