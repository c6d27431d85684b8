"""Grafana provisioning: files parse, uids line up, and every panel's SQL runs on the real schema.

Grafana's PostgreSQL macros are expanded the way Grafana does it (for the macros the dashboard
uses) with a one-hour range, so a renamed column or function fails here, not in someone's Grafana.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "docker" / "grafana"
NOW = datetime.now(UTC)
FROM, TO = NOW - timedelta(hours=1), NOW


def _ts(t: datetime) -> str:
    return "'" + t.strftime("%Y-%m-%dT%H:%M:%SZ") + "'"


def _seconds(interval: str) -> int:
    number, unit = re.fullmatch(r"'?(\d+)([smhd])'?", interval.strip()).groups()  # type: ignore[union-attr]
    return int(number) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def expand(sql: str) -> str:
    """Grafana's PostgreSQL macros (the subset the dashboard uses) as Grafana 11 expands them."""
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", lambda m: f"{m[1]} BETWEEN {_ts(FROM)} AND {_ts(TO)}", sql)
    sql = re.sub(
        r"\$__timeGroupAlias\(([^,]+),([^)]+)\)",
        lambda m: f'floor(extract(epoch from {m[1]})/{_seconds(m[2])})*{_seconds(m[2])} AS "time"',
        sql,
    )
    sql = re.sub(
        r"\$__timeGroup\(([^,]+),([^)]+)\)",
        lambda m: f"floor(extract(epoch from {m[1]})/{_seconds(m[2])})*{_seconds(m[2])}",
        sql,
    )
    sql = sql.replace("$__timeFrom()", _ts(FROM)).replace("$__timeTo()", _ts(TO))
    assert "$__" not in sql, f"unexpanded macro in {sql}"
    return sql


def _dashboard() -> dict[str, Any]:
    return dict(json.loads((GRAFANA / "dashboards" / "asymm.json").read_text()))


def test_every_panel_query_runs(db: str) -> None:
    board = _dashboard()
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        conn.execute("SELECT asymm.snapshot()")
        conn.execute("SELECT asymm.record_state(ARRAY['t'::regclass])")
        for p in board["panels"]:
            for target in p["targets"]:
                sql = expand(target["rawSql"])
                cur = conn.execute(sql)
                names = [d.name for d in cur.description or ()]
                cur.fetchall()
                if target["format"] == "time_series":
                    assert "time" in names, (p["title"], names)
