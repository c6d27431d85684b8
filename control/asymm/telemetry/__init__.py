"""Telemetry (UX-Sonar and State Sonar): the Python side of ``sql/20_telemetry/``.

The work itself is set-based SQL inside the server (``asymm.snapshot()`` reads
``pg_stat_statements`` once per call and writes only what moved); this module calls it, shapes
the reports for the CLI, and plugs the snapshot and the retention into the daemon's pulse.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row

from asymm.daemon.pulse import Tick
from asymm.daemon.scheduler import Task
from asymm.db import lookup_relation, require_extension
from asymm.errors import AsymmError

if TYPE_CHECKING:
    from asymm.daemon.service import Daemon

log = logging.getLogger("asymm.telemetry")

Conn = psycopg.Connection[tuple[object, ...]]

SLOW_ALERT_EVERY_S = 5.0
SLOW_ALERT_WINDOW = "1 minute"
"""Slow-query webhooks: checked every few seconds over the last minute of history."""

RETENTION_EVERY_S = 30.0
"""How often the daemon rolls up and drops partitions: rarely, since each call may roll up
several minutes of raw samples (bounded by ``telemetry.rollup_batch_minutes``)."""


def snapshot(conn: Conn) -> dict[str, Any]:
    """One ``asymm.snapshot()``: what moved in pg_stat_statements since the last call."""
    row = conn.execute("SELECT asymm.snapshot()").fetchone()
    assert row is not None
    result: dict[str, Any] = row[0]  # type: ignore[assignment]
    return result


def retention(conn: Conn, max_minutes: int | None = None) -> dict[str, Any]:
    """One ``asymm.telemetry_retention()``: roll closed minutes up, drop expired partitions."""
    row = conn.execute("SELECT asymm.telemetry_retention(%s)", (max_minutes,)).fetchone()
    assert row is not None
    result: dict[str, Any] = row[0]  # type: ignore[assignment]
    return result


def _rows(conn: Conn, query: str, params: tuple[object, ...] = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return list(cur.fetchall())


def top(conn: Conn, since: str = "15 minutes", limit: int = 20, slow_ms: float = 100.0) -> dict[str, Any]:
    """Per-query latency and throughput over a window, slow queries and the smoothness index."""
    require_extension(conn)
    queries = _rows(conn, "SELECT * FROM asymm.query_report(%s::interval) LIMIT %s", (since, limit))
    slow = _rows(conn, "SELECT * FROM asymm.slow_queries(%s, %s::interval) LIMIT %s", (slow_ms, since, limit))
    smooth = conn.execute("SELECT asymm.smoothness(%s::interval)", (since,)).fetchone()
    state = _rows(conn, "SELECT last_snapshot_at, snapshots, resets_seen, deallocs_seen FROM asymm.telemetry_state")
    return {
        "since": since,
        "smoothness": smooth[0] if smooth else None,
        "queries": queries,
        "slow_queries": slow,
        "telemetry": state[0] if state else {},
    }


def health(conn: Conn) -> dict[str, Any]:
    """Index health findings (each with its DROP INDEX CONCURRENTLY statement)."""
    require_extension(conn)
    return {"indexes": _rows(conn, "SELECT * FROM asymm.index_health()")}


def duplicates(conn: Conn, table: str, columns: list[str] | None = None) -> dict[str, Any]:
    """Duplicate-row groups of one table, by SHA-256 of the chosen columns' values."""
    require_extension(conn)
    rel = lookup_relation(conn, table)
    if rel is None:
        raise AsymmError(f"no such table: {table}")
    groups = _rows(conn, "SELECT row_hash, copies, ctids::text[] AS ctids, row_values"
                         " FROM asymm.find_duplicates(%s::regclass, %s)", (rel, columns))
    extra = sum(int(g["copies"]) - 1 for g in groups)
    return {"table": rel, "columns": columns, "groups": groups, "duplicate_rows": extra}


def daemon_tasks(daemon: Daemon) -> list[Task]:
    """Snapshot on every pulse (stabilization work), retention every ~30 s."""

    def run_snapshot(_tick: Tick) -> None:
        assert daemon.conn is not None
        result = snapshot(daemon.conn)
        if result.get("reset") or result.get("dealloc"):
            log.info("pg_stat_statements reset=%s dealloc=%s since the last snapshot",
                     result.get("reset"), result.get("dealloc"))

    def run_retention(_tick: Tick) -> None:
        assert daemon.conn is not None
        result = retention(daemon.conn)
        if result.get("dropped_partitions"):
            log.info("telemetry retention dropped %s", ", ".join(result["dropped_partitions"]))

    every = max(1, round(RETENTION_EVERY_S / daemon.config.period))
    alerts = SlowQueryAlerts(daemon)
    return [
        Task("telemetry-snapshot", run_snapshot, every=1, regime="stabilization"),
        Task("telemetry-retention", run_retention, every=every, regime="stabilization"),
        Task("telemetry-slow-alerts", alerts.run, every=max(1, round(SLOW_ALERT_EVERY_S / daemon.config.period)),
             regime="stabilization"),
    ]


class SlowQueryAlerts:
    """Tell webhooks about statements that turned slow: once per statement, again only after it
    has been fast for a whole window (so a statement that stays slow does not flood the hook)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.alerted: set[int] = set()

    def run(self, _tick: Tick) -> None:
        if not self.daemon.notifier.urls:
            return
        conn = self.daemon.conn
        assert conn is not None
        slow = _rows(conn, "SELECT queryid, left(query, 1000) AS query, slow_calls, calls, mean_ms, last_slow_at"
                           "  FROM asymm.slow_queries(asymm.setting('telemetry.slow_threshold_ms')::float8,"
                           "                          %s::interval)", (SLOW_ALERT_WINDOW,))
        current = {int(row["queryid"]) for row in slow}
        for row in slow:
            if int(row["queryid"]) not in self.alerted:
                self.daemon.notifier.notify("slow_query", {"database": conn.info.dbname, **row})
        self.alerted = current


__all__ = ["daemon_tasks", "duplicates", "health", "retention", "snapshot", "top"]
