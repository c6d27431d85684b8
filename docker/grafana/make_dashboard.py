"""Writes docker/grafana/dashboards/asymm.json (run: python3 docker/grafana/make_dashboard.py).

Why generated: a dozen panels share the datasource, layout and SQL conventions; writing them
here keeps the JSON consistent.  The output is committed; tests/integration/test_grafana.py runs every
panel's SQL (macros expanded) against the real schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GRAFANA_MAJOR = 11  # docker/compose.yaml pins grafana/grafana-oss:11.0.0
SCHEMA_VERSION = 39  # what Grafana 11.0 writes
DS = {"type": "grafana-postgresql-datasource", "uid": "asymm-postgres"}
WINDOW = "(now() - $__timeFrom()::timestamptz)"  # the dashboard's time range as an interval

PANELS: list[dict[str, Any]] = [
    {"title": "Throughput (calls/s)", "type": "timeseries", "format": "time_series", "w": 12, "h": 8,
     "sql": "SELECT $__timeGroupAlias(sampled_at, '10s'), sum(calls) / 10.0 AS \"calls/s\"\n"
            "  FROM asymm.query_stats WHERE $__timeFilter(sampled_at)\n GROUP BY 1 ORDER BY 1"},
    {"title": "Mean latency (ms)", "type": "timeseries", "format": "time_series", "w": 12, "h": 8,
     "sql": "SELECT $__timeGroupAlias(sampled_at, '10s'),\n"
            "       sum(total_ms) / nullif(sum(calls), 0) AS \"mean ms\",\n"
            "       max(total_ms / nullif(calls, 0)) AS \"worst ms\"\n"
            "  FROM asymm.query_stats WHERE $__timeFilter(sampled_at) AND calls > 0\n GROUP BY 1 ORDER BY 1"},
    {"title": "Calls per minute (rollups)", "type": "timeseries", "format": "time_series", "w": 12, "h": 8,
     "sql": "SELECT minute AS time, sum(calls) AS calls, sum(total_ms) / nullif(sum(calls), 0) AS \"mean ms\"\n"
            "  FROM asymm.query_stats_minute WHERE $__timeFilter(minute)\n GROUP BY 1 ORDER BY 1"},
    {"title": "Smoothness", "type": "stat", "format": "table", "w": 4, "h": 8, "unit": "percentunit",
     "sql": "SELECT asymm.smoothness(@window) AS smoothness"},
    {"title": "Sync lag (ms)", "type": "stat", "format": "table", "w": 4, "h": 8, "unit": "ms",
     "sql": "SELECT (s->>'lag_ms')::float8 AS lag_ms, (s->>'backlog_rows')::bigint AS backlog_rows\n"
            "  FROM asymm.sync_status() s"},
    {"title": "Coherence", "type": "stat", "format": "table", "w": 4, "h": 8,
     "sql": "SELECT (c->>'score')::float8 AS score FROM asymm.coherence() c"},
    {"title": "Slow statements", "type": "table", "format": "table", "w": 24, "h": 9,
     "sql": "SELECT queryid, left(query, 120) AS query, slow_calls, calls, round(mean_ms::numeric, 2) AS mean_ms,\n"
            "       round(max_sample_mean_ms::numeric, 2) AS worst_ms, last_slow_at\n"
            "  FROM asymm.slow_queries(asymm.setting('telemetry.slow_threshold_ms')::float8, @window)"},
    {"title": "Heaviest statements", "type": "table", "format": "table", "w": 24, "h": 9,
     "sql": "SELECT queryid, left(query, 120) AS query, calls, round(calls_per_s::numeric, 2) AS calls_per_s,\n"
            "       round(total_ms::numeric, 1) AS total_ms, round(mean_ms::numeric, 3) AS mean_ms, hit_ratio\n"
            "  FROM asymm.query_report(@window) LIMIT 20"},
    {"title": "DDL log", "type": "table", "format": "table", "w": 12, "h": 9,
     "sql": "SELECT logged_at AS time, command_tag, object_identity, role_name, left(statement, 120) AS statement\n"
            "  FROM asymm.ddl_log WHERE $__timeFilter(logged_at) ORDER BY id DESC LIMIT 100"},
    {"title": "Open drift findings", "type": "table", "format": "table", "w": 12, "h": 9,
     "sql": "SELECT baseline, item->>'kind' AS kind, item->>'identity' AS identity, item->>'severity' AS severity,\n"
            "       first_seen, last_seen\n  FROM asymm.drift_findings WHERE resolved_at IS NULL\n"
            " ORDER BY last_seen DESC"},
    {"title": "Table state (rows and distinct row states)", "type": "timeseries", "format": "time_series", "w": 24,
     "h": 8,
     "sql": "SELECT $__timeGroupAlias(measured_at, '1m'), relation AS metric, max(row_count) AS rows\n"
            "  FROM asymm.state_history WHERE $__timeFilter(measured_at)\n GROUP BY 1, 2 ORDER BY 1"},
]


def panel(number: int, spec: dict[str, Any], x: int, y: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": number, "title": spec["title"], "type": spec["type"], "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": spec["w"], "h": spec["h"]},
        "targets": [{"refId": "A", "datasource": DS, "editorMode": "code", "format": spec["format"],
                     "rawQuery": True, "rawSql": spec["sql"].replace("@window", WINDOW)}],
        "fieldConfig": {"defaults": {"unit": spec.get("unit", "none")}, "overrides": []},
        "options": {},
    }
    if spec["type"] == "stat":
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                          "colorMode": "value", "graphMode": "none", "textMode": "auto"}
    return out


def build() -> dict[str, Any]:
    panels, x, y, row_h = [], 0, 0, 0
    for number, spec in enumerate(PANELS, start=1):
        if x + spec["w"] > 24:
            x, y, row_h = 0, y + row_h, 0
        panels.append(panel(number, spec, x, y))
        x, row_h = x + spec["w"], max(row_h, spec["h"])
    return {
        "uid": "asymm-overview", "title": "asymm overview", "tags": ["asymm", "postgresql"],
        "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": False, "graphTooltip": 1,
        "time": {"from": "now-1h", "to": "now"}, "refresh": "10s", "timezone": "browser",
        "annotations": {"list": []}, "templating": {"list": []}, "links": [], "panels": panels,
    }


if __name__ == "__main__":
    target = Path(__file__).resolve().parent / "dashboards" / "asymm.json"
    target.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {target}")
