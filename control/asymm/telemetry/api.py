"""Telemetry's functions over a connection, used by the CLI, the dashboard and the daemon's tasks.

The work itself is set-based SQL inside the server (``asymm.snapshot()`` reads
``pg_stat_statements`` once per call and writes only what moved); these functions call it and
shape the reports.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from asymm.db import lookup_relation, require_extension
from asymm.errors import AsymmError

Conn = psycopg.Connection[tuple[object, ...]]


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


def smoothness(conn: Conn, since: str) -> Any:
    """``asymm.smoothness()`` over a window (an interval such as ``'15 minutes'``)."""
    row = conn.execute("SELECT asymm.smoothness(%s::interval)", (since,)).fetchone()
    return row[0] if row else None


def slow_threshold_ms(conn: Conn) -> float:
    """The ``telemetry.slow_threshold_ms`` setting."""
    row = conn.execute("SELECT asymm.setting('telemetry.slow_threshold_ms')::float8").fetchone()
    assert row is not None
    return float(str(row[0]))


def _rows(conn: Conn, query: str, params: tuple[object, ...] = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return list(cur.fetchall())


def top(conn: Conn, since: str = "15 minutes", limit: int = 20, slow_ms: float = 100.0) -> dict[str, Any]:
    """Per-query latency and throughput over a window, slow queries and the smoothness index."""
    require_extension(conn)
    queries = _rows(conn, "SELECT * FROM asymm.query_report(%s::interval) LIMIT %s", (since, limit))
    slow = _rows(conn, "SELECT * FROM asymm.slow_queries(%s, %s::interval) LIMIT %s", (slow_ms, since, limit))
    state = _rows(conn, "SELECT last_snapshot_at, snapshots, resets_seen, deallocs_seen FROM asymm.telemetry_state")
    return {
        "since": since,
        "smoothness": smoothness(conn, since),
        "queries": queries,
        "slow_queries": slow,
        "telemetry": state[0] if state else {},
    }


def recent_slow(conn: Conn, since: str) -> list[dict[str, Any]]:
    """Statements slower than ``telemetry.slow_threshold_ms`` over a window (what the webhooks carry)."""
    return _rows(
        conn,
        "SELECT queryid, left(query, 1000) AS query, slow_calls, calls, mean_ms, last_slow_at"
        "  FROM asymm.slow_queries(asymm.setting('telemetry.slow_threshold_ms')::float8,"
        "                          %s::interval)",
        (since,),
    )


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
    groups = _rows(
        conn,
        "SELECT row_hash, copies, ctids::text[] AS ctids, row_values FROM asymm.find_duplicates(%s::regclass, %s)",
        (rel, columns),
    )
    extra = sum(int(g["copies"]) - 1 for g in groups)
    return {"table": rel, "columns": columns, "groups": groups, "duplicate_rows": extra}


__all__ = ["duplicates", "health", "recent_slow", "retention", "slow_threshold_ms", "smoothness", "snapshot", "top"]
