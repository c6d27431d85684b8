"""The sync in the daemon: keep the worker thread alive, commit the lag heartbeat, alert on lag.

Why a feature module apart from :mod:`asymm.sync.worker`: the worker is a thread that knows
PostgreSQL and Redis only; this is the daemon's schedule around it (nothing without a Redis URL).
"""

from __future__ import annotations

from typing import Any

import psycopg

from asymm.daemon.feature import FeatureBase, TaskContext
from asymm.daemon.pulse import Tick
from asymm.daemon.scheduler import Task
from asymm.db import connect
from asymm.sync.alerts import CHECK_EVERY_S, SyncLagAlerts
from asymm.sync.worker import SyncWorker

HEARTBEAT_EVERY_S = 1.0


class SyncFeature(FeatureBase):
    """The sync worker (started on the first tick), the heartbeat that measures its lag, lag alerts.

    The heartbeat has its own connection (reopened after a failure) rather than the pulse
    connection, so it survives a PostgreSQL restart without changes to the daemon service.
    """

    name = "sync"

    def __init__(self) -> None:
        self.worker: SyncWorker | None = None
        self._heartbeat_conn: psycopg.Connection[tuple[object, ...]] | None = None

    def tasks(self, ctx: TaskContext) -> list[Task]:
        if not ctx.redis_url:
            return []
        # A stalled sync leader loses the sync lock like a stalled daemon leader loses its own (the
        # same setting, the same floor of five pulses: the engine's session runs a statement every pulse).
        config = ctx.config
        session_timeout = (
            max(config.leader_session_timeout_s, 5 * config.period) if config.leader_session_timeout_s else 0
        )

        def keep_alive(_tick: Tick) -> None:
            if self.worker is None or not self.worker.is_alive():
                assert ctx.redis_url is not None
                self.worker = SyncWorker(ctx.dsn, ctx.redis_url, ctx.stop_event, ctx.period, session_timeout)
                self.worker.start()

        def heartbeat(_tick: Tick) -> None:
            if self.worker is None or not self.worker.is_leader:
                return
            conn = self._heartbeat_conn
            if conn is None or conn.closed:
                self._heartbeat_conn = conn = connect(ctx.dsn, connect_timeout=2)
            try:
                conn.execute("SELECT asymm.sync_heartbeat()")
            except psycopg.Error:
                conn.close()
                raise

        alerts = SyncLagAlerts(ctx)
        return [
            Task("sync-worker", keep_alive, regime="stabilization"),
            Task("sync-heartbeat", heartbeat, every_s=HEARTBEAT_EVERY_S, regime="stabilization"),
            Task("sync-lag-alerts", alerts.run, every_s=CHECK_EVERY_S, regime="stabilization"),
        ]

    def status(self) -> dict[str, Any] | None:
        if self.worker is None:
            return None
        return {"worker_alive": self.worker.is_alive(), "sync_leader": self.worker.is_leader}
