"""The web dashboard's JSON endpoints, as a daemon feature (no periodic work, two routes).

``/api/dashboard`` is every panel but the graph in one round trip, and ``/api/graph`` the
semantic data graph with recent calls.  Why one endpoint for the panels: the page polls every
couple of seconds, and one short connection keeps each poll to a few milliseconds.  Handlers run
on the HTTP thread and open their own connection.

Details: docs/daemon.md, "The dashboard's endpoints".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from asymm.daemon.feature import FeatureBase, Params, Route, TaskContext
from asymm.dashboard import api
from asymm.db import connect

log = logging.getLogger("asymm.dashboard")

GRAPH_TTL_S = 10.0  # the catalog changes rarely; building the graph parses every statement


def _section(out: dict[str, Any], name: str, conn: api.Conn, make: Callable[[], Any]) -> None:
    try:
        with conn.transaction():
            out[name] = make()
    except Exception as exc:
        log.debug("dashboard section %s failed", name, exc_info=True)
        out[name] = {"error": f"{type(exc).__name__}: {exc}"}


def api_dashboard(ctx: TaskContext, params: Params) -> dict[str, Any]:
    minutes = api.window(params)
    status = ctx.status()
    out: dict[str, Any] = {
        "now": time.time(),
        "window_minutes": minutes,
        "daemon": {
            k: status[k]
            for k in (
                "daemon_id",
                "version",
                "host",
                "leader",
                "ready",
                "readiness",
                "connections",
                "pulse",
                "regimes",
                "tasks",
            )
        },
    }
    redis_url = ctx.redis_url
    with connect(ctx.dsn, autocommit=True) as conn:
        row = conn.execute("SELECT current_database(), asymm.version()").fetchone()
        out["database"] = {"name": row[0], "asymm": row[1]} if row else {}
        _section(out, "series", conn, lambda: api.series(conn, minutes))
        _section(out, "slow", conn, lambda: api.slow(conn, minutes))
        _section(out, "smoothness", conn, lambda: api.smoothness(conn, minutes))
        _section(out, "coherence", conn, lambda: api.coherence(conn))
        _section(out, "suggestions", conn, lambda: api.suggestions(conn))
        _section(out, "drift", conn, lambda: api.drift_events(conn))
        _section(out, "cache", conn, lambda: api.cache(conn, redis_url))
    return out


class DashboardFeature(FeatureBase):
    """``/api/dashboard`` and ``/api/graph``; the graph is cached per DSN for :data:`GRAPH_TTL_S`."""

    name = "dashboard"

    def __init__(self) -> None:
        self._graph_cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._graph_lock = threading.Lock()

    def routes(self) -> Mapping[str, Route]:
        return {"dashboard": api_dashboard, "graph": self.api_graph}

    def api_graph(self, ctx: TaskContext, params: Params) -> dict[str, Any]:
        fresh = params.get("fresh", ["0"])[0] == "1"
        dsn = ctx.dsn
        with self._graph_lock:
            cached = self._graph_cache.get(dsn)
            if cached and not fresh and time.monotonic() - cached[0] < GRAPH_TTL_S:
                return cached[1]
            with connect(dsn, autocommit=True) as conn:
                data = api.graph_with_flow(conn)
            self._graph_cache[dsn] = (time.monotonic(), data)
            return data
