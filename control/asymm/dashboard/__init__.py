"""The web dashboard's JSON endpoints, served by the daemon's HTTP server.

* ``/api/dashboard`` — everything the page shows except the graph, in one round trip: the
  pulse and regime split (from the daemon itself), throughput and latency series (from
  ``asymm.query_history``, bucketed), slow statements, smoothness, coherence, index
  suggestions with their estimated and verified gains (``asymm.index_suggestions_latest``), drift events
  (``asymm.ddl_log``, ``asymm.drift_findings``), and the Redis cache (``asymm.sync_status()``
  plus Redis' own keyspace hit counters).
* ``/api/graph`` — the semantic data graph (:mod:`asymm.graph`) with each statement's recent
  calls, which the page uses for the speed of the data flowing along the edges.

Why one endpoint for the panels: the page polls every couple of seconds; one short connection
and one response keep the cost per poll to a few milliseconds of catalog and history reads.
Every section is computed independently and reports its own error, so a missing piece (no
Redis, no advisor, no pg_stat_statements) leaves the rest of the page working.  Handlers run on
the HTTP thread and open their own connection (``daemon.conn`` belongs to the pulse thread).
The page itself is ``asymm/daemon/static/index.html``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg

from asymm import graph as graph_mod
from asymm.daemon.http import ApiError, register_api
from asymm.daemon.scheduler import Task
from asymm.db import connect, session_search_path

if TYPE_CHECKING:
    from asymm.daemon.service import Daemon

log = logging.getLogger("asymm.dashboard")

Conn = psycopg.Connection[Any]
GRAPH_TTL_S = 10.0  # the catalog changes rarely; building the graph parses every statement
_graph_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_graph_lock = threading.Lock()


def daemon_tasks(_daemon: Daemon) -> list[Task]:
    """No periodic work: importing this module (from ``asymm.daemon.tasks``) registers the endpoints."""
    return []


def _rows(conn: Conn, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    cur = conn.execute(query, params)
    names = [d.name for d in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _exists(conn: Conn, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def _window(params: dict[str, list[str]]) -> int:
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
        " GROUP BY 1 ORDER BY 1", (bucket_s, minutes)).fetchall()
    return {
        "bucket_s": bucket_s,
        "points": [{"t": t, "calls_per_s": calls / bucket_s, "mean_ms": total / calls if calls else None,
                    "worst_ms": worst} for t, calls, total, worst in rows],
    }


def slow(conn: Conn, minutes: int) -> dict[str, Any]:
    threshold = float(conn.execute("SELECT asymm.setting('telemetry.slow_threshold_ms')").fetchone()[0])  # type: ignore[index]
    rows = _rows(conn, "SELECT queryid::text AS queryid, left(regexp_replace(query, '\\s+', ' ', 'g'), 200) AS query,"
                       "       slow_calls, calls, mean_ms, max_sample_mean_ms, total_ms, last_slow_at"
                       "  FROM asymm.slow_queries(%s, make_interval(mins => %s)) LIMIT 10", (threshold, minutes))
    return {"threshold_ms": threshold, "queries": rows}


def smoothness(conn: Conn, minutes: int) -> dict[str, Any]:
    row = conn.execute("SELECT asymm.smoothness(make_interval(mins => %s))", (minutes,)).fetchone()
    return {"value": row[0] if row else None}


def coherence(conn: Conn) -> dict[str, Any]:
    with session_search_path(conn):  # statements are planned with the names their sessions used
        row = conn.execute("SELECT asymm.coherence()").fetchone()
    data = dict(row[0]) if row and row[0] else {}
    data["verdicts"] = data.get("verdicts", [])[:10]
    return data


SIZE_NOTE = "HypoPG's size estimate, pessimistic: the real index is usually smaller"


def suggestions(conn: Conn) -> dict[str, Any]:
    """The index advisor's latest run plus everything applied, failed or rolled back, with the verify verdict.

    Reads ``asymm.index_suggestions_latest`` (sql/30_advisor.sql).  ``estimated_benefit`` is in
    planner cost units (calls × cost saved, minus the write penalty); ``size_bytes`` is HypoPG's
    estimate, which is pessimistic; the verified gain (verdict and mean latency of the index's
    queries before → after) comes from ``asymm verify`` (``verdict_detail``).  Applied indexes
    come first: they are what changed the database.
    """
    if not _exists(conn, "asymm.index_suggestions_latest"):
        return {"installed": False, "items": [], "size_note": SIZE_NOTE}
    items = _rows(conn, """
        SELECT suggestion_id, run_id::text AS run_id, suggested_at, table_name, columns, method, index_name,
               definition, estimated_benefit, size_bytes, cardinality(queryids) AS queries, status,
               applied_at, error, verified_at, verdict,
               (verdict_detail->>'mean_before_ms')::float8 AS mean_before_ms,
               (verdict_detail->>'mean_after_ms')::float8 AS mean_after_ms,
               (verdict_detail->>'calls_since')::int8 AS calls_since
          FROM asymm.index_suggestions_latest
         ORDER BY status = 'suggested', coalesce(applied_at, suggested_at) DESC, estimated_benefit DESC,
                  suggestion_id DESC
         LIMIT 20""")
    hypopg = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hypopg')").fetchone()
    return {"installed": True, "hypopg": bool(hypopg and hypopg[0]), "items": items, "size_note": SIZE_NOTE}


def drift_events(conn: Conn) -> dict[str, Any]:
    ddl = _rows(conn, "SELECT id, logged_at, command_tag, object_type, object_identity, role_name,"
                      "       left(statement, 200) AS statement"
                      "  FROM asymm.ddl_log WHERE event = 'ddl_command_end' OR event = 'sql_drop'"
                      " ORDER BY id DESC LIMIT 12")
    findings = _rows(conn, "SELECT baseline, item->>'kind' AS kind, item->>'identity' AS identity,"
                           "       item->>'severity' AS severity, first_seen, last_seen"
                           "  FROM asymm.drift_findings WHERE resolved_at IS NULL ORDER BY last_seen DESC LIMIT 12")
    baselines = conn.execute("SELECT count(*) FROM asymm.drift_baselines").fetchone()
    return {"ddl": ddl, "findings": findings, "baselines": baselines[0] if baselines else 0}


def cache(conn: Conn, daemon: Daemon) -> dict[str, Any]:
    row = conn.execute("SELECT asymm.sync_status()").fetchone()
    status: dict[str, Any] = dict(row[0]) if row else {}
    redis_stats: dict[str, Any] = {}
    if daemon.config.redis_url:
        try:
            from asymm.sync.redis_io import connect_redis

            client = connect_redis(daemon.config.redis_url, timeout=1.0)
            info = client.info("stats")
            hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
            redis_stats = {"keyspace_hits": hits, "keyspace_misses": misses,
                           "hit_rate": hits / (hits + misses) if hits + misses else None,
                           "keys": int(client.dbsize())}
            client.close()
        except Exception as exc:  # Redis down: the panel says so, the page stays up
            redis_stats = {"error": f"{type(exc).__name__}: {exc}"}
    return {"sync": status, "redis": redis_stats, "configured": bool(daemon.config.redis_url)}


def _section(out: dict[str, Any], name: str, conn: Conn, make: Callable[[], Any]) -> None:
    try:
        with conn.transaction():
            out[name] = make()
    except Exception as exc:
        log.debug("dashboard section %s failed", name, exc_info=True)
        out[name] = {"error": f"{type(exc).__name__}: {exc}"}


@register_api("dashboard")
def api_dashboard(daemon: Daemon, params: dict[str, list[str]]) -> dict[str, Any]:
    minutes = _window(params)
    status = daemon.status()
    out: dict[str, Any] = {
        "now": time.time(),
        "window_minutes": minutes,
        "daemon": {k: status[k] for k in ("daemon_id", "version", "host", "leader", "ready", "readiness",
                                          "connections", "pulse", "regimes", "tasks")},
    }
    with connect(daemon.config.dsn, autocommit=True) as conn:
        row = conn.execute("SELECT current_database(), asymm.version()").fetchone()
        out["database"] = {"name": row[0], "asymm": row[1]} if row else {}
        _section(out, "series", conn, lambda: series(conn, minutes))
        _section(out, "slow", conn, lambda: slow(conn, minutes))
        _section(out, "smoothness", conn, lambda: smoothness(conn, minutes))
        _section(out, "coherence", conn, lambda: coherence(conn))
        _section(out, "suggestions", conn, lambda: suggestions(conn))
        _section(out, "drift", conn, lambda: drift_events(conn))
        _section(out, "cache", conn, lambda: cache(conn, daemon))
    return out


def graph_with_flow(conn: Conn) -> dict[str, Any]:
    """The graph, with each statement's calls over the last minute (``recent_calls``)."""
    data = graph_mod.build(conn).as_dict()
    recent: dict[str, float] = {}
    if _exists(conn, "asymm.query_stats"):
        for queryid, calls in conn.execute(
                "SELECT queryid::text, sum(calls)::float8 FROM asymm.query_history('1 minute') GROUP BY 1").fetchall():
            recent[queryid] = calls
    for node in data["nodes"]:
        if node["kind"] == "query":
            node["recent_calls"] = recent.get(str(node["queryid"]), 0.0)
            node["queryid"] = str(node["queryid"])  # 64-bit: JavaScript numbers would round it
    return data


@register_api("graph")
def api_graph(daemon: Daemon, params: dict[str, list[str]]) -> dict[str, Any]:
    fresh = params.get("fresh", ["0"])[0] == "1"
    with _graph_lock:
        cached = _graph_cache.get(daemon.config.dsn)
        if cached and not fresh and time.monotonic() - cached[0] < GRAPH_TTL_S:
            return cached[1]
        with connect(daemon.config.dsn, autocommit=True) as conn:
            data = graph_with_flow(conn)
        _graph_cache[daemon.config.dsn] = (time.monotonic(), data)
        return data
