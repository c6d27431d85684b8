"""The dashboard's sections, each a function over a connection (the page's panels).

Why each its own function: every section is computed independently and reports its own error
(:mod:`asymm.dashboard.feature`), so a missing piece (no Redis, no advisor, no
pg_stat_statements) leaves the rest of the page working.  Where a feature has an API function for
what a panel shows, the panel calls it (telemetry, drift, sync, advisor, graph) rather than repeat its SQL.
"""

from __future__ import annotations

from typing import Any

import psycopg

from asymm import graph as graph_mod
from asymm.advisor import api as advisor_api
from asymm.daemon.feature import ApiError
from asymm.db import session_search_path
from asymm.drift import api as drift_api
from asymm.redis_conn import connect_redis
from asymm.sync import api as sync_api
from asymm.telemetry import api as telemetry_api

Conn = psycopg.Connection[Any]


def _rows(conn: Conn, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    cur = conn.execute(query, params)
    names = [d.name for d in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _exists(conn: Conn, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def window(params: dict[str, list[str]]) -> int:
    raw = params.get("minutes", ["15"])[0]
    try:
        minutes = int(raw)
    except ValueError:
        raise ApiError(400, f"minutes must be an integer from 1 to 1440 (got {raw!r})") from None
    if not 1 <= minutes <= 1440:
        raise ApiError(400, f"minutes must be an integer from 1 to 1440 (got {minutes})")
    return minutes


def series(conn: Conn, minutes: int) -> dict[str, Any]:
    """Throughput (calls/s) and latency (mean and worst statement mean, ms) per time bucket."""
    bucket_s = max(2, minutes * 60 // 120)  # about 120 points whatever the window
    rows = conn.execute(
        "SELECT extract(epoch FROM date_bin(make_interval(secs => %s), h.sampled_at, 'epoch'))::float8 AS t,"
        "       sum(h.calls)::float8 AS calls, sum(h.total_ms) AS total_ms, max(h.mean_ms) AS worst_ms"
        "  FROM asymm.query_history(make_interval(mins => %s)) h WHERE h.calls > 0"
        " GROUP BY 1 ORDER BY 1",
        (bucket_s, minutes),
    ).fetchall()
    return {
        "bucket_s": bucket_s,
        "points": [
            {"t": t, "calls_per_s": calls / bucket_s, "mean_ms": total / calls if calls else None, "worst_ms": worst}
            for t, calls, total, worst in rows
        ],
    }


def slow(conn: Conn, minutes: int) -> dict[str, Any]:
    threshold = telemetry_api.slow_threshold_ms(conn)
    rows = _rows(
        conn,
        "SELECT queryid::text AS queryid, left(regexp_replace(query, '\\s+', ' ', 'g'), 200) AS query,"
        "       slow_calls, calls, mean_ms, max_sample_mean_ms, total_ms, last_slow_at"
        "  FROM asymm.slow_queries(%s, make_interval(mins => %s)) LIMIT 10",
        (threshold, minutes),
    )
    return {"threshold_ms": threshold, "queries": rows}


def smoothness(conn: Conn, minutes: int) -> dict[str, Any]:
    return {"value": telemetry_api.smoothness(conn, f"{minutes} minutes")}


def coherence(conn: Conn) -> dict[str, Any]:
    with session_search_path(conn):  # statements are planned with the names their sessions used
        row = conn.execute("SELECT asymm.coherence()").fetchone()
    data = dict(row[0]) if row and row[0] else {}
    data["verdicts"] = data.get("verdicts", [])[:10]
    return data


SIZE_NOTE = "HypoPG's size estimate corrected for btree deduplication from the column statistics"


def suggestions(conn: Conn) -> dict[str, Any]:
    """The index advisor's latest run plus everything applied, failed or rolled back, with the verify verdict.

    Through :func:`asymm.advisor.api.latest_suggestions`.  ``estimated_benefit`` is in
    planner cost units (calls × cost saved, minus the write penalty); ``size_bytes`` is HypoPG's
    estimate corrected for btree deduplication (advisor.sizing); the verified gain (verdict and
    mean latency of the index's queries before → after) comes from ``asymm verify``
    (``verdict_detail``).  Applied indexes come first: they are what changed the database.
    """
    items = advisor_api.latest_suggestions(conn)
    if items is None:
        return {"installed": False, "items": [], "size_note": SIZE_NOTE}
    return {"installed": True, "hypopg": advisor_api.hypopg_installed(conn), "items": items, "size_note": SIZE_NOTE}


def drift_events(conn: Conn) -> dict[str, Any]:
    ddl = _rows(
        conn,
        "SELECT id, logged_at, command_tag, object_type, object_identity, role_name,"
        "       left(statement, 200) AS statement"
        "  FROM asymm.ddl_log WHERE event = 'ddl_command_end' OR event = 'sql_drop'"
        " ORDER BY id DESC LIMIT 12",
    )
    findings = drift_api.open_findings(conn, limit=12)
    return {"ddl": ddl, "findings": findings, "baselines": len(drift_api.baseline_names(conn))}


def cache(conn: Conn, redis_url: str | None) -> dict[str, Any]:
    status = sync_api.status(conn)
    redis_stats: dict[str, Any] = {}
    if redis_url:
        try:
            client = connect_redis(redis_url, timeout=1.0)
            info = client.info("stats")
            hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
            redis_stats = {
                "keyspace_hits": hits,
                "keyspace_misses": misses,
                "hit_rate": hits / (hits + misses) if hits + misses else None,
                "keys": int(client.dbsize()),
            }
            client.close()
        except Exception as exc:  # Redis down: the panel says so, the page stays up
            redis_stats = {"error": f"{type(exc).__name__}: {exc}"}
    return {"sync": status, "redis": redis_stats, "configured": bool(redis_url)}


def graph_with_flow(conn: Conn) -> dict[str, Any]:
    """The graph, with each statement's calls over the last minute (``recent_calls``)."""
    data = graph_mod.build(conn).as_dict()
    recent: dict[str, float] = {}
    if _exists(conn, "asymm.query_stats"):
        for queryid, calls in conn.execute(
            "SELECT queryid::text, sum(calls)::float8 FROM asymm.query_history('1 minute') GROUP BY 1"
        ).fetchall():
            recent[queryid] = calls
    for node in data["nodes"]:
        if node["kind"] == "query":
            node["recent_calls"] = recent.get(str(node["queryid"]), 0.0)
            node["queryid"] = str(node["queryid"])  # 64-bit: JavaScript numbers would round it
    return data
