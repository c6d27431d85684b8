"""Webhook notification when the Redis cache falls behind PostgreSQL (event ``sync_lag``).

Why the heartbeat's age counts as lag: ``lag_ms`` keeps its last value while Redis is down or the
worker is stuck.  One notification per crossing, the next after the lag fell below half the
threshold (docs/sync.md).
"""

from __future__ import annotations

from asymm.daemon.feature import TaskContext
from asymm.daemon.pulse import Tick

CHECK_EVERY_S = 1.0
HEARTBEAT_INTERVAL_MS = 1000.0  # the sync heartbeat runs about once a second (asymm.sync.worker)

EFFECTIVE_LAG = """
SELECT greatest(s.lag_ms,
                extract(epoch FROM clock_timestamp() - s.lag_at) * 1000 - %s) AS lag_ms,
       s.lag_ms AS measured_ms, s.lag_at, s.last_error,
       asymm.setting('sync.lag_alert_ms')::float8 AS threshold_ms,
       EXISTS (SELECT 1 FROM asymm.sync_tables) AS tracking
  FROM asymm.sync_state s
"""


class SyncLagAlerts:
    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.alerting = False

    def run(self, _tick: Tick) -> None:
        if not self.ctx.notifying():
            return
        conn = self.ctx.conn()
        row = conn.execute(EFFECTIVE_LAG, (HEARTBEAT_INTERVAL_MS,)).fetchone()
        if row is None or row[0] is None or not row[5]:
            return  # nothing tracked, or no heartbeat has ever reached Redis
        lag_ms, measured_ms, lag_at, last_error, threshold_ms = (
            float(str(row[0])),
            row[1],
            row[2],
            row[3],
            float(str(row[4])),
        )
        if not self.alerting and lag_ms > threshold_ms:
            self.alerting = True
            self.ctx.notify(
                "sync_lag",
                {
                    "database": conn.info.dbname,
                    "lag_ms": round(lag_ms, 1),
                    "threshold_ms": threshold_ms,
                    "measured_lag_ms": measured_ms,
                    "last_heartbeat_at": lag_at,
                    "last_error": last_error,
                },
            )
        elif self.alerting and lag_ms < threshold_ms / 2:
            self.alerting = False
